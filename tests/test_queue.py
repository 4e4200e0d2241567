"""The job queue against a real Redis: contract, limits, crash safety, delivery, privacy."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from importlib.resources import files

import pytest
import redis.asyncio as aioredis

from bot.jobs import FailureReason, JobRequest, JobStatus, Owner, Route
from bot.queue import (
    QueueConfig,
    QueueFullError,
    QuotaExceededError,
    UserBusyError,
    scripts,
)
from tests.conftest import RedisServer
from tests.queue_helpers import (
    BOT,
    JobQueue,
    MovableClock,
    collect,
    keys_under,
    owner,
    request,
    result_for,
)

SELFIE = b"\xff\xd8 not really a jpeg \xff\xd9"
IDLE_S = 0.2

QueueFactory = Callable[..., JobQueue]


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def make_queue(redis_client: aioredis.Redis, key_prefix: str, clock: MovableClock) -> QueueFactory:
    def make(**overrides: object) -> JobQueue:
        options: dict[str, object] = {
            "prefix": key_prefix,
            "reclaim_idle_s": IDLE_S,
            "stuck_min_s": IDLE_S,
            "stuck_factor": 0,  # a fixed stuck bound: the floor
            "max_deliveries": 2,
            "job_ttl_s": 600,
            "result_ttl_s": 300,
            "selfie_ttl_s": 120,
        }
        options.update(overrides)
        return JobQueue(redis_client, QueueConfig(**options), clock=clock)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def queue(make_queue: QueueFactory) -> JobQueue:
    q = make_queue()
    await q.ensure_groups(BOT)
    return q


async def test_round_trip(queue: JobQueue, redis_client: aioredis.Redis) -> None:
    receipt = await queue.enqueue(request(1, variants=2), SELFIE)
    assert receipt.position == 1
    assert receipt.job.status is JobStatus.QUEUED
    [claimed] = await queue.claim("w1", 4, 10)
    assert claimed.job.id == receipt.job.id
    assert claimed.selfie_jpeg == SELFIE
    assert claimed.job.status is JobStatus.RUNNING
    assert claimed.job.attempts == 1
    result = result_for(claimed)
    assert await queue.complete(claimed, result)
    assert not await queue.complete(claimed, result)  # idempotent: nothing published twice

    [delivery] = await queue.read_outcomes(BOT, "bot-1", 10, 10)
    assert delivery.outcome.status is JobStatus.DONE
    assert delivery.job is not None
    assert delivery.job.route.data == {"msg": "1"}
    assert delivery.result == result
    assert not await queue.already_delivered(receipt.job.id)
    assert await queue.mark_delivered(BOT, delivery)
    assert not await queue.mark_delivered(BOT, delivery)
    assert await queue.already_delivered(receipt.job.id)

    job = await queue.get_job(receipt.job.id)
    assert job is not None
    assert job.status is JobStatus.DONE
    assert job.delivered
    assert job.progress == 1.0
    assert await queue.get_result(receipt.job.id) == result
    assert not await redis_client.exists(queue.selfie_key(receipt.job.id))
    assert await redis_client.xlen(f"{queue.config.prefix}:jobs") == 0  # acked and deleted
    assert await redis_client.xlen(queue.results_stream(BOT)) == 0
    assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []
    assert await queue.active_job(owner(1)) is None


async def test_waiting_and_idle_paths_hand_over_the_same(
    queue: JobQueue, redis_client: aioredis.Redis
) -> None:
    """Jobs and outcomes already waiting are read and started (or fetched) by one script;
    after a read that found nothing, the next one blocks (XREADGROUP) and a second script
    starts or fetches what arrived. Either way the same comes out."""
    waiting = await queue.enqueue(request(1, variants=2), SELFIE)
    [claimed] = await queue.claim("w1", 4, 10)  # waiting: read and started in one call
    assert (claimed.job.id, claimed.selfie_jpeg) == (waiting.job.id, SELFIE)
    assert await queue.claim("w1", 4, 10) == []  # nothing waiting: blocked 10 ms
    later = await queue.enqueue(request(2), SELFIE)
    [blocked] = await queue.claim("w1", 4, 10)  # after an empty read: blocking path
    assert (blocked.job.id, blocked.selfie_jpeg) == (later.job.id, SELFIE)
    for c in (claimed, blocked):
        assert c.job.status is JobStatus.RUNNING
        assert c.job.attempts == 1
        assert c.job == (await queue.get_job(c.job.id))

    assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []  # nothing yet
    assert await queue.complete(claimed, result_for(claimed))
    [first] = await queue.read_outcomes(BOT, "bot-1", 10, 10)  # blocking path
    assert await queue.complete(blocked, result_for(blocked))
    [second] = await queue.read_outcomes(BOT, "bot-1", 10, 10)  # read and fetched at once
    for delivery, c in ((first, claimed), (second, blocked)):
        assert delivery.outcome.job_id == c.job.id
        assert delivery.result == result_for(c)
        assert delivery.job is not None
        assert delivery.job.status is JobStatus.DONE
        assert await queue.mark_delivered(BOT, delivery)
    assert await redis_client.xlen(queue.results_stream(BOT)) == 0


async def test_text_fields_survive_the_round_trip(queue: JobQueue) -> None:
    """Job fields travel to the scripts as JSON: non-ASCII text (emoji included) and quotes
    come back exactly."""
    who = Owner(platform="web", user_id='Zoë "🦊" 東京', chat_id="ünïcode\\chat")
    req = JobRequest(owner=who, route=Route(bot=BOT, data={"msg": '✓ 🎨 "x"'}), style_id="oil")
    receipt = await queue.enqueue(req, SELFIE)
    [claimed] = await queue.claim("w1", 1, 10)
    assert claimed.job.owner == who
    assert claimed.job.route == req.route
    assert await queue.complete(claimed, result_for(claimed))
    [delivery] = await queue.read_outcomes(BOT, "bot-1", 10, 10)
    assert delivery.job is not None
    assert (delivery.job.owner, delivery.job.route) == (who, req.route)
    assert receipt.job.id == delivery.job.id
    assert await queue.active_job(who) is None


async def test_finishing_a_batch_records_its_duration(queue: JobQueue) -> None:
    for n in range(3):
        await queue.enqueue(request(n), SELFIE)
    claimed = await queue.claim("w1", 3, 10)
    items = [(c, result_for(c)) for c in claimed[:2]]
    items.append((claimed[2], FailureReason.GENERATION_FAILED))
    assert await queue.finish_many(items, seconds_per_job=4.0) == [True, True, True]
    # a repeat (a retry after a lost reply) records nothing, its duration included
    assert await queue.finish_many(items, seconds_per_job=100.0) == [False, False, False]
    assert await queue.record_duration(8.0) == pytest.approx(0.2 * 8 + 0.8 * 4)


async def test_position_and_eta(queue: JobQueue) -> None:
    receipts = [await queue.enqueue(request(n), SELFIE) for n in range(3)]
    assert [r.position for r in receipts] == [1, 2, 3]
    assert receipts[2].eta_s == pytest.approx(3 * queue.config.default_job_s)

    await queue.record_duration(10.0)
    assert await queue.record_duration(20.0) == pytest.approx(0.2 * 20 + 0.8 * 10)
    await queue.register_worker("w1", 30)
    await queue.register_worker("w2", 30)
    [claimed] = await queue.claim("w1", 1, 10)
    status = await queue.status(receipts[2].job.id)
    assert status is not None
    assert status.position == 3  # running jobs still count as ahead
    assert status.eta_s == pytest.approx(3 * 12.0 / 2)

    await queue.complete(claimed, result_for(claimed))
    status = await queue.status(receipts[2].job.id)
    assert status is not None
    assert status.position == 2
    done = await queue.status(receipts[0].job.id)
    assert done is not None
    assert (done.position, done.eta_s, done.job.status) == (0, 0.0, JobStatus.DONE)
    assert await queue.status("nosuchjob") is None


async def test_one_active_job_per_user(queue: JobQueue, redis_client: aioredis.Redis) -> None:
    first = await queue.enqueue(request(1), SELFIE)
    with pytest.raises(UserBusyError) as busy:
        await queue.enqueue(request(1, style="oil"), SELFIE)
    assert busy.value.job_id == first.job.id
    assert busy.value.user_message
    active = await queue.active_job(owner(1))
    assert active is not None
    assert active.id == first.job.id
    slot_ttl = await redis_client.ttl(f"{queue.config.prefix}:active:{owner(1).key}")
    assert 0 < slot_ttl <= queue.config.job_ttl_s
    await queue.enqueue(request(2), SELFIE)  # another user is not blocked

    [claimed, _other] = await queue.claim("w1", 2, 10)
    await queue.fail(claimed, FailureReason.GENERATION_FAILED)
    second = await queue.enqueue(request(1, style="oil"), SELFIE)
    assert second.job.id != first.job.id


async def test_stale_slot_does_not_block(queue: JobQueue, redis_client: aioredis.Redis) -> None:
    """A slot pointing at a vanished job (its hash expired) frees itself."""
    first = await queue.enqueue(request(1), SELFIE)
    await redis_client.delete(queue.job_key(first.job.id))
    await queue.enqueue(request(1), SELFIE)


async def test_daily_quota_resets_next_day_and_refunds_our_failures(
    make_queue: QueueFactory, clock: MovableClock, redis_client: aioredis.Redis
) -> None:
    queue = make_queue(daily_quota=2)
    await queue.ensure_groups()
    for _ in range(2):
        await queue.enqueue(request(1), SELFIE)
        [claimed] = await queue.claim("w1", 1, 10)
        await queue.complete(claimed, result_for(claimed))
    with pytest.raises(QuotaExceededError) as exceeded:
        await queue.enqueue(request(1), SELFIE)
    assert exceeded.value.limit == 2
    assert 0 < exceeded.value.retry_after_s <= 86_400
    assert "2 avatars today" in exceeded.value.user_message
    quota_key = queue.quota_key(owner(1), clock())
    assert owner(1).user_id not in quota_key  # no identifier in clear
    assert 0 < await redis_client.ttl(quota_key) <= 86_400 + 60

    await queue.enqueue(request(2), SELFIE)  # other users are not affected
    clock.advance(86_400)
    day2_key = queue.quota_key(owner(1), clock())
    assert day2_key != quota_key
    await queue.enqueue(request(1), SELFIE)
    assert await redis_client.get(day2_key) == b"1"
    [claimed] = await queue.claim("w1", 1, 10)
    assert claimed.job.owner == owner(2)  # first in line
    await queue.complete(claimed, result_for(claimed))
    [claimed] = await queue.claim("w1", 1, 10)
    await queue.fail(claimed, FailureReason.GENERATION_FAILED)  # our fault: refunded
    assert await redis_client.get(day2_key) == b"0"
    await queue.enqueue(request(1), SELFIE)
    [claimed] = await queue.claim("w1", 1, 10)
    await queue.fail(claimed, FailureReason.BLOCKED_CONTENT)  # not refunded
    assert await redis_client.get(day2_key) == b"1"


async def test_queue_cap(make_queue: QueueFactory) -> None:
    queue = make_queue(queue_cap=2)
    await queue.ensure_groups()
    await queue.enqueue(request(1), SELFIE)
    await queue.enqueue(request(2), SELFIE)
    with pytest.raises(QueueFullError) as full:
        await queue.enqueue(request(3), SELFIE)
    assert full.value.cap == 2
    assert "busy" in full.value.user_message
    [claimed] = await queue.claim("w1", 1, 10)
    with pytest.raises(QueueFullError):  # running jobs count too
        await queue.enqueue(request(3), SELFIE)
    await queue.complete(claimed, result_for(claimed))
    await queue.enqueue(request(3), SELFIE)


async def test_cancel_queued_job_is_never_generated(
    queue: JobQueue, redis_client: aioredis.Redis
) -> None:
    receipt = await queue.enqueue(request(1), SELFIE)
    assert not await queue.cancel(receipt.job.id, owner(2))  # only the owner
    assert await queue.cancel(receipt.job.id, owner(1))
    assert not await queue.cancel(receipt.job.id, owner(1))  # already ended
    assert await queue.claim("w1", 4, 10) == []
    job = await queue.get_job(receipt.job.id)
    assert job is not None
    assert job.status is JobStatus.CANCELLED
    assert not await redis_client.exists(queue.selfie_key(receipt.job.id))
    assert await queue.active_job(owner(1)) is None
    assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []  # the bot answered already
    await queue.enqueue(request(1), SELFIE)  # the slot is free


async def test_cancel_running_job_discards_its_result(
    queue: JobQueue, redis_client: aioredis.Redis
) -> None:
    receipt = await queue.enqueue(request(1), SELFIE)
    [claimed] = await queue.claim("w1", 4, 10)
    assert await queue.cancel(receipt.job.id, owner(1))
    assert not await redis_client.exists(queue.selfie_key(receipt.job.id))
    await queue.enqueue(request(1), SELFIE)  # slot freed at once
    assert not await queue.complete(claimed, result_for(claimed))
    assert await queue.get_result(receipt.job.id) is None
    job = await queue.get_job(receipt.job.id)
    assert job is not None
    assert job.status is JobStatus.CANCELLED
    stats = await queue.stats()
    assert stats.running == 0  # the worker's entry was acknowledged
    assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []


async def test_reclaim_past_the_stuck_bound_and_the_stale_finish_loses(queue: JobQueue) -> None:
    await queue.enqueue(request(1), SELFIE)
    await queue.enqueue(request(2), SELFIE)
    [finished, stuck] = await queue.claim("w1", 2, 10)
    assert await queue.reclaim("w2", 4) == []  # within their bound
    assert await queue.complete(finished, result_for(finished))
    await asyncio.sleep(IDLE_S * 1.5)
    [taken] = await queue.reclaim("w2", 4)
    assert taken.entry_id == stuck.entry_id
    assert (taken.deliveries, taken.consumer) == (2, "w2")
    assert taken.job.attempts == 2
    assert taken.selfie_jpeg == SELFIE
    assert await queue.reclaim("w2", 4) == []
    stats = await queue.stats()
    assert dict(stats.pending) == {"w2": 1}
    assert not await queue.complete(stuck, result_for(stuck))  # the slow original loses
    assert await queue.complete(taken, result_for(taken))
    told = await collect(queue, 2, timeout_s=1)
    assert sorted(d.outcome.job_id for d in told) == sorted([finished.job.id, taken.job.id])


async def test_dead_letter_after_max_deliveries_then_retry(
    queue: JobQueue, redis_client: aioredis.Redis
) -> None:
    receipt = await queue.enqueue(request(1), SELFIE)
    await queue.enqueue(request(2), SELFIE)
    await queue.claim("w1", 1, 10)  # delivery 1; w1 dies
    await asyncio.sleep(IDLE_S * 1.5)
    [again] = await queue.reclaim("w2", 1)  # delivery 2 (= max_deliveries); w2 dies
    assert again.job.id == receipt.job.id
    await asyncio.sleep(IDLE_S * 1.5)
    assert await queue.reclaim("w3", 1) == []  # delivery 3 > 2: dead
    job = await queue.get_job(receipt.job.id)
    assert job is not None
    assert (job.status, job.failure) == (JobStatus.DEAD, FailureReason.DEAD_LETTER)
    [told] = await collect(queue, 1, timeout_s=2)  # the user hears of it
    assert told.outcome.job_id == receipt.job.id
    assert told.outcome.failure is FailureReason.DEAD_LETTER
    await queue.enqueue(request(1), SELFIE)  # the user's slot is free

    [letter] = await queue.dead_letters(10)
    assert letter.job_id == receipt.job.id
    assert letter.deliveries == 3
    assert receipt.job.id in letter.render()
    stats = await queue.stats()
    assert stats.dead_letters == 1
    assert stats.depth == 2  # user 2's job and user 1's new one

    assert await queue.retry_dead(letter.entry_id) == 1
    assert await queue.dead_letters(10) == []
    claimed = await queue.claim("w4", 4, 10)
    retried = next(c for c in claimed if c.job.id == receipt.job.id)
    assert retried.job.attempts == 1
    for c in claimed:
        await queue.complete(c, result_for(c))
    done = await collect(queue, 3, timeout_s=2)
    assert sorted(d.outcome.status for d in done) == [JobStatus.DONE] * 3
    assert receipt.job.id in {d.outcome.job_id for d in done}  # delivered despite DEAD before
    assert not await redis_client.exists(queue.selfie_key(receipt.job.id))


async def test_purge_dead_deletes_kept_selfies(
    queue: JobQueue, redis_client: aioredis.Redis
) -> None:
    receipt = await queue.enqueue(request(1), SELFIE)
    await queue.claim("w1", 1, 10)
    for consumer in ("w2", "w3"):
        await asyncio.sleep(IDLE_S * 1.5)
        await queue.reclaim(consumer, 1)
    assert await redis_client.exists(queue.selfie_key(receipt.job.id))  # kept for a retry
    assert await queue.purge_dead() == 1
    assert not await redis_client.exists(queue.selfie_key(receipt.job.id))
    assert await queue.retry_dead() == 0


async def test_selfie_expired_fails_and_tells_user(
    queue: JobQueue, redis_client: aioredis.Redis
) -> None:
    receipt = await queue.enqueue(request(1), SELFIE)
    assert 0 < await redis_client.ttl(queue.selfie_key(receipt.job.id)) <= 120
    await redis_client.delete(queue.selfie_key(receipt.job.id))  # as its TTL would
    assert await queue.claim("w1", 4, 10) == []
    [told] = await collect(queue, 1, timeout_s=2)
    assert told.outcome.failure is FailureReason.SELFIE_EXPIRED
    assert (await queue.stats()).running == 0


async def test_results_reader_restart_loses_nothing_and_never_duplicates(
    make_queue: QueueFactory, queue: JobQueue
) -> None:
    for n in range(3):
        await queue.enqueue(request(n), SELFIE)
    for claimed in await queue.claim("w1", 3, 10):
        await queue.complete(claimed, result_for(claimed))

    crashed = make_queue()  # a bot process that read two outcomes and died
    read = await crashed.read_outcomes(BOT, "bot-a", 2, 10)
    assert len(read) == 2

    restarted = make_queue()  # the same bot after a restart: its pending entries first
    again = await restarted.read_outcomes(BOT, "bot-a", 10, 10)
    assert [d.entry_id for d in again] == [d.entry_id for d in read]
    assert await restarted.mark_delivered(BOT, again[0])

    # A second bot process takes over what the dead one left pending...
    await asyncio.sleep(IDLE_S * 1.5)
    other = make_queue()
    taken = await other.read_outcomes(BOT, "bot-b", 10, 10)
    assert [d.entry_id for d in taken] == [read[1].entry_id]
    # ...and the late original cannot deliver it a second time.
    assert await other.mark_delivered(BOT, taken[0])
    assert not await restarted.mark_delivered(BOT, again[1])
    rest = await other.read_outcomes(BOT, "bot-b", 10, 10)
    assert len(rest) == 1
    assert await other.mark_delivered(BOT, rest[0])
    delivered = {d.outcome.job_id for d in (again[0], taken[0], rest[0])}
    assert len(delivered) == 3
    assert await other.read_outcomes(BOT, "bot-b", 10, 10) == []
    assert await restarted.read_outcomes(BOT, "bot-a", 10, 10) == []


async def test_outcome_of_vanished_job_is_dropped(
    queue: JobQueue, redis_client: aioredis.Redis
) -> None:
    await queue.enqueue(request(1), SELFIE)
    [claimed] = await queue.claim("w1", 1, 10)
    await queue.complete(claimed, result_for(claimed))
    await redis_client.delete(queue.job_key(claimed.job.id))  # expired
    assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []
    assert await redis_client.xlen(queue.results_stream(BOT)) == 0


async def test_forget_user_leaves_no_key_of_theirs(
    queue: JobQueue, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    first = await queue.enqueue(request(1), SELFIE)
    [claimed] = await queue.claim("w1", 1, 10)
    await queue.complete(claimed, result_for(claimed))  # outcome not yet delivered
    second = await queue.enqueue(request(1), SELFIE)  # queued
    await queue.enqueue(request(2), SELFIE)  # someone else

    receipt = await queue.forget_user(owner(1))
    assert (receipt.jobs, receipt.selfies, receipt.results) == (2, 1, 1)
    assert (receipt.queued_cancelled, receipt.outcomes) == (1, 1)
    assert receipt.forgotten_at > 0

    keys = await keys_under(redis_client, key_prefix)
    for job_id in (first.job.id, second.job.id):
        assert not [k for k in keys if job_id in k]
    assert not [k for k in keys if owner(1).user_id in k]
    for key, kind in keys.items():  # nothing about user 1 inside the keys that remain
        if kind == "stream":
            for _eid, fields in await redis_client.xrange(key):
                assert fields[b"job_id"].decode() not in (first.job.id, second.job.id)
        elif kind == "hash":
            assert b"user1" not in b"".join((await redis_client.hgetall(key)).values())
    [claimed] = await queue.claim("w1", 4, 10)  # user 1's queued job is gone
    assert claimed.job.owner == owner(2)
    for _ in range(queue.config.daily_quota - 2):  # the two forgotten jobs still count
        await queue.enqueue(request(1), SELFIE)
        await queue.forget_user(owner(1))
    with pytest.raises(QuotaExceededError):  # forgetting does not reset the quota
        await queue.enqueue(request(1), SELFIE)


async def test_forget_running_job_discards_result(queue: JobQueue) -> None:
    await queue.enqueue(request(1), SELFIE)
    [claimed] = await queue.claim("w1", 1, 10)
    receipt = await queue.forget_user(owner(1))
    assert receipt.running_discarded == 1
    assert not await queue.complete(claimed, result_for(claimed))
    assert await queue.get_result(claimed.job.id) is None
    assert (await queue.stats()).running == 0


async def test_every_key_has_a_ttl(
    queue: JobQueue, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """After a run through every path, each key expires, except the streams (they carry
    consumer groups; their entries are deleted when acknowledged, dead letters trimmed)."""
    for n in range(6):
        await queue.enqueue(request(n), SELFIE)
    await queue.register_worker("w1", 5)
    claimed = await queue.claim("w1", 4, 10)
    await queue.complete(claimed[0], result_for(claimed[0]))
    await queue.fail(claimed[1], FailureReason.GENERATION_FAILED)
    await queue.cancel(claimed[2].job.id, claimed[2].job.owner)
    await queue.set_progress(claimed[3].job.id, 0.5)
    await queue.record_duration(1.5)
    await asyncio.sleep(IDLE_S * 1.5)
    await queue.reclaim("w2", 1)
    await asyncio.sleep(IDLE_S * 1.5)
    await queue.reclaim("w3", 1)  # dead-lettered
    await queue.set_progress("vanished", 0.5)  # must not create a key
    [delivery, *_] = await queue.read_outcomes(BOT, "bot-1", 10, 10)
    await queue.mark_delivered(BOT, delivery)

    keys = await keys_under(redis_client, key_prefix)
    streams = {k for k, kind in keys.items() if kind == "stream"}
    assert streams == {f"{key_prefix}:jobs", f"{key_prefix}:dead", queue.results_stream(BOT)}
    assert f"{key_prefix}:job:vanished" not in keys
    kinds = {k.split(":")[1] for k in keys}
    assert {"job", "selfie", "result", "active", "user", "quota", "active_jobs", "workers"} <= kinds
    assert "stats" in kinds
    for key in set(keys) - streams:
        assert await redis_client.ttl(key) > 0, key


async def test_maintenance_prunes_vanished_jobs(
    make_queue: QueueFactory, redis_client: aioredis.Redis, clock: MovableClock
) -> None:
    queue = make_queue(queue_cap=1)
    await queue.ensure_groups()
    first = await queue.enqueue(request(1), SELFIE)
    await redis_client.delete(queue.job_key(first.job.id))  # as if expired
    with pytest.raises(QueueFullError):
        await queue.enqueue(request(2), SELFIE)
    _dead_trimmed, pruned, _workers, _consumers = await queue.maintain()
    assert pruned == 1
    await queue.enqueue(request(2), SELFIE)
    assert await queue.claim("w1", 4, 10) != []  # the vanished job's entry was skipped

    await queue.register_worker("gone", 1)
    clock.advance(5)
    assert (await queue.stats()).live_workers == 0
    assert (await queue.maintain())[2] == 1


async def test_progress_only_for_running_jobs(queue: JobQueue) -> None:
    receipt = await queue.enqueue(request(1), SELFIE)
    await queue.set_progress(receipt.job.id, 0.5)
    assert (await queue.get_job(receipt.job.id)).progress == 0.0  # type: ignore[union-attr]
    await queue.claim("w1", 1, 10)
    await queue.set_progress(receipt.job.id, 0.5)
    assert (await queue.get_job(receipt.job.id)).progress == 0.5  # type: ignore[union-attr]


async def test_server_version_checked(queue: JobQueue) -> None:
    version = await queue.server_version()
    assert version >= (6, 2, 0)
    await queue.check_server()


async def test_decoding_client_is_refused(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            JobQueue(client, QueueConfig())
    finally:
        await client.aclose()


async def test_upkeep_deletes_orphaned_selfies_and_keeps_needed_ones(
    queue: JobQueue, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A selfie whose job ended or vanished (say a crash between a job's end and its
    cleanup) is deleted by the periodic upkeep; queued and dead-lettered jobs keep theirs."""
    queued = await queue.enqueue(request(1), SELFIE)
    done = await queue.enqueue(request(2), SELFIE)
    vanished = await queue.enqueue(request(3), SELFIE)
    [claimed] = [c for c in await queue.claim("w1", 4, 10) if c.job.id == done.job.id]
    await queue.complete(claimed, result_for(claimed))
    # Simulate the crashes: a finished job's selfie left behind, and a job hash gone.
    await redis_client.set(queue.selfie_key(done.job.id), SELFIE, ex=3600)
    await redis_client.delete(queue.job_key(vanished.job.id))

    assert await queue.sweep_orphaned_selfies() == 2
    selfies = [k async for k in redis_client.scan_iter(match=f"{key_prefix}:selfie:*")]
    assert selfies == [queue.selfie_key(queued.job.id).encode()]
    await queue.maintain()  # the periodic path runs the same sweep: nothing left to do
    assert await queue.sweep_orphaned_selfies() == 0


async def test_every_script_states_its_keys_and_compiles(redis_client: aioredis.Redis) -> None:
    """Each script in bot/queue/lua/ opens with a comment naming the KEYS and ARGV it
    takes, and Redis compiles it as the loader sends it (the shared helpers in front)."""
    names = scripts.script_names()
    assert {"enqueue", "claim", "finish", "read_outcomes", "confirm_delivery"} <= set(names)
    for name in names:
        text = (files("bot.queue") / "lua" / f"{name}.lua").read_text()
        header = list(itertools.takewhile(lambda line: line.startswith("--"), text.splitlines()))
        assert header[0].startswith(f"-- {name}.lua: "), name
        assert any(line.startswith("-- KEYS: ") for line in header), name
        assert any(line.startswith("-- ARGV: ") for line in header), name
        assert await redis_client.script_load(scripts.source(name)) == scripts.sha(name)


async def test_scripts_run_after_redis_lost_its_script_cache(
    redis_server_factory: Callable[[], RedisServer], key_prefix: str
) -> None:
    """A Redis restart empties the script cache: each call's EVALSHA then fails (NOSCRIPT)
    and falls back to EVAL, which caches the script again."""
    client = aioredis.Redis.from_url(redis_server_factory().url)
    try:
        queue = JobQueue(client, QueueConfig(prefix=key_prefix))
        await queue.ensure_groups(BOT)
        await queue.enqueue(request(1), SELFIE)
        await client.script_flush()
        [claimed] = await queue.claim("w1", 1, 10)
        assert await queue.complete(claimed, result_for(claimed))
        assert await client.script_exists(scripts.sha("claim"), scripts.sha("finish")) == [
            True,
            True,
        ]
        [delivery] = await collect(queue, 1, timeout_s=2)
        assert delivery.outcome.job_id == claimed.job.id
    finally:
        await client.aclose()
