"""What every chat adapter shares, in the core: the sent-parts ledger, buttons bound to
their recipient, the command table and the one path from an error to a reply."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bot import platform_texts, texts
from bot.chat_commands import CHAT_COMMANDS, COMMAND_NAMES, MENU, command
from bot.config import Settings
from bot.errors import AvatarbotError
from bot.jobs import Owner
from bot.redis_connection import RedisUnavailableError
from bot.replies import (
    MAX_CALLBACK_BYTES,
    Action,
    Avatar,
    BadCallbackError,
    Button,
    Failure,
    StyleOption,
    StylePicker,
    Text,
    bind,
    callback_allows,
    error_reply,
    format_callback,
    owner_tag,
    parse_callback,
)
from bot.sent_parts import Part, SentParts
from tests.chat_stack import chat_stack

ALICE = Owner("telegram", "1001", "-500")
BOB = Owner("telegram", "1002", "-500")


# --------------------------------------------------------------------------- sent parts


class Chat:
    """Records what reached the user; a part can be made to fail once."""

    def __init__(self, fail_once: str = "") -> None:
        self.received: list[str] = []
        self._fail = fail_once

    def part(self, name: str) -> Part:
        async def send() -> None:
            if name == self._fail:
                self._fail = ""
                raise ConnectionError(f"{name} failed on the way")
            self.received.append(name)

        return Part(name, send)


async def test_a_retry_sends_only_the_parts_not_sent_yet(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    ledger = SentParts(redis_client, key_prefix, ttl_s=60)
    chat = Chat(fail_once="1.0")
    parts = [chat.part(n) for n in ("0.0", "1.0", "1.1")]
    with pytest.raises(ConnectionError):
        await ledger.send_once("job1", parts)
    assert await ledger.sent("job1") == {"0.0"}
    assert await ledger.send_once("job1", parts) == 2
    assert await ledger.send_once("job1", parts) == 0  # a redelivery: nothing again
    assert chat.received == ["0.0", "1.0", "1.1"]
    assert 0 < await redis_client.ttl(ledger.key("job1")) <= 60
    other = Chat()
    assert await ledger.send_once("job2", [other.part("0")]) == 1  # per job


async def test_forgetme_removes_the_users_records(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    ledger = SentParts(redis_client, key_prefix, ttl_s=60)
    for job in ("a1", "a2", "b1"):
        await ledger.mark(job, "0")
    assert await ledger.forget(ALICE, ["a1", "a2"]) == 2
    assert await ledger.sent("a1") == set()
    assert await ledger.sent("b1") == {"0"}
    assert await ledger.forget(ALICE, []) == 0
    with pytest.raises(ValueError, match="ttl_s"):
        SentParts(redis_client, key_prefix, ttl_s=0)


# --------------------------------------------------------------------------- bound buttons


def picker() -> StylePicker:
    option = StyleOption("sketch", "✏️ Pencil sketch", "Pencil", preview=None)
    return StylePicker(text="Pick", options=(option,), variants=2)


def test_bound_buttons_answer_their_recipient_only() -> None:
    replies = bind(
        [
            picker(),
            Text("hi", buttons=(Button("New", Action.AVATAR),)),
            Avatar("job1", "sketch", "S", (), "c", buttons=(Button("More", Action.MORE, "job1"),)),
        ],
        ALICE,
    )
    bound_picker, text, avatar = replies
    assert isinstance(bound_picker, StylePicker)
    assert isinstance(text, Text)
    assert isinstance(avatar, Avatar)
    for data in [b.data for b in (*bound_picker.style_buttons, *bound_picker.variant_buttons)] + [
        text.buttons[0].data
    ]:
        assert data.endswith(":" + owner_tag(ALICE))
        assert callback_allows(data, ALICE)
        assert not callback_allows(data, BOB)
        assert not callback_allows(data, Owner("discord", "1001", "x"))  # same id elsewhere
    assert bound_picker.variant_buttons[1].label == texts.variant_chosen(2)
    # Job buttons are bound by their job (the conversation checks its owner): unchanged.
    assert avatar.buttons[0].data == format_callback(Action.MORE, "job1")
    assert callback_allows(avatar.buttons[0].data, BOB)
    assert picker().style_buttons[0].data == format_callback(Action.PICK, "sketch")


def test_bound_callback_data_fits_and_round_trips() -> None:
    tag = owner_tag(Owner("discord", "1" * 20, "x"))
    data = format_callback(Action.PICK, "s" * 32, owner=tag)
    assert len(data.encode()) <= MAX_CALLBACK_BYTES
    assert parse_callback(data) == (Action.PICK, "s" * 32)
    assert callback_allows("not callback data", BOB)  # left to parse_callback to refuse
    for bad in ("v1:pick:sketch:XYZ", "v1:pick:sketch:0123456789:extra", "v1:pick:sketch:"):
        with pytest.raises(BadCallbackError):
            parse_callback(bad)
    with pytest.raises(ValueError, match="owner"):
        Button("x", Action.PICK, "sketch", owner="alice")


# --------------------------------------------------------------------------- commands, errors


def test_one_command_table() -> None:
    assert len(set(COMMAND_NAMES)) == len(CHAT_COMMANDS)
    assert all(c.name.isalpha() and c.name.islower() for c in CHAT_COMMANDS)
    assert all(0 < len(c.summary) <= 100 for c in CHAT_COMMANDS)  # Discord's limit
    assert "start" not in {c.name for c in MENU}
    assert command("avatar").summary == platform_texts.command_avatar()
    with pytest.raises(KeyError):
        command("nope")


async def test_the_conversation_answers_every_command(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    async with chat_stack(settings, redis_client) as stack:
        for name in COMMAND_NAMES:
            replies = await stack.conversation.text(ALICE, f"/{name}")
            assert replies
            assert all(getattr(r, "text", "") != texts.unknown_command() for r in replies), name


def test_errors_become_one_friendly_line() -> None:
    class Busy(AvatarbotError):
        user_message = "Busy, try later."

    assert error_reply(Busy("queue full")) == Failure("Busy, try later.")
    assert error_reply(RedisConnectionError("refused")) == Failure(
        RedisUnavailableError().user_message
    )
    assert error_reply(KeyError("bug")) == Failure(AvatarbotError().user_message)
