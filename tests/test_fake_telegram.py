"""The fake Bot API holds requests to the official spec and behaves like Telegram where
the adapter depends on it (long polling, files, errors, webhooks)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto
from telegram.error import BadRequest, Forbidden, RetryAfter

from tests.fake_telegram import FakeTelegram

# PTB 22 warns about RetryAfter.retry_after turning into a timedelta in v23 whenever a 429
# is raised; that is PTB's own notice, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def _png(side: int, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as b:
        yield b


async def _raw(fake: FakeTelegram, method: str, data: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}{fake.token}/{method}", data=data) as resp,
    ):
        return resp.status, await resp.json()


async def test_real_client_round_trip_is_spec_clean(fake: FakeTelegram, bot: Bot) -> None:
    user = fake.user(42)
    chat = fake.private_chat(user)
    me = await bot.get_me()
    assert me.is_bot
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go:1")]])
    sent = await bot.send_message(chat["id"], "hello", reply_markup=keyboard)
    assert sent.text == "hello"
    await bot.edit_message_text("hello again", chat_id=chat["id"], message_id=sent.message_id)
    photo = await bot.send_photo(chat["id"], _png(64), caption="one")
    album = await bot.send_media_group(
        chat["id"],
        [InputMediaPhoto(_png(32)), InputMediaPhoto(photo.photo[-1].file_id)],
    )
    assert len(album) == 2
    assert album[0].media_group_id == album[1].media_group_id
    stored = fake.add_file(b"\x89PNG-bytes")
    file = await bot.get_file(stored.file_id)
    assert bytes(await file.download_as_bytearray()) == b"\x89PNG-bytes"
    assert fake.downloads == [stored.file_path]
    upload = fake.calls_to("sendPhoto")[0].uploads["photo"]
    assert upload.data == _png(64)
    assert fake.violations == []


async def test_bad_requests_are_refused_and_recorded(fake: FakeTelegram) -> None:
    fake.private_chat(fake.user(42))
    status, body = await _raw(fake, "sendMessage", {"text": "no chat"})
    assert (status, body["ok"]) == (400, False)
    status, _ = await _raw(fake, "deleteMessage", {"chat_id": "42", "message_id": "abc"})
    assert status == 400
    status, _ = await _raw(fake, "sendMessage", {"chat_id": "42", "text": "x", "colour": "red"})
    assert status == 400
    status, _ = await _raw(
        fake,
        "sendMessage",
        {"chat_id": "42", "text": "x", "reply_markup": '{"inline_keyboard": [[{"txt": "a"}]]}'},
    )
    assert status == 400
    status, _ = await _raw(fake, "sendAvatar", {"chat_id": "42"})
    assert status == 404
    assert len(fake.violations) == 5
    assert "required field 'chat_id' is missing" in fake.violations[0]
    assert "deleteMessage.message_id" in fake.violations[1]
    assert "unknown field 'colour'" in fake.violations[2]
    assert "InlineKeyboardButton has no field 'txt'" in fake.violations[3]
    assert "unknown method 'sendAvatar'" in fake.violations[4]


async def test_limits_are_checked(fake: FakeTelegram, bot: Bot) -> None:
    chat = fake.private_chat(fake.user(42))
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="y" * 65)]])
    with pytest.raises(BadRequest):
        await bot.send_message(chat["id"], "hi", reply_markup=too_long)
    with pytest.raises(BadRequest):
        await bot.send_media_group(chat["id"], [InputMediaPhoto(_png(8))])
    assert any("BUTTON_DATA_INVALID" in v for v in fake.violations)
    assert any("2-10 items" in v for v in fake.violations)


async def test_errors_on_demand(fake: FakeTelegram, bot: Bot) -> None:
    chat = fake.private_chat(fake.user(42))
    fake.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter, match="Retry in 3"):
        await bot.send_message(chat["id"], "hi")
    await bot.send_message(chat["id"], "hi")  # once only
    fake.block(chat["id"])
    with pytest.raises(Forbidden):
        await bot.send_message(chat["id"], "hi")
    big = fake.add_file(b"x", reported_size=25 * 1024 * 1024)
    with pytest.raises(BadRequest, match="too big"):
        await bot.get_file(big.file_id)
    assert fake.violations == []


async def test_long_poll_holds_then_answers_and_close_releases() -> None:
    fake = await FakeTelegram().start()
    async with Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as b:
        assert await b.get_updates(timeout=0) == ()
        user = fake.user(7)
        chat = fake.private_chat(user)
        poll = asyncio.create_task(b.get_updates(timeout=30))
        await asyncio.sleep(0.05)  # let the poll park
        fake.send_text(chat, user, "/avatar")
        updates = await asyncio.wait_for(poll, 10)
        assert updates[0].message is not None
        assert updates[0].message.text == "/avatar"
        # A parked poll ends when the server shuts down, long before its 30 s timeout.
        parked = asyncio.create_task(
            b.get_updates(offset=updates[0].update_id + 1, timeout=30, read_timeout=60)
        )
        await asyncio.sleep(0.05)
        await asyncio.wait_for(fake.close(), 10)
        assert await asyncio.wait_for(parked, 10) == ()
    assert fake.violations == []


async def test_webhook_updates_carry_the_secret(fake: FakeTelegram, bot: Bot) -> None:
    seen: list[tuple[str | None, int]] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), body["update_id"]))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")  # noqa: S106  # a test secret
        user = fake.user(5)
        fake.send_text(fake.private_chat(user), user, "/start")
        await fake.wait_until(lambda: bool(fake.webhook_posts))
        assert seen == [("s3cret", fake.webhook_posts[0][0])]
        assert fake.webhook_posts[0][1] == 200
        with pytest.raises(Exception, match="webhook is active"):
            await bot.get_updates(timeout=0)
    finally:
        await runner.cleanup()
    assert fake.violations == []
