"""The web chat in the browser's language, in real headless Chromium (Debian's chromium
driven by playwright) against the real server, queue, intake and a CPU worker.

A browser set to Arabic gets the page in Arabic, laid out right to left (`lang`, `dir`
and CSS logical properties), and the whole flow in Arabic; /language switches the page
itself. With AVATARBOT_SCREENSHOT=1 the Arabic chat is saved as docs/web-chat-ar.png."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from playwright.async_api import Browser, FilePayload, Page, async_playwright

from bot import i18n, texts
from bot.config import load_settings
from bot.selfie import NotAnImage
from tests import hostile
from tests.conftest import DATA
from tests.web_chat_server import CHROMIUM, CHROMIUM_ARGS, RunningWebChat, running_web_chat

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCREENSHOT = Path(__file__).parent.parent / "docs" / "web-chat-ar.png"
TIMEOUT_MS = 30_000


def ar(say: object) -> str:
    with i18n.use("ar"):
        return str(say() if callable(say) else say)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chat(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningWebChat]:
    settings = load_settings(
        {
            "REDIS_URL": redis_url,
            "AVATARBOT_KEY_PREFIX": f"test-web-i18n-{uuid.uuid4().hex[:10]}",
            "AVATARBOT_DATA_DIR": str(tmp_path_factory.mktemp("web-i18n")),
            "AVATARBOT_WEB_HOST": "127.0.0.1",
            "AVATARBOT_WEB_PORT": "0",
        }
    )
    redis = aioredis.Redis.from_url(redis_url)
    async with running_web_chat(settings, redis) as running:
        yield running
    keys = [k async for k in redis.scan_iter(match=f"{settings.key_prefix}:*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def send(page: Page, text: str) -> None:
    await page.fill("[data-testid=text]", text)
    await page.press("[data-testid=text]", "Enter")


async def upload(page: Page, name: str, data: bytes, mime: str = "image/jpeg") -> None:
    payload: FilePayload = {"name": name, "mimeType": mime, "buffer": data}
    await page.set_input_files("[data-testid=file]", files=[payload])


async def box(page: Page, selector: str) -> tuple[float, float]:
    """(left, right) of the last element matching `selector`."""
    found = await page.locator(selector).last.bounding_box()
    assert found is not None
    return found["x"], found["x"] + found["width"]


async def test_an_arabic_browser_gets_the_whole_flow_in_arabic_right_to_left(
    browser: Browser, chat: RunningWebChat
) -> None:
    context = await browser.new_context(
        base_url=chat.url, viewport={"width": 820, "height": 1180}, locale="ar"
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    try:
        await page.goto("/")
        assert await page.get_attribute("html", "lang") == "ar"
        assert await page.get_attribute("html", "dir") == "rtl"
        assert await page.get_attribute("[data-testid=text]", "placeholder") == (
            "اكتب /avatar، أو أفلت صورة ذاتية هنا"
        )
        await page.locator("[data-testid=presence]", has_text="متصل").wait_for()
        welcome = page.locator("[data-testid=msg-bot-text]").first
        await welcome.wait_for()
        assert (await welcome.inner_text()).startswith("👋 مرحبًا!")

        await send(page, "/avatar")
        asked = page.locator("[data-testid=msg-bot-text]", has_text="أرسل لي صورة ذاتية")
        await asked.wait_for()

        # Intake refusal.
        await upload(page, "selfie.jpg", hostile.text_named_jpg())
        failure = page.locator("[data-testid=msg-bot-failure]").first
        await failure.wait_for()
        expected = ar(lambda: NotAnImage("a text file").user_message)
        assert await failure.locator(".text").inner_text() == expected

        # The picker.
        await upload(page, "me.jpg", (DATA / "astronaut.jpg").read_bytes())
        picker = page.locator("[data-testid=msg-bot-picker]")
        await picker.wait_for()
        assert (await picker.locator(".text").inner_text()) == ar(texts.pick_style)
        assert await picker.locator(".variants-label").inner_text() == "النسخ:"
        card = picker.locator("[data-testid=style-sketch]")
        assert await card.locator(".style-label").inner_text() == "✏️ رسم بالقلم الرصاص"
        assert await card.locator(".style-desc").inner_text() == "غرافيت على ورق مع تظليل ناعم."

        # The queue message, then the avatar with its caption and buttons.
        async with page.expect_response(lambda r: r.url.endswith("/api/choose")) as chosen:
            await card.click()
        answer = await (await chosen.value).json()
        [queued] = [m for m in answer["messages"] if m["kind"] == "queued"]
        assert queued["text"].startswith("⏳ صورتك الرمزية بأسلوب ✏️ رسم بالقلم الرصاص هي التالية")
        assert [b["label"] for b in queued["buttons"]] == ["✖ إلغاء"]
        status = page.locator("[data-testid=msg-bot-queued]")
        await status.wait_for()
        avatar = page.locator("[data-testid=msg-bot-avatar]")
        await avatar.wait_for()
        assert await avatar.locator(".text").inner_text() == (
            "✨ إليك صورتك الرمزية بأسلوب ✏️ رسم بالقلم الرصاص. "
            "صنعها الذكاء الاصطناعي وتحمل ما يدل على ذلك."
        )
        chips = await avatar.locator(".chip").all_inner_texts()
        assert chips == [
            "🔁 المزيد مثلها",
            "🎨 أسلوب آخر",
            "📥 الملف الأصلي",
            "🗑 انسَ صورتي الذاتية",
        ]
        await status.filter(has_text="✅ تم.").wait_for()  # the queue message, finished
        image = avatar.locator("[data-testid=avatar-image]")
        await page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=await image.element_handle()
        )
        assert await image.get_attribute("alt") == "صورة رمزية صنعها الذكاء الاصطناعي"

        # Right to left: the bot speaks from the right, the user from the left.
        log_left, log_right = await box(page, "[data-testid=log]")
        bot_left, bot_right = await box(page, "[data-testid=msg-bot-avatar] .bubble")
        user_left, _ = await box(page, ".msg.user .bubble")
        assert log_right - bot_right < 40, (log_right, bot_right)
        assert user_left - log_left < 40, (user_left, log_left)
        assert bot_left > user_left
        note_left, _ = await box(page, ".topbar-note")
        face_left, _ = await box(page, ".bot-face")
        assert note_left < face_left  # the header mirrors too

        if os.environ.get("AVATARBOT_SCREENSHOT") == "1":
            await page.locator("[data-testid=log]").evaluate(
                "l => { l.scrollTop = l.scrollHeight; }"
            )
            await page.screenshot(path=str(SCREENSHOT))

        # /forgetme: the receipt.
        await send(page, "/forgetme")
        receipt = page.locator("[data-testid=msg-bot-text]", has_text="🗑 تم.")
        await receipt.wait_for()
        said = await receipt.locator(".text").inner_text()
        assert said == "🗑 تم. حذفت صورتك الذاتية ونتائجك وسجلك معي."

        # /language: the page itself switches language and direction.
        await send(page, "/language de")
        await page.locator("html[lang=de][dir=ltr]").wait_for()
        await page.locator("[data-testid=msg-bot-text]", has_text="✅ Sprache: Deutsch").wait_for()
        assert await page.locator("[data-testid=send]").inner_text() == "Senden"
    finally:
        await context.close()


async def test_the_page_follows_accept_language_and_says_which_it_spoke(
    chat: RunningWebChat,
) -> None:
    async with (
        aiohttp.ClientSession(headers={"Accept-Language": "pt-BR,pt;q=0.9,en;q=0.5"}) as http,
        http.get(chat.url + "/") as response,
    ):
        assert response.headers["Content-Language"] == "pt-BR"
        page = await response.text()
    assert '<html lang="pt-BR" dir="ltr">' in page
    assert 'placeholder="Digite /avatar ou solte uma selfie aqui"' in page
    assert "{{" not in page  # every field filled
    async with (
        aiohttp.ClientSession(headers={"Accept-Language": "zh-CN,zh;q=0.9"}) as http,
        http.get(chat.url + "/") as response,
    ):
        assert response.headers["Content-Language"] == "en"
        assert '<html lang="en" dir="ltr">' in await response.text()
    async with aiohttp.ClientSession() as http, http.get(chat.url + "/static/app.js") as js:
        assert "Content-Language" not in js.headers  # files say nothing in words
