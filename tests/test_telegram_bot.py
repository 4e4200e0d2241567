"""The Telegram adapter, end to end: real python-telegram-bot over HTTP against the fake Bot
API (which checks every request against the official spec), real Redis, the real
conversation, queue, delivery pump and status tracker, and a real worker running the CPU
style engine on the same event loop."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from PIL import Image

from bot.config import Settings
from bot.replies import Action, format_callback
from tests.fake_telegram import Call, FakeTelegram
from tests.telegram_harness import TelegramHarness, telegram_env

# PTB 22 itself warns (on every 429) that RetryAfter.retry_after becomes a timedelta in v23.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

STYLE = "sketch"  # the fastest CPU effect


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def tg_settings(settings_factory: Callable[..., Settings], fake: FakeTelegram) -> Settings:
    return settings_factory(**telegram_env(fake))


@pytest.fixture
async def harness(
    fake: FakeTelegram, tg_settings: Settings, redis_client: aioredis.Redis
) -> AsyncIterator[TelegramHarness]:
    async with TelegramHarness(fake, tg_settings, redis_client) as h:
        await h.start_bot()
        await h.start_worker()
        yield h
        assert h.bot is None or h.bot.errors == []
    assert fake.violations == []


def image_of(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def texts_to(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [str(c.fields.get("text", "")) for c in fake.calls_to("sendMessage", chat_id)]


def button_data(call: Call, action: Action) -> str:
    prefix = format_callback(action, "x").rsplit(":", 1)[0] + ":"
    for _text, data in FakeTelegram.buttons(call.result):
        if data.startswith(prefix):
            return data
    raise AssertionError(f"no {action} button on {call.method}")


async def pick_style(
    fake: FakeTelegram, user: dict[str, Any], chat_id: int, style: str = STYLE
) -> Call:
    """Wait for the picker in this chat and press a style; returns the picker call."""
    picker = (
        await fake.wait_for(
            "sendMessage",
            lambda c: (
                c.chat_id == chat_id
                and "reply_markup" in c.fields
                and any(d == format_callback(Action.PICK, style) for _, d in fake.buttons(c.result))
            ),
        )
    )[-1]
    fake.press(user, picker.result, format_callback(Action.PICK, style))
    return picker


async def test_whole_flow_from_avatar_to_album(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(1001)
    chat = fake.private_chat(user)
    fake.send_text(chat, user, "/avatar")
    await fake.wait_for("sendMessage", lambda c: c.chat_id == chat["id"])
    fake.send_photo(chat, user, face_jpeg)
    picker = await fake.wait_for(
        "sendMessage", lambda c: c.chat_id == chat["id"] and "reply_markup" in c.fields
    )
    # The preview album came first, uploaded (no file ids cached yet).
    album = fake.calls_to("sendMediaGroup", chat["id"])
    assert len(album) == 1
    assert len(album[0].uploads) == len(list(harness.catalog))
    variants = [d for _, d in fake.buttons(picker[0].result) if d.startswith("v1:n:")]
    assert variants == [format_callback(Action.VARIANTS, str(n)) for n in (1, 2, 3, 4)]
    # Choose 3 variants: the picker is edited in place, then pick the style.
    fake.press(user, picker[0].result, format_callback(Action.VARIANTS, "3"))
    await fake.wait_for("editMessageText", lambda c: c.chat_id == chat["id"])
    fake.press(user, picker[0].result, format_callback(Action.PICK, STYLE))
    results = await fake.wait_for("sendMediaGroup", lambda c: c.chat_id == chat["id"], count=2)
    album_call = results[1]
    assert len(album_call.fields["media"]) == 3
    for item in album_call.fields["media"]:
        data = album_call.upload_for(item["media"]).data
        image = image_of(data)
        assert image.format in ("PNG", "JPEG")
        assert image.size == (harness.settings.output_size, harness.settings.output_size)
    buttons_msg = await fake.wait_for(
        "sendMessage",
        lambda c: (
            c.chat_id == chat["id"]
            and any(d.startswith("v1:more:") for _, d in fake.buttons(c.result))
        ),
    )
    labels = [d.split(":")[1] for _, d in fake.buttons(buttons_msg[0].result)]
    assert labels == ["more", "style", "orig", "forget"]
    # The queue message was one message, shown and then retired.
    assert fake.calls_to("deleteMessage", chat["id"])
    assert fake.calls_to("sendChatAction", chat["id"]) or harness.worker is not None
