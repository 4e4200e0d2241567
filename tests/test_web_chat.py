"""The web chat end to end in real headless Chromium (Debian's /usr/bin/chromium driven by
playwright; no downloaded browser), against real Redis, the real queue and intake and an
in-process CPU worker. One browser and one server for the module; each test opens fresh
browser contexts, i.e. new anonymous users."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from PIL import Image
from playwright.async_api import Browser, BrowserContext, FilePayload, Page, async_playwright

from bot import texts
from bot.config import Settings, load_settings
from provenance.labelling import ImageVerifier, load_labeller
from tests import hostile
from tests.conftest import DATA
from tests.web_chat_server import CHROMIUM, CHROMIUM_ARGS, RunningWebChat, running_web_chat

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCREENSHOT = Path(__file__).parent.parent / "docs" / "web-chat.png"
TIMEOUT_MS = 30_000


def web_settings(redis_url: str, data_dir: Path, **extra: str) -> Settings:
    return load_settings(
        {
            "REDIS_URL": redis_url,
            "AVATARBOT_KEY_PREFIX": f"test-web-{uuid.uuid4().hex[:10]}",
            "AVATARBOT_DATA_DIR": str(data_dir),
            "AVATARBOT_WEB_HOST": "127.0.0.1",
            "AVATARBOT_WEB_PORT": "0",
            # Every browser here is 127.0.0.1; the limits are tests/test_abuse_limits.py's.
            "AVATARBOT_WEB_UPLOADS_PER_IP_MINUTE": "10000",
            "AVATARBOT_WEB_IDENTITIES_PER_IP_DAY": "10000",
            **extra,
        }
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chat(
    redis: aioredis.Redis, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningWebChat]:
    settings = web_settings(redis_url, tmp_path_factory.mktemp("web"))
    async with running_web_chat(settings, redis) as running:
        yield running
    keys = [k async for k in redis.scan_iter(match=f"{settings.key_prefix}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def open_chat(browser: Browser, chat: RunningWebChat) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        base_url=chat.url, viewport={"width": 820, "height": 1180}, accept_downloads=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto("/")
    await page.locator("[data-testid=msg-bot-text]", has_text="Send /avatar").first.wait_for()
    await page.locator("[data-testid=presence].online").wait_for()
    return context, page


async def send(page: Page, text: str) -> None:
    await page.fill("[data-testid=text]", text)
    await page.press("[data-testid=text]", "Enter")


async def upload(page: Page, name: str, data: bytes, mime: str = "image/jpeg") -> None:
    payload: FilePayload = {"name": name, "mimeType": mime, "buffer": data}
    await page.set_input_files("[data-testid=file]", files=[payload])


async def drop_file(page: Page, name: str, data: bytes, mime: str) -> None:
    """Drag and drop a file onto the chat, as a person would."""
    await page.evaluate(
        """([name, b64, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: mime }));
            window.dispatchEvent(new DragEvent("dragenter", { dataTransfer: dt }));
            window.dispatchEvent(new DragEvent("drop", { dataTransfer: dt }));
        }""",
        [name, base64.b64encode(data).decode(), mime],
    )


async def make_avatar(page: Page, style: str) -> list[str]:
    """/avatar, the astronaut selfie, a style; returns the avatar image URLs once shown."""
    before = await page.locator("[data-testid=avatar-image]").count()
    await send(page, "/avatar")
    await page.locator("[data-testid=msg-bot-text]", has_text="Send me a selfie").last.wait_for()
    pickers = await page.locator("[data-testid=msg-bot-picker]").count()
    await upload(page, "me.jpg", (DATA / "astronaut.jpg").read_bytes())
    await page.locator("[data-testid=msg-bot-picker]").nth(pickers).wait_for()
    await page.locator(f"[data-testid=style-{style}]").last.click()
    await page.locator("[data-testid=msg-bot-queued]").last.wait_for()
    image = page.locator("[data-testid=avatar-image]").nth(before)
    await image.wait_for()
    await page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=await image.element_handle()
    )
    urls = await page.locator("[data-testid=avatar-image]").evaluate_all(
        "imgs => imgs.map(i => i.getAttribute('src'))"
    )
    return [str(u) for u in urls[before:]]


# --------------------------------------------------------------------------- browser


async def test_avatar_flow_in_the_browser(browser: Browser, chat: RunningWebChat) -> None:
    context, page = await open_chat(browser, chat)
    size = chat.stack.settings.output_size
    try:
        welcome = await page.locator("[data-testid=msg-bot-text]").first.inner_text()
        assert "labelled as AI-made" in welcome

        await send(page, "/avatar")
        await page.locator("[data-testid=msg-bot-text]", has_text="Send me a selfie").wait_for()
        await upload(page, "me.jpg", (DATA / "astronaut.jpg").read_bytes())
        picker = page.locator("[data-testid=msg-bot-picker]")
        await picker.wait_for()
        previews = await picker.locator("img").evaluate_all(
            "imgs => Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth)))"
        )
        assert len(previews) == len(chat.stack.catalog)
        assert all(w > 0 for w in previews)  # served from the package

        await page.locator("[data-testid=style-popart]").click()
        await page.locator("[data-testid=msg-bot-queued]").wait_for()
        image = page.locator("[data-testid=avatar-image]")
        await image.wait_for()
        natural = await image.evaluate(
            "i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])"
        )
        assert natural == [size, size]
        likeness = await page.locator("[data-testid=avatar-likeness]").inner_text()
        assert re.fullmatch(r"Likeness to your selfie: (\d{1,3}%|no face)", likeness), likeness
        done = await page.locator("[data-testid=msg-bot-queued]").inner_text()
        assert "Done" in done  # the live status message was replaced in place

        # Download the original (labelled) file.
        await page.locator("[data-testid=button-orig]").click()
        link = page.locator("[data-testid=file-link]")
        async with page.expect_download() as info:
            await link.click()
        download = await info.value
        data = await asyncio.to_thread(Path(await download.path()).read_bytes)
        assert download.suggested_filename.startswith("avatar-popart-")
        with Image.open(io.BytesIO(data)) as im:
            assert im.format in ("PNG", "JPEG")
            assert im.size == (size, size)
        # ...and it is what the caption says: signed, AI-labelled, verifiable as ours.
        verifier = ImageVerifier(load_labeller(chat.stack.settings))
        verdict = await asyncio.to_thread(verifier, data)
        assert verdict.intact, verdict.describe()
        assert verdict.verdict.ai_generated

        if os.environ.get("AVATARBOT_SCREENSHOT") == "1":
            await page.locator("[data-testid=log]").evaluate(
                "l => { l.scrollTop = l.scrollHeight; }"
            )
            await page.screenshot(path=str(SCREENSHOT))

        # More like this: a second avatar in the same style.
        await page.locator("[data-testid=button-more]").first.click()
        await page.locator("[data-testid=avatar-image]").nth(1).wait_for()

        # /verify: the downloaded original is recognised, with where it came from.
        await send(page, "/verify")
        await upload(page, "avatar.png", data, "image/png")
        verdict_text = page.locator("[data-testid=msg-bot-text]", has_text="I made this image")
        await verdict_text.last.wait_for()
        shown = await verdict_text.last.inner_text()
        assert "in the style 🟨 Pop art" in shown
    finally:
        await context.close()


async def test_rejections_are_friendly(browser: Browser, chat: RunningWebChat) -> None:
    context, page = await open_chat(browser, chat)
    try:
        await send(page, "/avatar")
        failures = page.locator("[data-testid=msg-bot-failure]")
        await upload(page, "selfie.jpg", hostile.text_named_jpg())
        await failures.first.wait_for()
        assert "text file" in await failures.first.inner_text()

        await drop_file(page, "landscape.jpg", hostile.no_face_gradient(), "image/jpeg")
        await failures.nth(1).wait_for()
        assert "couldn't find a face" in await failures.nth(1).inner_text()
        assert await page.locator("[data-testid=msg-bot-picker]").count() == 0
    finally:
        await context.close()


async def test_two_users_get_only_their_own_results(browser: Browser, chat: RunningWebChat) -> None:
    (ctx_a, page_a), (ctx_b, page_b) = await asyncio.gather(
        open_chat(browser, chat), open_chat(browser, chat)
    )
    try:
        urls_a, urls_b = await asyncio.gather(
            make_avatar(page_a, "sketch"), make_avatar(page_b, "comic")
        )
        assert len(urls_a) == len(urls_b) == 1
        assert urls_a != urls_b
        assert await page_a.locator("[data-testid=avatar-image]").count() == 1
        assert await page_b.locator("[data-testid=avatar-image]").count() == 1
        own = await ctx_a.request.get(urls_a[0])
        assert own.status == 200
        assert (await own.body())[:8] == b"\x89PNG\r\n\x1a\n"
        for url in (urls_a[0], urls_a[0] + "?download=1"):
            stolen = await ctx_b.request.get(url)
            assert stolen.status in (403, 404)
        async with (
            aiohttp.ClientSession() as anonymous,
            anonymous.get(chat.url + urls_b[0]) as response,
        ):
            assert response.status in (403, 404)
    finally:
        await ctx_a.close()
        await ctx_b.close()


# --------------------------------------------------------------------------- HTTP


async def post_json(http: aiohttp.ClientSession, url: str, body: object) -> list[dict[str, Any]]:
    async with http.post(url, json=body) as response:
        assert response.status == 200, await response.text()
        return list((await response.json())["messages"])


async def test_a_button_answers_only_the_identity_it_was_sent_to(chat: RunningWebChat) -> None:
    """Two browsers (two cookies): B posting A's buttons gets a refusal meant for B alone,
    and nothing of A's changes."""
    jar_a, jar_b = aiohttp.CookieJar(unsafe=True), aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jar_a) as a,
        aiohttp.ClientSession(cookie_jar=jar_b) as b,
    ):
        for http in (a, b):
            async with http.get(chat.url + "/") as page:
                assert page.status == 200
        *_, welcome = await post_json(a, chat.url + "/api/message", {"text": "/start"})
        [make] = [button["data"] for button in welcome["buttons"]]
        async with a.post(
            chat.url + "/api/selfie",
            data=(DATA / "astronaut.jpg").read_bytes(),
            headers={"Content-Type": "image/jpeg"},
        ) as response:
            picker = (await response.json())["messages"][-1]
        assert picker["kind"] == "picker"
        pick = picker["options"][0]["data"]
        history_a = await (await a.get(chat.url + "/api/history")).json()

        for data in (make, pick):
            [refusal] = await post_json(b, chat.url + "/api/button", {"data": data})
            assert refusal["text"] == texts.not_your_button()
            assert refusal["ephemeral"] is True
        assert await (await a.get(chat.url + "/api/history")).json() == history_a
        [ask] = await post_json(a, chat.url + "/api/button", {"data": make})
        assert ask["text"] == texts.ask_selfie()


async def announce_upload(url: str, length: int) -> tuple[int, bytes]:
    """POST a selfie whose headers promise `length` bytes, send none, read the answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /api/selfie HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: image/jpeg\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(b" ", 2)[1])
        size = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return status, await asyncio.wait_for(reader.readexactly(size), 10)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_upload_limit_origin_check_health_and_metrics(chat: RunningWebChat) -> None:
    limit = chat.stack.settings.max_upload_bytes
    async with aiohttp.ClientSession() as http:
        async with http.get(chat.url + "/") as page:
            assert page.status == 200
            cookie = page.cookies["avatarbot_uid"]
            assert cookie["httponly"]
            assert cookie["samesite"] == "Strict"
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        status, body = await announce_upload(chat.url, limit + 1)
        assert status == 413  # answered from the header alone: no body was ever sent
        assert "too big" in json.loads(body)["messages"][0]["text"]
        async with http.post(
            chat.url + "/api/message",
            json={"text": "/avatar"},
            headers={"Origin": "https://evil.example"},
        ) as response:
            assert response.status == 403
        async with http.get(chat.url + "/healthz") as response:
            assert response.status == 200
            assert (await response.json())["workers"] >= 1
        async with http.get(chat.url + "/metrics") as response:
            text = await response.text()
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        for family in (
            'avatarbot_jobs{state="queued"}',
            "avatarbot_queue_depth ",
            "avatarbot_workers_alive ",
            "# TYPE avatarbot_generation_seconds histogram",
            'avatarbot_generation_seconds_bucket{le="+Inf"}',
            "# TYPE avatarbot_outcomes_delivered_total counter",
        ):
            assert family in text


async def test_without_worker_healthz_is_503_and_status_updates_live(
    browser: Browser,
    redis: aioredis.Redis,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = web_settings(redis_url, tmp_path_factory.mktemp("web-noworker"))
    async with running_web_chat(settings, redis, workers=0) as idle:
        async with aiohttp.ClientSession() as http, http.get(idle.url + "/healthz") as response:
            assert response.status == 503
            assert (await response.json())["reason"] == "no live worker"

        # Nothing generates here, so the job waits: its queue message is live.
        context, page = await open_chat(browser, idle)
        try:
            await send(page, "/avatar")
            await upload(page, "me.jpg", (DATA / "astronaut.jpg").read_bytes())
            await page.locator("[data-testid=style-oil]").click()
            status = page.locator("[data-testid=msg-bot-queued]")
            await status.wait_for()
            assert "You're next" in await status.inner_text()
            await status.locator("[data-testid=button-cancel]").click()
            await page.locator("[data-testid=msg-bot-text]", has_text="Cancelled. Send").wait_for()
            # The status tracker edits the queue message in place over the websocket.
            await page.locator("[data-testid=msg-bot-queued]", has_text="✖ Cancelled.").wait_for()
            assert await page.locator("[data-testid=msg-bot-queued]").count() == 1
        finally:
            await context.close()
