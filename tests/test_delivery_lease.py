"""Delivery is exactly once in effect: a lease, a send, a confirm. A bot that dies between
its claim and its send leaves the outcome to the next bot process, which sends it once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis.asyncio as aioredis

from bot.jobs import JobRequest, JobStatus, Owner, Route
from bot.queue import Delivery, DeliveryClaim, QueueConfig
from bot.replies import Reply
from tests.conftest import RedisServer
from tests.queue_helpers import BOT, JobQueue, MovableClock, request, result_for

ROOT = Path(__file__).resolve().parent.parent
SELFIE = b"\xff\xd8 not really a jpeg \xff\xd9"
IDLE_S = 0.3


class Renderer:
    async def outcome_replies(self, delivery: Delivery) -> list[Reply]:
        return []

    def status_reply(self, receipt: object) -> object:
        raise NotImplementedError


def make_queue(redis: aioredis.Redis, prefix: str, clock: MovableClock | None = None) -> JobQueue:
    config = QueueConfig(prefix=prefix, reclaim_idle_s=IDLE_S, delivery_lease_s=IDLE_S)
    return JobQueue(redis, config, clock=clock or MovableClock())


async def finished_job(queue: JobQueue, n: int = 1) -> str:
    receipt = await queue.enqueue(request(n), SELFIE)
    [claimed] = await queue.claim("w1", 1, 10)
    assert await queue.complete(claimed, result_for(claimed))
    return receipt.job.id


async def test_lease_excludes_others_until_it_lapses_then_confirm_is_once(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    clock = MovableClock()
    queue = make_queue(redis_client, key_prefix, clock)
    await queue.ensure_groups(BOT)
    job_id = await finished_job(queue)
    [delivery] = await queue.read_outcomes(BOT, "bot-a", 10, 10)

    assert await queue.claim_delivery(BOT, delivery, "bot-a") is DeliveryClaim.OK
    assert await queue.claim_delivery(BOT, delivery, "bot-a") is DeliveryClaim.OK  # renewal
    assert await queue.claim_delivery(BOT, delivery, "bot-b") is DeliveryClaim.HELD
    assert not await queue.mark_delivered(BOT, delivery, "cli")  # one-shot readers wait too
    job = await queue.get_job(job_id)
    assert job is not None
    assert not job.delivered

    clock.advance(IDLE_S * 2)  # bot-a died without confirming: its lease lapses
    assert await queue.claim_delivery(BOT, delivery, "bot-b") is DeliveryClaim.OK
    assert await queue.confirm_delivery(BOT, delivery)
    assert not await queue.confirm_delivery(BOT, delivery)  # a late confirm: a duplicate
    assert await queue.claim_delivery(BOT, delivery, "bot-a") is DeliveryClaim.DONE
    assert await queue.already_delivered(job_id)
    assert await redis_client.xlen(queue.results_stream(BOT)) == 0
    assert not await redis_client.hexists(queue.job_key(job_id), "delivering")


async def test_given_up_delivery_is_acknowledged_not_marked(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    queue = make_queue(redis_client, key_prefix)
    await queue.ensure_groups(BOT)
    job_id = await finished_job(queue)
    [delivery] = await queue.read_outcomes(BOT, "bot-a", 10, 10)
    assert await queue.claim_delivery(BOT, delivery, "bot-a") is DeliveryClaim.OK
    assert not await queue.confirm_delivery(BOT, delivery, sent=False)
    assert not await queue.already_delivered(job_id)
    assert await queue.get_result(job_id) is not None  # still there until its TTL
    assert await redis_client.xlen(queue.results_stream(BOT)) == 0


async def test_read_with_lease_holds_it_until_it_lapses(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    clock = MovableClock()
    queue = make_queue(redis_client, key_prefix, clock)
    await queue.ensure_groups(BOT)
    job_id = await finished_job(queue)
    [delivery] = await queue.read_outcomes(BOT, "bot-a", 10, 10, lease=True)
    assert delivery.outcome.job_id == job_id
    assert queue.holds_lease(delivery)  # fresh: no claim needed before sending
    assert await redis_client.hget(queue.job_key(job_id), "delivering") == b"bot-a"
    assert await queue.claim_delivery(BOT, delivery, "bot-b") is DeliveryClaim.HELD
    assert not await queue.mark_delivered(BOT, delivery, "cli")

    clock.advance(IDLE_S / 2)  # still held, but no longer fresh enough to skip renewing
    assert not queue.holds_lease(delivery)
    assert await queue.claim_delivery(BOT, delivery, "bot-b") is DeliveryClaim.HELD
    assert await queue.claim_delivery(BOT, delivery, "bot-a") is DeliveryClaim.OK  # renewed

    clock.advance(IDLE_S * 2)  # bot-a died: its lease lapses and bot-b may deliver
    assert await queue.claim_delivery(BOT, delivery, "bot-b") is DeliveryClaim.OK
    assert await queue.confirm_delivery(BOT, delivery)
    assert await queue.already_delivered(job_id)
    assert await redis_client.xlen(queue.results_stream(BOT)) == 0


async def test_read_with_lease_skips_an_outcome_another_bot_is_delivering(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    clock = MovableClock()
    queue = make_queue(redis_client, key_prefix, clock)
    await queue.ensure_groups(BOT)
    job_id = await finished_job(queue)
    [delivery] = await queue.read_outcomes(BOT, "bot-a", 10, 10)  # read, no lease yet
    assert delivery.lease_until is None
    assert not queue.holds_lease(delivery)
    assert await queue.claim_delivery(BOT, delivery, "bot-b") is DeliveryClaim.OK

    restarted = make_queue(redis_client, key_prefix, clock)  # bot-a's pending entries first
    assert await restarted.read_outcomes(BOT, "bot-a", 10, 10, lease=True) == []  # bot-b's
    assert await redis_client.hget(queue.job_key(job_id), "delivering") == b"bot-b"
    assert await redis_client.xlen(queue.results_stream(BOT)) == 1  # left for bot-b

    clock.advance(IDLE_S * 2)  # bot-b's lease lapsed: bot-a takes it when it reads again
    [again] = await make_queue(redis_client, key_prefix, clock).read_outcomes(
        BOT, "bot-a", 10, 10, lease=True
    )
    assert again.entry_id == delivery.entry_id
    assert await redis_client.hget(queue.job_key(job_id), "delivering") == b"bot-a"


async def test_a_slow_send_keeps_its_lease_renewed(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    from bot.queue import DeliveryPump  # noqa: PLC0415

    config = QueueConfig(prefix=key_prefix, reclaim_idle_s=30, delivery_lease_s=0.6)
    queue = JobQueue(redis_client, config)
    await queue.ensure_groups(BOT)
    job_id = await finished_job(queue)
    sending, release = asyncio.Event(), asyncio.Event()
    sent: list[str] = []

    async def slow(delivery: Delivery, replies: Sequence[Reply]) -> None:
        sending.set()
        await release.wait()
        sent.append(delivery.outcome.job_id)

    pump = DeliveryPump(queue, Renderer(), BOT, "bot-a", block_ms=20)  # type: ignore[arg-type]
    pump.register("test", slow)
    task = asyncio.create_task(pump.pump_once())
    await asyncio.wait_for(sending.wait(), 10)
    [delivery] = await JobQueue(redis_client, config).read_outcomes(BOT, "bot-a", 10, 10)
    for _ in range(4):  # well past the lease's length: renewed all along
        await asyncio.sleep(0.4)
        assert await queue.claim_delivery(BOT, delivery, "bot-b") is DeliveryClaim.HELD
    release.set()
    assert await asyncio.wait_for(task, 10) == 1
    assert sent == [job_id]
    assert await queue.already_delivered(job_id)
    assert not await redis_client.hexists(queue.job_key(job_id), "delivering")


async def test_pump_cancelled_mid_send_leaves_the_outcome_to_the_next_pump(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    from bot.queue import DeliveryPump  # noqa: PLC0415

    queue = make_queue(redis_client, key_prefix)
    await queue.ensure_groups(BOT)
    job_id = await finished_job(queue)
    sends: list[tuple[str, str]] = []
    entered = asyncio.Event()

    async def hang(delivery: Delivery, replies: Sequence[Reply]) -> None:
        entered.set()
        await asyncio.Event().wait()

    first = DeliveryPump(queue, Renderer(), BOT, "bot-a", block_ms=20)  # type: ignore[arg-type]
    first.register("test", hang)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()  # the process dies mid-send: no confirm, no release
    await asyncio.gather(task, return_exceptions=True)
    assert not await queue.already_delivered(job_id)

    async def record(delivery: Delivery, replies: Sequence[Reply]) -> None:
        sends.append(("bot-b", delivery.outcome.job_id))

    second = DeliveryPump(
        make_queue(redis_client, key_prefix),
        Renderer(),  # type: ignore[arg-type]
        BOT,
        "bot-b",
        block_ms=20,
    )
    second.register("test", record)
    deadline = time.monotonic() + 10
    while not sends and time.monotonic() < deadline:
        await second.pump_once()
    for _ in range(3):  # nothing more comes, however often it reads
        await second.pump_once(block_ms=round(IDLE_S * 1000))
    assert sends == [("bot-b", job_id)]
    assert await queue.already_delivered(job_id)
    assert await redis_client.xlen(queue.results_stream(BOT)) == 0


def _pump_process(
    redis_url: str, prefix: str, log: Path, output: Path, *, hang: bool
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVATARBOT_", "REDIS_URL"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "AVATARBOT_KEY_PREFIX": prefix,
            "AVATARBOT_BOT_NAME": BOT,
            "AVATARBOT_RECLAIM_IDLE_S": str(IDLE_S),
            "FAULT_DELIVERY_LOG": str(log),
            "HF_HUB_OFFLINE": "1",
        }
    )
    if hang:
        env["FAULT_HANG_BEFORE_SEND"] = "1"
    with output.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.fault_bot"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _records(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


async def _until(predicate: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_bot_process_killed_after_claim_before_send_is_delivered_once_by_the_next(
    redis_server_factory: Callable[[], RedisServer], key_prefix: str, tmp_path: Path
) -> None:
    server = redis_server_factory()
    redis = aioredis.Redis.from_url(server.url)
    log = tmp_path / "sent.jsonl"
    log.touch()
    try:
        queue = make_queue(redis, key_prefix)
        await queue.ensure_groups(BOT)
        first = _pump_process(server.url, key_prefix, log, tmp_path / "first.out", hang=True)
        try:
            bench_user = Owner(platform="bench", user_id="u1", chat_id="c1")
            receipt = await queue.enqueue(
                JobRequest(owner=bench_user, route=Route(bot=BOT), style_id="sketch"), SELFIE
            )
            job_id = receipt.job.id
            [claimed] = await queue.claim("w1", 1, 1000)
            assert await queue.complete(claimed, result_for(claimed))
            await _until(lambda: any(r.get("claimed") == job_id for r in _records(log)))
            assert await redis.hget(queue.job_key(job_id), "delivering") is not None
            first.send_signal(signal.SIGKILL)  # claimed, never sent, never confirmed
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
        assert not await queue.already_delivered(job_id)

        second = _pump_process(server.url, key_prefix, log, tmp_path / "second.out", hang=False)
        try:
            await _until(lambda: any(r.get("job_id") == job_id for r in _records(log)))
            deadline = time.monotonic() + 10
            while not await queue.already_delivered(job_id):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await asyncio.sleep(IDLE_S * 3)  # time enough for a wrong second send
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, (tmp_path / "second.out").read_text()
        finally:
            if second.poll() is None:
                second.kill()
                second.wait(10)
        sent = [r for r in _records(log) if r.get("job_id") == job_id]
        assert len(sent) == 1
        assert sent[0]["status"] == JobStatus.DONE.value
        assert await redis.xlen(queue.results_stream(BOT)) == 0
    finally:
        await redis.aclose()
