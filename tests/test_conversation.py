"""The platform-neutral conversation against real Redis, the real intake, queue and a real
CPU worker (no fakes of our own code)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import pytest
import redis.asyncio as aioredis

from bot import job_texts, texts
from bot.config import Settings
from bot.jobs import Job, JobStatus, Owner
from bot.queue import Delivery, DeliveryPump, DeliveryQueue
from bot.replies import (
    MAX_CALLBACK_BYTES,
    Action,
    Avatar,
    BadCallbackError,
    Button,
    Failure,
    OriginalFile,
    Queued,
    Reply,
    StylePicker,
    Text,
    format_callback,
    parse_callback,
)
from bot.sessions import Stage
from bot.status_tracker import StatusTracker
from tests import hostile
from tests.chat_stack import ChatStack, chat_stack, owner

R = TypeVar("R")
ALICE = owner("alice")
BOB = owner("bob")


@pytest.fixture
async def stack(settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[ChatStack]:
    async with chat_stack(settings, redis_client) as s:
        yield s


def only(replies: list[Reply], kind: type[R]) -> R:
    assert len(replies) == 1, replies
    reply = replies[0]
    assert isinstance(reply, kind), replies
    return reply


async def queued_job(
    stack: ChatStack, face_jpeg: bytes, who: Owner = ALICE, style: str = "sketch"
) -> Queued:
    conv = stack.conversation
    await conv.avatar(who)
    only(await conv.selfie(who, face_jpeg), StylePicker)
    return only(await conv.choose(who, style), Queued)


async def wait_final(stack: ChatStack, job_id: str) -> None:
    for _ in range(600):
        job = await stack.queue.get_job(job_id)
        assert job is not None
        if job.status.final:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


# --------------------------------------------------------------------------- callback data


def test_callback_data_round_trips_within_64_bytes() -> None:
    longest_style = "s" * 32
    for action in Action:
        arg = longest_style if action is Action.PICK else "0123456789abcdef"
        data = format_callback(action, arg)
        assert len(data.encode()) <= MAX_CALLBACK_BYTES
        assert parse_callback(data) == (action, arg)
        assert Button("x", action, arg).data == data
    for bad in ["", "v1:more", "v2:more:abc", "v1:nope:abc", "v1:more:a:b", "v1:more:ABC!",
                "v1:more:" + "a" * 60]:  # fmt: skip
        with pytest.raises(BadCallbackError):
            parse_callback(bad)
    with pytest.raises(ValueError, match="button arg"):
        Button("x", Action.MORE, "no spaces allowed")


# --------------------------------------------------------------------------- the flow


async def test_full_flow_reaches_queued(stack: ChatStack, face_jpeg: bytes) -> None:
    conv = stack.conversation
    welcome = only(await conv.start(ALICE), Text)
    assert isinstance(welcome, Text)
    assert "labelled as AI-made" in welcome.text
    assert "1 hour" in welcome.text  # selfie_ttl_s = 3600
    assert welcome.buttons[0].action is Action.AVATAR

    ask = only(await conv.text(ALICE, "/avatar@SomeBot"), Text)
    assert isinstance(ask, Text)
    assert ask.text == texts.ask_selfie()
    assert (await conv.sessions.get(ALICE)).stage is Stage.AWAITING_SELFIE

    picker = only(await conv.image(ALICE, face_jpeg), StylePicker)
    assert isinstance(picker, StylePicker)
    assert [o.style_id for o in picker.options] == stack.catalog.ids
    assert all(o.preview is not None and o.preview.is_file() for o in picker.options)
    assert picker.variant_choices == (1, 2, 3, 4)
    assert (await conv.sessions.get(ALICE)).stage is Stage.CHOOSING_STYLE
    assert await conv.selfies.get(ALICE) is not None

    updated = only(await conv.button(ALICE, "v1:n:3"), StylePicker)
    assert isinstance(updated, StylePicker)
    assert updated.variants == 3

    queued = only(await conv.button(ALICE, picker.options[0].button.data), Queued)
    assert isinstance(queued, Queued)
    assert queued.position == 1
    assert queued.eta_s > 0
    assert queued.buttons[0].action is Action.CANCEL
    job = await stack.queue.get_job(queued.job_id)
    assert job is not None
    assert job.owner == ALICE
    assert job.style_id == picker.options[0].style_id
    assert job.variants == 3
    assert job.route.bot == stack.settings.bot_name
    assert (await conv.sessions.get(ALICE)).stage is Stage.IDLE
    assert queued.job_id in await conv.waiting.all()


async def test_typed_style_name_while_choosing(stack: ChatStack, face_jpeg: bytes) -> None:
    conv = stack.conversation
    await conv.selfie(ALICE, face_jpeg)
    reply = only(await conv.text(ALICE, "Watercolor"), Queued)
    assert isinstance(reply, Queued)
    job = await stack.queue.get_job(reply.job_id)
    assert job is not None
    assert job.style_id == "watercolor"
    assert only(await conv.text(ALICE, "hello"), Text) == Text(texts.unknown_command())


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (hostile.text_named_jpg, "text file"),
        (hostile.no_face_gradient, "couldn't find a face"),
        (hostile.one_pixel, "too small"),
        (hostile.zip_file, "ZIP archive"),
    ],
)
async def test_each_rejection_is_one_friendly_line(
    stack: ChatStack, data: Callable[[], bytes], says: str
) -> None:
    reply = only(await stack.conversation.selfie(ALICE, data()), Failure)
    assert says in reply.text
    assert "\n" not in reply.text
    assert len(reply.text) < 200
    assert await stack.conversation.selfies.get(ALICE) is None
    assert (await stack.conversation.sessions.get(ALICE)).stage is Stage.AWAITING_SELFIE


async def test_choose_without_selfie_and_unknown_style(stack: ChatStack, face_jpeg: bytes) -> None:
    conv = stack.conversation
    assert only(await conv.choose(ALICE, "sketch"), Failure) == Failure(texts.selfie_expired())
    await conv.selfie(ALICE, face_jpeg)
    unknown = only(await conv.choose(ALICE, "nope"), Failure)
    assert isinstance(unknown, Failure)
    assert "/styles" in unknown.text


async def test_busy_user_and_quota(
    settings_factory: Callable[..., Settings], redis_client: aioredis.Redis, face_jpeg: bytes
) -> None:
    settings = settings_factory(AVATARBOT_DAILY_QUOTA="1")
    async with chat_stack(settings, redis_client) as stack:
        first = await queued_job(stack, face_jpeg)
        busy = only(await stack.conversation.choose(ALICE, "oil"), Failure)
        assert isinstance(busy, Failure)
        assert busy.buttons == (Button("✖ Cancel it", Action.CANCEL, first.job_id),)
        stack.start_worker()
        await wait_final(stack, first.job_id)
        quota = only(await stack.conversation.choose(ALICE, "oil"), Failure)
        assert isinstance(quota, Failure)
        assert "daily limit" in quota.text


# --------------------------------------------------------------------------- buttons


async def test_strangers_cannot_press_owners_buttons(stack: ChatStack, face_jpeg: bytes) -> None:
    queued = await queued_job(stack, face_jpeg)
    await stack.conversation.selfie(BOB, face_jpeg)  # Bob has a selfie of his own
    in_same_group = BOB.__class__(BOB.platform, BOB.user_id, ALICE.chat_id)
    for action in (Action.MORE, Action.STYLE, Action.ORIGINAL, Action.FORGET, Action.CANCEL):
        data = format_callback(action, queued.job_id)
        reply = only(await stack.conversation.button(in_same_group, data), Text)
        assert reply == Text(texts.not_your_button(), ephemeral=True)
    assert await stack.queue.active_job(BOB) is None
    job = await stack.queue.get_job(queued.job_id)
    assert job is not None
    assert job.status is JobStatus.QUEUED
    assert await stack.conversation.selfies.get(BOB) is not None  # Bob's selfie untouched


async def test_result_buttons_more_style_original_forget(
    stack: ChatStack, face_jpeg: bytes, settings: Settings, redis_client: aioredis.Redis
) -> None:
    stack.start_worker()
    first = await queued_job(stack, face_jpeg, style="popart")
    await wait_final(stack, first.job_id)
    old = await stack.queue.get_job(first.job_id)
    assert old is not None
    assert old.status is JobStatus.DONE

    # A new Conversation over the same Redis: nothing lived in the old one's memory.
    async with chat_stack(settings, redis_client) as restarted:
        conv = restarted.conversation
        more = only(await conv.button(ALICE, format_callback(Action.MORE, old.id)), Queued)
        assert isinstance(more, Queued)
        assert more.job_id != old.id
        new = await restarted.queue.get_job(more.job_id)
        assert new is not None
        assert (new.style_id, new.variants, new.owner) == (old.style_id, old.variants, ALICE)
        assert new.seed != old.seed
        await wait_final(stack, new.id)

        files = await conv.button(ALICE, format_callback(Action.ORIGINAL, old.id))
        assert len(files) == old.variants
        original = files[0]
        assert isinstance(original, OriginalFile)
        assert original.image.data[:8] == b"\x89PNG\r\n\x1a\n"
        assert original.filename.endswith(".png")
        assert old.id in original.filename

        picker = only(await conv.button(ALICE, format_callback(Action.STYLE, old.id)), StylePicker)
        assert isinstance(picker, StylePicker)
        assert picker.text == texts.pick_another_style()

        forgot = only(await conv.button(ALICE, format_callback(Action.FORGET, old.id)), Text)
        assert forgot == Text(texts.selfie_forgotten())
        assert await conv.selfies.get(ALICE) is None
        assert not await redis_client.exists(conv.selfies.key(ALICE))
        again = only(await conv.button(ALICE, format_callback(Action.MORE, old.id)), Failure)
        assert again == Failure(texts.selfie_expired())
        assert (await conv.sessions.get(ALICE)).stage is Stage.AWAITING_SELFIE


async def test_expired_job_button_and_bad_data(stack: ChatStack) -> None:
    conv = stack.conversation
    expired = only(await conv.button(ALICE, format_callback(Action.MORE, "00" * 8)), Failure)
    assert expired == Failure(texts.button_expired(), ephemeral=True)
    bad = only(await conv.button(ALICE, "garbage"), Failure)
    assert isinstance(bad, Failure)
    assert bad.ephemeral


async def test_cancel_and_forget_me(stack: ChatStack, face_jpeg: bytes) -> None:
    conv = stack.conversation
    assert only(await conv.cancel(ALICE), Text) == Text(texts.nothing_to_cancel())
    queued = await queued_job(stack, face_jpeg)
    cancelled = only(await conv.cancel(ALICE), Text)
    assert isinstance(cancelled, Text)
    assert cancelled.text == texts.cancelled()
    job = await stack.queue.get_job(queued.job_id)
    assert job is not None
    assert job.status is JobStatus.CANCELLED

    second = only(await conv.choose(ALICE, "oil"), Queued)
    assert isinstance(second, Queued)
    receipt = only(await conv.forget_me(ALICE), Text)
    assert isinstance(receipt, Text)
    assert receipt.text == texts.forgot_everything(1, True)
    assert await stack.queue.get_job(second.job_id) is None
    assert await stack.queue.get_job(queued.job_id) is None
    assert await conv.selfies.get(ALICE) is None
    assert (await conv.sessions.get(ALICE)).stage is Stage.IDLE
    keys = [k async for k in stack.redis.scan_iter(match=f"{stack.settings.key_prefix}:conv:*")]
    assert all(b"alice" not in k for k in keys), keys


@dataclass(frozen=True)
class _Verdict:
    ours: bool
    intact: bool
    made_at: datetime | None = None
    made_in_style: str | None = None


async def test_verify_hook(
    settings: Settings, redis_client: aioredis.Redis, face_jpeg: bytes
) -> None:
    async with chat_stack(settings, redis_client) as stack:
        assert only(await stack.conversation.text(ALICE, "/verify"), Text) == Text(
            texts.verify_unavailable()
        )
    async with chat_stack(settings, redis_client, verifier=lambda d: _Verdict(True, False)) as s:
        assert only(await s.conversation.text(ALICE, "/verify"), Text) == Text(texts.verify_ask())
        verdict = only(await s.conversation.image(ALICE, face_jpeg), Text)
        assert verdict == Text(texts.verdict(ours=True, intact=False))
        # The next image is a selfie again.
        assert isinstance(
            only(await s.conversation.image(ALICE, face_jpeg), StylePicker), StylePicker
        )


# --------------------------------------------------------------------------- delivery


async def test_delivery_pump_delivers_once_and_retries_a_failing_adapter(
    stack: ChatStack, face_jpeg: bytes
) -> None:
    stack.start_worker()
    queued = await queued_job(stack, face_jpeg)
    await wait_final(stack, queued.job_id)
    got: list[tuple[Delivery, list[Reply]]] = []
    failures = [RuntimeError("platform down")]

    async def deliver(delivery: Delivery, replies: list[Reply]) -> None:
        if failures:
            raise failures.pop()
        got.append((delivery, list(replies)))

    pump = DeliveryPump(
        DeliveryQueue.sharing(stack.queue),
        stack.conversation,
        stack.settings.bot_name,
        "bot-1",
        retry_base_s=0.01,
    )
    pump.register("test", deliver)  # type: ignore[arg-type]
    assert await pump.pump_once(block_ms=2000) == 0  # the adapter failed
    assert pump.retrying == 1
    assert not got
    for _ in range(50):
        if await pump.pump_once(block_ms=20):
            break
    assert pump.retrying == 0
    assert len(got) == 1
    _delivery, replies = got[0]
    avatar = replies[0]
    assert isinstance(avatar, Avatar)
    assert avatar.job_id == queued.job_id
    assert len(avatar.images) == 1
    assert avatar.images[0].width == stack.settings.output_size
    assert [b.action for b in avatar.buttons] == [
        Action.MORE, Action.STYLE, Action.ORIGINAL, Action.FORGET,
    ]  # fmt: skip
    assert queued.job_id not in await stack.conversation.waiting.all()
    # A second reader (another process, or this one after a restart) gets nothing more.
    other = DeliveryPump(
        DeliveryQueue.sharing(stack.queue), stack.conversation, stack.settings.bot_name, "bot-2"
    )
    other.register("test", deliver)  # type: ignore[arg-type]
    assert await other.pump_once(block_ms=50) == 0
    assert len(got) == 1


async def test_status_tracker_pushes_changes_throttled_per_chat(
    stack: ChatStack, face_jpeg: bytes
) -> None:
    first = await queued_job(stack, face_jpeg, who=ALICE)
    second = await queued_job(stack, face_jpeg, who=BOB)
    assert second.position == 2
    pushed: list[Queued] = []

    async def update(job: Job, reply: Queued) -> None:
        pushed.append(reply)

    tracker = StatusTracker(
        stack.queue,
        stack.conversation,
        stack.conversation.waiting,
        stack.redis,
        stack.settings.key_prefix,
        throttle_s=60,
    )
    tracker.register("test", update)
    assert await tracker.poll_once() == 0  # nothing changed since the Queued replies

    # Alice cancels: her message says so (last word), then her job leaves the watch list;
    # Bob moves up to next.
    await stack.conversation.cancel(ALICE)
    assert await tracker.poll_once() == 2
    by_job = {r.job_id: r for r in pushed}
    assert by_job[first.job_id].status is JobStatus.CANCELLED
    assert by_job[first.job_id].text == texts.status_cancelled()
    assert by_job[first.job_id].buttons == ()
    assert by_job[second.job_id].position == 1
    assert by_job[second.job_id].text == job_texts.queued(
        "✏️ Pencil sketch", 1, by_job[second.job_id].eta_s
    )
    assert first.job_id not in await stack.conversation.waiting.all()
    pushed.clear()

    # Bob's job starts: the text changes, but his chat had an update within throttle_s.
    stack.start_worker()
    await wait_final(stack, second.job_id)
    assert await tracker.poll_once() == 0
    assert second.job_id not in await stack.conversation.waiting.all()  # final: dropped
