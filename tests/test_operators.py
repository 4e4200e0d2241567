"""Operators in control, through the conversation: the access policy, admin commands, the
pause, per-chat settings and the audit trail, against real Redis, the real intake and
queue and a real CPU worker."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot import operator_texts, texts
from bot.admin_commands import AdminUsageError, plan
from bot.audit import AuditLog
from bot.config import ConfigError, Settings, load_settings
from bot.jobs import Job, JobRequest, JobStatus, Owner, Route
from bot.operator_stats import likeness_median
from bot.replies import Action, Failure, Queued, Reply, StylePicker, Text, format_callback
from bot.scopes import ScopeError, parse_scope, scopes_of
from bot.status_tracker import StatusTracker
from tests import hostile
from tests.chat_stack import ChatStack, chat_stack, owner
from tests.test_conversation import queued_job, wait_final

BOSS = owner("boss")
ALICE = owner("alice")
BOB = owner("bob")
CAROL = owner("carol")
UNKNOWN = [Text(texts.unknown_command())]


@pytest.fixture
def admin_settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(AVATARBOT_ADMINS="test:boss")


@pytest.fixture
async def stack(admin_settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[ChatStack]:
    async with chat_stack(admin_settings, redis_client) as s:
        yield s


async def say(stack: ChatStack, who: Owner, message: str) -> str:
    """The one line the conversation answers `message` with."""
    replies = await stack.conversation.text(who, message)
    assert len(replies) == 1, replies
    reply = replies[0]
    assert isinstance(reply, Text | Failure), replies
    return reply.text


async def user_keys(stack: ChatStack, name: str) -> list[bytes]:
    """Keys that name the user (sessions, selfies, throttles...)."""
    prefix = stack.settings.key_prefix
    return [k async for k in stack.redis.scan_iter(match=f"{prefix}:*") if name.encode() in k]


async def snapshot(stack: ChatStack, name: str) -> dict[bytes, Any]:
    """The user's keys and their contents."""
    return {k: await stack.redis.dump(k) for k in await user_keys(stack, name)}


async def audit(stack: ChatStack) -> list[tuple[str, str, str, str]]:
    log = AuditLog(stack.redis, stack.settings.key_prefix)
    return [(e.actor, e.action, e.target, e.detail) for e in await log.recent(200)]


# --------------------------------------------------------------------------- who is an admin


ADMIN_LINES = [
    "/stats", "/ban test:alice", "/unban test:alice", "/quota test:alice 3", "/quota default",
    "/pause lunch", "/resume", "/allow test:alice", "/deny test:alice", "/mode restricted",
    "/log", "/group off", "/ban", "/stats@SomeBot",
]  # fmt: skip


async def test_non_admin_gets_exactly_the_unknown_command_reply(stack: ChatStack) -> None:
    stack.conversation.on_chat_admins("test", _lookup({"group-1": ["someone-else"]}))
    in_group = Owner("test", "alice", "group-1")
    assert await stack.conversation.text(ALICE, "/frobnicate") == UNKNOWN
    for line in ADMIN_LINES:
        assert await stack.conversation.text(ALICE, line) == UNKNOWN, line
        assert await stack.conversation.text(in_group, line) == UNKNOWN, line
    assert await stack.conversation.gate.policy.denied() == []
    assert await stack.conversation.gate.policy.mode() == "open"
    assert await stack.conversation.gate.policy.paused() is None
    assert [a for a in await audit(stack) if a[1] != "refused"] == []


async def test_admin_commands_answer_and_bad_words_get_the_usage(stack: ChatStack) -> None:
    assert (await say(stack, BOSS, "/mode")) == operator_texts.access_mode(restricted=False)
    assert (await say(stack, BOSS, "/ban")) == "Usage: /ban PLATFORM:USER_ID"
    assert (await say(stack, BOSS, "/quota test:alice lots")).startswith("Usage: /quota")
    assert "is not a user" in await say(stack, BOSS, "/ban alice")
    assert "is not a scope" in await say(stack, BOSS, "/allow telegram-group:5")
    assert (await say(stack, BOSS, "/ban test:boss")) == operator_texts.ban_admin("test:boss")
    assert (await say(stack, BOSS, "/deny")) == operator_texts.deny_list([])
    assert (await say(stack, BOSS, "/resume")) == operator_texts.admin_not_paused()
    assert (await say(stack, BOSS, "/log")) == operator_texts.log_empty()  # looking changes nothing


# --------------------------------------------------------------------------- bans


async def test_ban_mid_queue_cancels_the_job_and_refuses_before_intake(
    stack: ChatStack, face_jpeg: bytes
) -> None:
    conv = stack.conversation
    alice_job = await queued_job(stack, face_jpeg, who=ALICE)
    bob_job = await queued_job(stack, face_jpeg, who=BOB)
    pushed: list[Queued] = []

    async def update(job: Job, reply: Queued) -> None:
        pushed.append(reply)

    tracker = StatusTracker(
        stack.queue, conv, conv.waiting, stack.redis, stack.settings.key_prefix, throttle_s=0.001
    )
    tracker.register("test", update)

    banned = await say(stack, BOSS, "/ban test:alice")
    assert banned == operator_texts.banned("test:alice", 1)
    job = await stack.queue.get_job(alice_job.job_id)
    assert job is not None
    assert job.status is JobStatus.CANCELLED
    assert await conv.selfies.get(ALICE) is None
    await tracker.poll_once()  # what the queue can tell her: her queue message says so
    assert [r.text for r in pushed if r.job_id == alice_job.job_id] == [texts.status_cancelled()]

    # Everything she tries now is one line, and nothing of hers is stored.
    before = await snapshot(stack, "alice")
    denied = [Failure(operator_texts.denied())]
    assert await conv.text(ALICE, "/avatar") == denied
    assert await conv.text(ALICE, "/stats") == denied  # as for any other command
    assert await conv.text(ALICE, "hello") == denied
    assert await conv.selfie(ALICE, hostile.zip_file()) == denied  # no intake: no ZIP error
    assert await conv.image(ALICE, face_jpeg) == denied
    assert await conv.choose(ALICE, "sketch") == denied
    assert await conv.button(ALICE, "v1:n:2") == denied
    assert await conv.button(ALICE, format_callback(Action.MORE, alice_job.job_id)) == denied
    # Deleting is always allowed (her selfie went with the ban).
    assert await conv.button(ALICE, format_callback(Action.FORGET, alice_job.job_id)) == [
        Text(texts.no_selfie_to_forget())
    ]
    assert await snapshot(stack, "alice") == before

    # The queue keeps going for everyone else; her job is never generated.
    stack.start_worker()
    await wait_final(stack, bob_job.job_id)
    bob = await stack.queue.get_job(bob_job.job_id)
    assert bob is not None
    assert bob.status is JobStatus.DONE
    assert await stack.queue.get_result(alice_job.job_id) is None

    assert (await say(stack, BOSS, "/unban test:alice")) == operator_texts.unbanned("test:alice")
    assert await conv.text(ALICE, "/avatar") == [Text(texts.ask_selfie())]
    actions = [(a[0], a[1], a[2]) for a in await audit(stack)]
    assert ("test:boss", "ban", "test:alice") in actions
    assert ("test:boss", "unban", "test:alice") in actions
    assert ("test:alice", "refused", "test-chat:chat-alice") in actions


async def test_forget_me_keeps_bans_and_drops_the_rest(stack: ChatStack) -> None:
    conv = stack.conversation
    await say(stack, BOSS, "/quota test:alice 7")
    await say(stack, BOSS, "/allow test:alice")
    await say(stack, BOSS, "/ban test:alice")
    assert await conv.text(ALICE, "/help") == [Failure(operator_texts.denied())]
    before = await audit(stack)
    assert {a[1] for a in before if "test:alice" in (a[0], a[2])} == {
        "quota", "allow", "ban", "refused",
    }  # fmt: skip

    # A banned user may still have their data deleted.
    forgot = await conv.text(ALICE, "/forgetme")
    assert isinstance(forgot[0], Text)
    assert forgot[0].text.startswith("🗑 Done.")
    after = await audit(stack)
    assert [a for a in after if "test:alice" in (a[0], a[2])] == [
        ("test:boss", "ban", "test:alice", "0 job(s) cancelled")
    ]
    assert await conv.gate.policy.denied() == ["test:alice"]  # still banned
    assert await conv.gate.policy.allowed() == []
    assert not (await conv.gate.quotas.for_user("test:alice")).own


# --------------------------------------------------------------------------- pause


async def test_pause_with_jobs_queued_they_still_finish(stack: ChatStack, face_jpeg: bytes) -> None:
    conv = stack.conversation
    first = await queued_job(stack, face_jpeg, who=ALICE)
    second = await queued_job(stack, face_jpeg, who=BOB, style="oil")
    answer = await say(stack, BOSS, "/pause Back at 18:00 UTC")
    assert answer == operator_texts.admin_paused(operator_texts.paused("Back at 18:00 UTC"))

    back_soon = [Text(operator_texts.paused("Back at 18:00 UTC"))]
    assert await conv.text(CAROL, "/avatar") == back_soon
    assert await conv.selfie(CAROL, face_jpeg) == back_soon
    assert await conv.selfies.get(CAROL) is None
    assert await conv.text(CAROL, "/help") != back_soon  # only new avatars wait
    assert isinstance((await conv.text(BOSS, "/avatar"))[0], Text)  # admins may still try
    assert isinstance((await conv.selfie(BOSS, face_jpeg))[0], StylePicker)

    stack.start_worker()
    for job in (first, second):
        await wait_final(stack, job.job_id)
        done = await stack.queue.get_job(job.job_id)
        assert done is not None
        assert done.status is JobStatus.DONE
    # Alice's "more like this" is a new request: it waits too.
    assert await conv.choose(ALICE, "sketch") == back_soon

    assert (await say(stack, BOSS, "/resume")) == operator_texts.admin_resumed()
    assert await conv.text(CAROL, "/avatar") == [Text(texts.ask_selfie())]
    assert isinstance((await conv.choose(ALICE, "sketch"))[0], Queued)


# --------------------------------------------------------------------------- restricted mode


async def test_restricted_mode_lets_in_only_listed_users_chats_and_guilds(
    stack: ChatStack, face_jpeg: bytes
) -> None:
    conv = stack.conversation
    assert (await say(stack, BOSS, "/mode restricted")) == operator_texts.access_mode(
        restricted=True
    )
    private = [Failure(operator_texts.not_allowed())]
    assert await conv.text(ALICE, "/start") == private
    assert await conv.selfie(ALICE, face_jpeg) == private
    assert await conv.text(ALICE, "/forgetme") != private  # deleting is always allowed
    assert await user_keys(stack, "alice") == []
    assert await conv.text(BOSS, "/avatar") == [Text(texts.ask_selfie())]  # admins need no list

    added = await say(stack, BOSS, "/allow test:alice")
    assert added == operator_texts.allow_added("test:alice")
    assert await conv.text(ALICE, "/avatar") == [Text(texts.ask_selfie())]

    in_group = Owner("test", "dave", "group-9")
    in_guild = Owner("test", "erin", "channel-3", space="guild-7")
    assert await conv.text(in_group, "/avatar") == private
    assert await conv.text(in_guild, "/avatar") == private
    await say(stack, BOSS, "/allow test-chat:group-9")
    await say(stack, BOSS, "/allow test-guild:guild-7")
    assert await conv.text(in_group, "/avatar") == [Text(texts.ask_selfie())]
    assert await conv.text(in_guild, "/avatar") == [Text(texts.ask_selfie())]
    assert await conv.text(Owner("test", "dave", "dm-dave"), "/avatar") == private  # not there

    # The deny list always wins over the allow list.
    await say(stack, BOSS, "/deny test-chat:group-9")
    assert await conv.text(in_group, "/avatar") == [Failure(operator_texts.denied())]
    assert (await say(stack, BOSS, "/allow")) == operator_texts.allow_list(
        ["test-chat:group-9", "test-guild:guild-7", "test:alice"]
    )
    await say(stack, BOSS, "/allow test:*")  # a whole platform
    assert await conv.text(CAROL, "/avatar") == [Text(texts.ask_selfie())]
    await say(stack, BOSS, "/mode open")
    assert await conv.text(in_group, "/avatar") == [Failure(operator_texts.denied())]


async def test_restricted_from_the_settings_until_changed_live(
    settings_factory: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    settings = settings_factory(AVATARBOT_ADMINS="test:boss", AVATARBOT_ACCESS_MODE="restricted")
    async with chat_stack(settings, redis_client) as stack:
        assert await stack.conversation.text(ALICE, "/help") == [
            Failure(operator_texts.not_allowed())
        ]
        await say(stack, BOSS, "/mode open")
        # Another bot process (a new conversation on the same Redis) sees it at once.
        async with chat_stack(settings, redis_client) as other:
            assert (await other.conversation.text(ALICE, "/help"))[0] != Failure(
                operator_texts.not_allowed()
            )


# --------------------------------------------------------------------------- quotas, stats


async def test_quota_per_user_and_default(stack: ChatStack, face_jpeg: bytes) -> None:
    conv = stack.conversation
    assert (await say(stack, BOSS, "/quota test:alice")) == operator_texts.quota_of(
        "test:alice", 20, own=False
    )
    await say(stack, BOSS, "/quota test:alice 1")
    stack.start_worker()
    first = await queued_job(stack, face_jpeg, who=ALICE)
    await wait_final(stack, first.job_id)
    over = await conv.choose(ALICE, "oil")
    assert isinstance(over[0], Failure)
    assert "You've made 1 avatar today" in over[0].text  # plural forms: one avatar
    await say(stack, BOSS, "/quota test:alice 0")
    assert await conv.choose(ALICE, "oil") == [Failure(operator_texts.no_quota())]
    reset = await say(stack, BOSS, "/quota test:alice reset")
    assert reset == operator_texts.quota_reset("test:alice", 20)
    assert (await say(stack, BOSS, "/quota default 1")) == operator_texts.quota_default_set(1)
    last = (await conv.choose(ALICE, "oil"))[0]
    assert isinstance(last, Failure)
    assert "You've made 1 avatar today" in last.text  # the new default, 1


async def test_stats_count_todays_avatars_failures_and_time(
    stack: ChatStack, face_jpeg: bytes
) -> None:
    await say(stack, BOSS, "/pause")
    queued = await stack.queue.enqueue(
        JobRequest(owner=BOB, route=Route(bot="elsewhere"), style_id="no-such-style"), face_jpeg
    )
    first = await queued_job(stack, face_jpeg, who=BOSS)
    before = await say(stack, BOSS, "/stats")
    assert before.startswith("Queue: 2 waiting, 0 running, 0 workers live.")
    assert "Today (UTC): 0 avatars, 0 failures." in before
    assert "Time to avatar, median: n/a." in before
    assert "Paused since" in before

    stack.start_worker()
    await wait_final(stack, first.job_id)
    await wait_final(stack, queued.job.id)
    after = await say(stack, BOSS, "/stats")
    assert "Queue: 0 waiting, 0 running, 1 worker live." in after
    assert "Today (UTC): 1 avatar, 1 failure." in after
    p50 = float(after.split("Time to avatar, median: ")[1].split(" s.")[0])
    done = await stack.queue.get_job(first.job_id)
    assert done is not None
    assert done.finished_at is not None
    assert p50 == pytest.approx(done.finished_at - done.created_at, abs=0.06)
    # The stack's worker scores likeness as production does: the astronaut's avatar is her.
    median = re.search(r"Likeness, median: (\d+)%\.", after)
    assert median is not None, after
    assert int(median.group(1)) >= 50  # at or above "same person"


def test_likeness_median_reads_scores_where_present() -> None:
    def header(*scores: float | None) -> dict[str, Any]:
        images: list[dict[str, Any]] = [{"mime": "image/png"}]
        images += [{"likeness": {"distance": 0.3, "score": s}} for s in scores]
        return {"images": images}

    assert likeness_median([]) is None
    assert likeness_median([header(), header(None)]) is None
    assert likeness_median([header(0.5, 0.9), header(0.7), header(None)]) == 0.7


# --------------------------------------------------------------------------- group settings


def _lookup(admins: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    """What a platform answers for a group's admins (Telegram: getChatAdministrators)."""

    async def lookup(chat_id: str) -> Collection[str]:
        if calls is not None:
            calls.append(chat_id)
        if chat_id not in admins:
            raise LookupError("chat not found")
        return admins[chat_id]

    return lookup


async def test_group_admins_turn_the_bot_off_and_limit_variants(
    stack: ChatStack, face_jpeg: bytes
) -> None:
    conv = stack.conversation
    calls: list[str] = []
    conv.on_chat_admins("test", _lookup({"group-1": ["gadmin"]}, calls))
    gadmin = Owner("test", "gadmin", "group-1")
    member = Owner("test", "alice", "group-1")

    assert await conv.text(member, "/group off") == UNKNOWN
    assert await conv.text(gadmin, "/group") == [Text(operator_texts.group_state(True, 4))]
    assert await conv.text(gadmin, "/group off") == [Text(operator_texts.group_turned(on=False))]
    assert calls == ["group-1"]  # cached: one question to the platform
    assert await conv.text(member, "/avatar") == [Failure(operator_texts.chat_off())]
    assert await conv.text(ALICE, "/avatar") == [Text(texts.ask_selfie())]  # her own chat
    assert await conv.text(gadmin, "/group on") == [Text(operator_texts.group_turned(on=True))]

    assert await conv.text(gadmin, "/group variants 2") == [Text(operator_texts.group_variants(2))]
    assert (await conv.text(gadmin, "/group variants 9"))[0] == Text(
        "Usage: /group [on|off|variants 1-4|variants any]"
    )
    await conv.selfie(member, face_jpeg)
    replies: list[Reply] = await conv.choose(member, "sketch", variants=4)
    assert replies[0] == Text(operator_texts.variants_capped(2))
    assert isinstance(replies[1], Queued)
    job = await stack.queue.get_job(replies[1].job_id)
    assert job is not None
    assert job.variants == 2
    private_chat = Owner("test", "boss", "boss")
    assert await conv.text(private_chat, "/group") == [Text(operator_texts.group_only())]
    assert await conv.text(Owner("test", "x", "group-404"), "/group off") == UNKNOWN
    assert ("test:gadmin", "group", "test-chat:group-1", "off") in await audit(stack)


# --------------------------------------------------------------------------- the audit trail


async def test_refusals_are_audited_once_a_minute_and_capped(
    stack: ChatStack, redis_client: aioredis.Redis
) -> None:
    await say(stack, BOSS, "/mode restricted")
    for _ in range(3):
        await stack.conversation.text(ALICE, "/avatar")
    refusals = [a for a in await audit(stack) if a[1] == "refused"]
    assert refusals == [("test:alice", "refused", "test-chat:chat-alice", "not_allowed")]
    log = await say(stack, BOSS, "/log 5")
    lines = log.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("test:alice  refused  test-chat:chat-alice  not_allowed")
    assert lines[1].endswith("test:boss  mode  restricted")
    assert time.strftime("%Y-%m-%d", time.gmtime()) in lines[0]

    small = AuditLog(redis_client, stack.settings.key_prefix + "-cap", cap=10)
    for i in range(300):
        await small.record("cli:op", "quota", f"test:u{i}", "1")
    assert await redis_client.xlen(small.admin_stream) < 200  # trimmed as it grows
    await redis_client.delete(small.admin_stream)


# --------------------------------------------------------------------------- grammar, settings


@pytest.mark.parametrize(
    ("command", "words"),
    [("ban", []), ("ban", ["a:1", "b:2"]), ("stats", ["now"]), ("quota", []),
     ("quota", ["default", "-1"]), ("mode", ["closed"]), ("log", ["0"]), ("log", ["999"]),
     ("allow", ["remove", "a:1", "b:2"]), ("deny", ["x:1", "y:2"]), ("resume", ["now"])],
)  # fmt: skip
def test_bad_words_raise_the_usage(command: str, words: list[str]) -> None:
    with pytest.raises(AdminUsageError) as caught:
        plan(command, words, lead="avatarbot admin ")
    assert caught.value.user_message.startswith(f"Usage: avatarbot admin {command}")


def test_scopes() -> None:
    assert scopes_of(Owner("discord", "5", "chan", space="99")) == [
        "discord:5", "discord:*", "discord-chat:chan", "discord-guild:99",
    ]  # fmt: skip
    for good in ("telegram:42", "telegram-chat:-1001234", "discord-guild:987", "web:*"):
        assert parse_scope(good) == good
    for bad in ("telegram", "telegram:", "Telegram:1", "tg-group:1", "a:b c", "x-chat:*", ""):
        with pytest.raises(ScopeError):
            parse_scope(bad)


def test_admins_setting() -> None:
    settings = load_settings({"AVATARBOT_ADMINS": " telegram:42, discord:123 ,"})
    assert settings.admins == frozenset({"telegram:42", "discord:123"})
    assert load_settings({}).admins == frozenset()
    with pytest.raises(ConfigError, match="AVATARBOT_ADMINS"):
        load_settings({"AVATARBOT_ADMINS": "telegram:42,telegram-chat:-5"})
