"""Operators in control, on Telegram: the admin commands, a ban mid-queue, the pause with
jobs queued, restricted mode, and a group's own admins, through real python-telegram-bot
against the fake Bot API (getChatAdministrators and chat_member updates included), with
the real conversation, queue and a real CPU worker on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from telegram.error import BadRequest

from bot import operator_texts, texts
from bot.audit import AuditLog
from bot.config import Settings
from bot.jobs import JobStatus
from bot.replies import Action
from bot.selfie import SelfieIntake
from tests.fake_telegram import Call, FakeTelegram
from tests.telegram_harness import TelegramHarness, eventually, telegram_env
from tests.test_telegram_bot import STYLE, bound, wait_picker

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

BOSS = 9001
ADMIN_LINES = [
    "/stats", "/ban telegram:42", "/unban telegram:42", "/quota telegram:42 3", "/pause",
    "/resume", "/allow telegram:42", "/deny telegram:42", "/mode restricted", "/log",
    "/group off", "/stats@avatar_test_bot",
]  # fmt: skip


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def harness(
    fake: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
) -> AsyncIterator[TelegramHarness]:
    """The bot with telegram:9001 as its admin, and no worker until a test starts one."""
    settings = settings_factory(**telegram_env(fake), AVATARBOT_ADMINS=f"telegram:{BOSS}")
    async with TelegramHarness(fake, settings, redis_client, intake=intake) as h:
        await h.start_bot()
        yield h
        assert h.bot is None or h.bot.errors == []
        assert h.bot is None or h.bot.adapter.handler_errors == 0
    assert fake.violations == []


# --------------------------------------------------------------------------- helpers


async def say(fake: FakeTelegram, chat: dict[str, Any], user: dict[str, Any], text: str) -> Call:
    """`user` sends `text` in `chat`; the bot's next message there."""
    before = len(fake.calls_to("sendMessage", chat["id"]))
    fake.send_text(chat, user, text)
    calls = await fake.wait_for("sendMessage", chat_id=chat["id"], count=before + 1)
    return calls[before]


async def answer(fake: FakeTelegram, chat: dict[str, Any], user: dict[str, Any], text: str) -> str:
    return str((await say(fake, chat, user, text)).fields["text"])


async def unanswered(
    fake: FakeTelegram, chat: dict[str, Any], user: dict[str, Any], text: str
) -> None:
    """`text` from `user` gets no answer: a /help sent after it (handled after it, in
    order) is the only message the bot sends."""
    before = len(fake.sent_to(chat["id"]))
    fake.send_text(chat, user, text)
    assert await answer(fake, chat, user, "/help") != texts.unknown_command()
    assert len(fake.sent_to(chat["id"])) == before + 1, fake.sent_to(chat["id"])[before:]


async def queue_avatar(
    fake: FakeTelegram, user: dict[str, Any], chat: dict[str, Any], jpeg: bytes, variants: int = 1
) -> Call:
    """A photo with the /avatar caption, `variants`, the style: the queue message."""
    fake.send_photo(chat, user, jpeg, caption="/avatar")
    picker = await wait_picker(fake, chat["id"])
    if variants != 1:
        edits = len(fake.calls_to("editMessageText", chat["id"]))
        fake.press(user, picker.result, bound(user, Action.VARIANTS, str(variants)))
        await fake.wait_for("editMessageText", chat_id=chat["id"], count=edits + 1)
    fake.press(user, picker.result, bound(user, Action.PICK, STYLE))

    def queued() -> list[Call]:  # the picker edited into it, or a new message after a note
        return [
            c
            for c in fake.sent_to(chat["id"])
            if c.method in ("sendMessage", "editMessageText")
            and str(c.fields.get("text", "")).startswith("⏳")
            and c.at > picker.at
        ]

    await fake.wait_until(lambda: bool(queued()))
    return queued()[0]


def job_id_of(queued: Call) -> str:
    cancel = [d for _, d in FakeTelegram.buttons(queued.result) if d.startswith("v1:cancel:")]
    return cancel[0].split(":")[2]


# --------------------------------------------------------------------------- who is an admin


async def test_admin_commands_answer_the_admin_and_are_unknown_to_everyone_else(
    harness: TelegramHarness, fake: FakeTelegram
) -> None:
    boss, alice = fake.user(BOSS, "Boss"), fake.user(1101, "Alice")
    boss_chat, alice_chat = fake.private_chat(boss), fake.private_chat(alice)
    group = fake.group_chat(-5301)

    for line in ADMIN_LINES:  # in private: exactly the reply to any unknown command
        assert await answer(fake, alice_chat, alice, line) == texts.unknown_command(), line
    for line in ["/ban telegram:42", "/stats", "/group off", "/pause now"]:
        await unanswered(fake, group, alice, line)  # in a group: as any command not ours
    policy = harness.conversation.gate.policy
    assert (await policy.denied(), await policy.paused(), await policy.mode()) == ([], None, "open")

    # The whole text reaches the core: the user to ban, the pause message.
    banned = await answer(fake, boss_chat, boss, "/ban telegram:42")
    assert banned == operator_texts.banned(user="telegram:42", jobs=0)
    assert await answer(fake, boss_chat, boss, "/ban") == "Usage: /ban PLATFORM:USER_ID"
    in_group = await say(fake, group, boss, "/stats@avatar_test_bot")
    assert str(in_group.fields["text"]).startswith("Queue: 0 waiting, 0 running")
    assert in_group.fields["reply_parameters"]["message_id"] > 0  # a reply to the boss
    await unanswered(fake, group, boss, "/ban@some_other_bot telegram:7")  # not for us
    assert await policy.denied() == ["telegram:42"]
    log = AuditLog(harness.redis, harness.settings.key_prefix)
    assert [(e.actor, e.action, e.target) for e in await log.recent(50)] == [
        ("telegram:9001", "ban", "telegram:42")
    ]
    # Alice's /group in the group asked Telegram who its admins are (none known: not her).
    assert [c.fields["chat_id"] for c in fake.calls_to("getChatAdministrators")] == [-5301]


async def test_a_long_audit_log_is_cut_to_one_telegram_message(
    harness: TelegramHarness, fake: FakeTelegram
) -> None:
    boss = fake.user(BOSS, "Boss")
    chat = fake.private_chat(boss)
    log = AuditLog(harness.redis, harness.settings.key_prefix)
    for i in range(120):
        await log.record("cli:op", "quota", f"telegram:{1000 + i}", "5")
    shown = await answer(fake, chat, boss, "/log 120")
    lines = shown.splitlines()
    assert 40 < len(lines) < 120  # as many whole entries as fit
    assert lines[0].endswith("cli:op  quota  telegram:1119  5")  # the newest first
    assert all(line.endswith("  5") for line in lines)


# --------------------------------------------------------------------------- bans, pause


async def test_a_ban_mid_queue_cancels_the_job_and_refuses_the_user(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    boss, alice, bob = fake.user(BOSS, "Boss"), fake.user(1201, "Alice"), fake.user(1202, "Bob")
    alice_chat, bob_chat = fake.private_chat(alice), fake.private_chat(bob)
    alice_job = job_id_of(await queue_avatar(fake, alice, alice_chat, face_jpeg))
    bob_job = job_id_of(await queue_avatar(fake, bob, bob_chat, face_jpeg))

    banned = await answer(fake, fake.private_chat(boss), boss, "/ban telegram:1201")
    assert banned == operator_texts.banned(user="telegram:1201", jobs=1)
    # Her queue message says so (the status tracker edits it in place).
    await fake.wait_for(
        "editMessageText",
        lambda c: c.fields["text"] == texts.status_cancelled(),
        chat_id=alice_chat["id"],
    )
    downloads = len(fake.downloads)
    assert await answer(fake, alice_chat, alice, "/avatar") == operator_texts.denied()
    assert await answer(fake, alice_chat, alice, "hello") == operator_texts.denied()
    fake.send_photo(alice_chat, alice, face_jpeg, caption="/avatar")
    assert await answer(fake, alice_chat, alice, "/stats") == operator_texts.denied()
    assert len(fake.downloads) == downloads  # her photo was never even fetched

    await harness.start_worker()  # the queue goes on for everyone else
    await fake.wait_for("sendPhoto", chat_id=bob_chat["id"])
    done = await harness.queue.get_job(bob_job)
    cancelled = await harness.queue.get_job(alice_job)
    assert done is not None
    assert done.status is JobStatus.DONE
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    assert fake.calls_to("sendPhoto", alice_chat["id"]) == []  # no result for her


async def test_pause_with_jobs_queued_they_still_finish(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    boss, alice, bob, carol = (fake.user(i) for i in (BOSS, 1301, 1302, 1303))
    boss_chat, carol_chat = fake.private_chat(boss), fake.private_chat(carol)
    alice_chat, bob_chat = fake.private_chat(alice), fake.private_chat(bob)
    await queue_avatar(fake, alice, alice_chat, face_jpeg)
    await queue_avatar(fake, bob, bob_chat, face_jpeg)

    paused = await answer(fake, boss_chat, boss, "/pause Back at six")
    assert paused == operator_texts.admin_paused(operator_texts.paused("Back at six"))
    back_soon = operator_texts.paused("Back at six")
    assert await answer(fake, carol_chat, carol, "/avatar") == back_soon
    fake.send_photo(carol_chat, carol, face_jpeg, caption="/avatar")
    assert (await say(fake, carol_chat, carol, "/help")).fields["text"] == back_soon
    assert await answer(fake, carol_chat, carol, "/help") != back_soon  # only new avatars wait

    await harness.start_worker()
    for chat in (alice_chat, bob_chat):
        await fake.wait_for("sendPhoto", chat_id=chat["id"])
    assert await answer(fake, boss_chat, boss, "/resume") == operator_texts.admin_resumed()
    assert await answer(fake, carol_chat, carol, "/avatar") == texts.ask_selfie()


async def test_restricted_mode_refuses_an_unlisted_user_until_their_group_is_allowed(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    boss, dave = fake.user(BOSS, "Boss"), fake.user(1401, "Dave")
    boss_chat, dave_chat = fake.private_chat(boss), fake.private_chat(dave)
    group = fake.group_chat(-5401)
    assert await answer(fake, boss_chat, boss, "/mode restricted") == operator_texts.access_mode(
        restricted=True
    )

    assert await answer(fake, dave_chat, dave, "/start") == operator_texts.not_allowed()
    assert await answer(fake, group, dave, "/avatar") == operator_texts.not_allowed()
    fake.send_photo(dave_chat, dave, face_jpeg)
    assert await answer(fake, dave_chat, dave, "/avatar") == operator_texts.not_allowed()
    assert fake.downloads == []
    keys = [k async for k in harness.redis.scan_iter(match=f"{harness.settings.key_prefix}:*")]
    assert not [k for k in keys if b"1401" in k]  # nothing of his is stored

    added = await answer(fake, boss_chat, boss, "/allow telegram-chat:-5401")
    assert added == operator_texts.allow_added(scope="telegram-chat:-5401")
    assert await answer(fake, group, dave, "/avatar") == texts.ask_selfie()
    assert (
        await answer(fake, dave_chat, dave, "/avatar") == operator_texts.not_allowed()
    )  # not there


# --------------------------------------------------------------------------- group admins


async def test_a_group_admin_turns_the_bot_off_and_limits_variants(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    gina, max_ = fake.user(1501, "Gina"), fake.user(1502, "Max")
    group = fake.group_chat(-5501)
    fake.set_admins(group, gina)
    asked = fake.calls_to  # getChatAdministrators, as Telegram is asked

    await unanswered(fake, group, max_, "/group off")  # not an admin of the group
    assert await answer(fake, group, gina, "/group") == operator_texts.group_state(
        enabled=True, limit=4
    )
    assert await answer(fake, group, gina, "/group off") == operator_texts.group_turned(on=False)
    assert len(asked("getChatAdministrators")) == 1  # cached
    assert asked("getChatAdministrators")[0].fields["chat_id"] == -5501
    assert await answer(fake, group, max_, "/avatar") == operator_texts.chat_off()
    assert await answer(fake, fake.private_chat(max_), max_, "/avatar") == texts.ask_selfie()

    assert await answer(fake, group, gina, "/group on") == operator_texts.group_turned(on=True)
    limited = await answer(fake, group, gina, "/group variants 2")
    assert limited == operator_texts.group_variants(limit=2)
    queued = await queue_avatar(fake, max_, group, face_jpeg, variants=4)
    capped = operator_texts.variants_capped(limit=2)
    assert capped in [c.fields.get("text") for c in fake.sent_to(group["id"])]
    job = await harness.queue.get_job(job_id_of(queued))
    assert job is not None
    assert job.variants == 2

    # Promoted: Telegram tells the bot (chat_member), which asks again.
    fake.change_admin(group, max_, admin=True)
    await eventually(lambda: _no_cached_admins(harness, "-5501"))
    assert await answer(fake, group, max_, "/group") == operator_texts.group_state(
        enabled=True, limit=2
    )
    assert len(asked("getChatAdministrators")) == 2
    assert fake.withheld == []  # the adapter asked for chat_member updates


async def _no_cached_admins(harness: TelegramHarness, chat_id: str) -> bool:
    admin = harness.conversation.admin
    assert admin is not None
    return not await harness.redis.exists(admin.group_admins.key("telegram", chat_id))


async def test_the_admin_lookup_asks_telegram_for_groups_only(
    harness: TelegramHarness, fake: FakeTelegram
) -> None:
    gina, bot = fake.user(1601, "Gina"), fake.user(1602, "Helper", is_bot=True)
    group = fake.group_chat(-5601)
    fake.set_admins(group, gina, bot)
    assert harness.bot is not None
    lookup = harness.bot.adapter.admins.lookup
    assert await lookup("-5601") == ["1601"]  # bots only when asked for (return_bots)
    assert await lookup("1601") == []  # a private chat: nothing to ask
    assert [c.fields["chat_id"] for c in fake.calls_to("getChatAdministrators")] == [-5601]
    # Telegram itself has no administrators for a private chat.
    fake.private_chat(gina)
    with pytest.raises(BadRequest, match="no administrators"):
        await harness.bot.adapter.bot.get_chat_administrators(1601)
