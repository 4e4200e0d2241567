"""Liveness with real worker processes and signals: a worker SIGKILLed at each point of a
job's way (after its blocking read and before starting the jobs, between generating and
finishing, right after finishing) has its jobs answered once, by the living, through its
lapsed liveness record alone (the idle net is set to ten minutes); a worker frozen with
SIGSTOP that comes back cannot deliver what was handed over; a busy worker (sleeping as
a GPU batch, spinning in Python as a CPU-bound style, or with its event loop blocked) is
never taken for dead; SIGTERM gives back the jobs not started, and another worker takes
them at once.

The victims are `tests/worker_process.py` (the real `run_worker` with the fake backend and
its fault injection points); the survivor is a `Worker` in this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.jobs import JobStatus
from bot.queue import QueueConfig
from bot.styles import StyleCatalog
from generation.worker import Worker
from tests.fake_backends import FakeBackend
from tests.queue_helpers import BOT, JobQueue, collect, request

pytestmark = pytest.mark.slow  # worker processes: a few seconds each

ROOT = Path(__file__).resolve().parent.parent
TTL_S = 0.5
REFRESH_S = 0.1
STUCK_MIN_S = 600.0  # the idle net never fires here: only liveness recovers a job
SELFIE = (ROOT / "tests" / "data" / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="module")
def catalog() -> StyleCatalog:
    return StyleCatalog.load()


@pytest.fixture
async def queue(redis_client: aioredis.Redis, key_prefix: str) -> JobQueue:
    config = QueueConfig(
        prefix=key_prefix,
        liveness_ttl_s=TTL_S,
        liveness_refresh_s=REFRESH_S,
        stuck_min_s=STUCK_MIN_S,
        max_deliveries=3,
    )
    q = JobQueue(redis_client, config)
    await q.ensure_groups(BOT)
    return q


class Victim:
    """A worker process (`tests.worker_process`) and its log."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str) -> None:
        self.log_path = tmp_path / f"{name}.log"
        self.batches_path = tmp_path / f"{name}.batches"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.worker_process"],
                env={**os.environ, **env, "FAKE_LOG": str(self.batches_path)},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def batches(self) -> list[list[list[str]]]:
        if not self.batches_path.exists():
            return []
        lines = self.batches_path.read_text().splitlines()
        return [json.loads(line)["batch"] for line in lines if line]


@pytest.fixture
def victims(redis_url: str, key_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Victim]]:
    started: list[Victim] = []

    def start(**fake: str) -> Victim:
        env = {
            "REDIS_URL": redis_url,
            "AVATARBOT_KEY_PREFIX": key_prefix,
            "AVATARBOT_LIVENESS_TTL_S": str(TTL_S),
            "AVATARBOT_LIVENESS_REFRESH_S": str(REFRESH_S),
            "AVATARBOT_STUCK_MIN_S": str(STUCK_MIN_S),
            "AVATARBOT_RECLAIM_INTERVAL_S": "0.1",
            "AVATARBOT_BATCH_SIZE": "4",
            "AVATARBOT_WEB_ENABLED": "false",
            **fake,
        }
        victim = Victim(tmp_path, env, f"victim-{len(started)}")
        started.append(victim)
        return victim

    yield start
    for victim in started:
        if victim.proc.poll() is None:
            os.kill(victim.proc.pid, signal.SIGCONT)
            victim.proc.kill()
        victim.proc.wait(10)


class Survivor:
    """A worker running in this process until `stop()`."""

    def __init__(self, queue: JobQueue, catalog: StyleCatalog, backend: FakeBackend) -> None:
        self.backend = backend
        self.worker = Worker(
            queue, backend, catalog, output_size=64, reclaim_interval_s=0.1, block_ms=100
        )
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(self.worker.run(self.stop_event))

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 15)


async def until(predicate: Callable[[], Awaitable[object]], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def worker_of(queue: JobQueue, job_id: str) -> str | None:
    raw: bytes | None = await queue.redis.hget(queue.keys.job(job_id), "worker")  # type: ignore[assignment]
    return raw.decode() if raw else None


@pytest.mark.parametrize("kill_at", ["read", "generated", "finished"])
async def test_a_worker_killed_anywhere_has_its_jobs_answered_once_by_the_living(
    queue: JobQueue,
    catalog: StyleCatalog,
    victims: Callable[..., Victim],
    kill_at: str,
) -> None:
    if kill_at == "read":  # an idle worker blocked in XREADGROUP gets the jobs, then dies
        victim = victims(FAKE_KILL_AT=kill_at)
        await until(lambda: _any_alive(queue))
        await asyncio.sleep(0.5)  # past its first, non-blocking read
        receipts = [await queue.enqueue(request(n), SELFIE) for n in range(2)]
    else:
        receipts = [await queue.enqueue(request(n), SELFIE) for n in range(2)]
        victim = victims(FAKE_KILL_AT=kill_at)
    assert await asyncio.to_thread(victim.proc.wait, 30) == -signal.SIGKILL, victim.log()
    assert "fault injected: SIGKILL" in victim.log()
    jobs = [await queue.get_job(r.job.id) for r in receipts]
    expected_before = {
        "read": (JobStatus.QUEUED, 0),  # read, never started
        "generated": (JobStatus.RUNNING, 1),
        "finished": (JobStatus.DONE, 1),
    }[kill_at]
    assert {(j.status, j.attempts) for j in jobs if j} == {expected_before}

    survivor = Survivor(queue, catalog, FakeBackend())
    try:
        told = await collect(queue, 2, timeout_s=20)
        await asyncio.sleep(TTL_S * 2)  # time for any duplicate to show
        assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []
    finally:
        await survivor.stop()
    assert sorted(d.outcome.job_id for d in told) == sorted(r.job.id for r in receipts)
    assert {d.outcome.status for d in told} == {JobStatus.DONE}
    regenerated = survivor.backend.keys_seen
    if kill_at == "finished":
        assert regenerated == []  # the finish had reached Redis: nothing to do again
    else:
        assert sorted(regenerated) == sorted(r.job.id for r in receipts)  # once each
        assert {d.result.meta["worker"] for d in told if d.result} == {survivor.worker.consumer}
    assert (await queue.stats()).running == 0


async def _any_alive(queue: JobQueue) -> bool:
    return bool([k async for k in queue.redis.scan_iter(match=f"{queue.keys.prefix}alive:*")])


async def test_a_frozen_worker_that_comes_back_delivers_nothing_twice(
    queue: JobQueue, catalog: StyleCatalog, victims: Callable[..., Victim]
) -> None:
    receipt = await queue.enqueue(request(1), SELFIE)
    frozen = victims(FAKE_DELAY_S="1.6")  # four steps of 0.4 s
    await until(lambda: asyncio.sleep(0, bool(frozen.batches())))
    frozen_consumer = await worker_of(queue, receipt.job.id)
    frozen.proc.send_signal(signal.SIGSTOP)  # mid-generation: its record stops, too
    survivor = Survivor(queue, catalog, FakeBackend(delay_s=3.0))
    try:
        await until(lambda: asyncio.sleep(0, bool(survivor.backend.batches)))
        assert await worker_of(queue, receipt.job.id) == survivor.worker.consumer
        frozen.proc.send_signal(signal.SIGCONT)  # it ends its generation before the survivor

        async def frozen_refused() -> bool:
            return "not recorded (stale)" in frozen.log()

        await until(frozen_refused)
        job = await queue.get_job(receipt.job.id)
        assert job is not None
        assert (job.status, job.attempts) == (JobStatus.RUNNING, 2)  # still the survivor's
        [told] = await collect(queue, 1, timeout_s=20)
        await asyncio.sleep(TTL_S)
        assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []
    finally:
        await survivor.stop()
    assert told.result is not None
    assert told.result.meta["worker"] == survivor.worker.consumer
    assert frozen.proc.poll() is None  # back, and alive again
    assert await queue.redis.exists(queue.keys.alive(str(frozen_consumer)))
    frozen.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(frozen.proc.wait, 15) == 0, frozen.log()


@pytest.mark.parametrize(
    "busy",
    [
        {"FAKE_DELAY_S": "2.5"},  # a long GPU batch: the backend's thread waits
        {"FAKE_SPIN_S": "2.5"},  # a CPU-bound style in Python: the GIL is contended
        {"FAKE_STALL_LOOP_S": "2.5"},  # the event loop itself blocked
    ],
    ids=["sleeping", "spinning", "blocked-loop"],
)
async def test_a_busy_worker_is_never_taken_for_dead(
    queue: JobQueue,
    catalog: StyleCatalog,
    victims: Callable[..., Victim],
    busy: dict[str, str],
) -> None:
    receipt = await queue.enqueue(request(1), SELFIE)
    worker = victims(**busy)

    async def claimed() -> bool:
        return await worker_of(queue, receipt.job.id) is not None

    await until(claimed)
    busy_consumer = await worker_of(queue, receipt.job.id)
    survivor = Survivor(queue, catalog, FakeBackend())  # watching for dead workers
    try:
        [told] = await collect(queue, 1, timeout_s=30)
    finally:
        await survivor.stop()
    assert told.result is not None
    assert told.result.meta["worker"] == busy_consumer
    job = await queue.get_job(receipt.job.id)
    assert job is not None
    assert job.attempts == 1
    assert survivor.backend.batches == []
    assert "stale" not in worker.log()
    worker.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.proc.wait, 15) == 0, worker.log()


async def test_sigterm_gives_back_the_jobs_not_started_and_another_takes_them_at_once(
    queue: JobQueue, catalog: StyleCatalog, victims: Callable[..., Victim]
) -> None:
    first = await queue.enqueue(request(1, style="sketch"), SELFIE)
    second = await queue.enqueue(request(2, style="oil"), SELFIE)  # the batch's second group
    stopping = victims(FAKE_DELAY_S="3")
    await until(lambda: asyncio.sleep(0, bool(stopping.batches())))
    assert await worker_of(queue, second.job.id) == await worker_of(queue, first.job.id)
    survivor = Survivor(queue, catalog, FakeBackend())
    try:
        stopping.proc.send_signal(signal.SIGTERM)
        told = {d.outcome.job_id: d for d in await collect(queue, 2, timeout_s=20)}
    finally:
        await survivor.stop()
    assert await asyncio.to_thread(stopping.proc.wait, 15) == 0, stopping.log()
    assert "gave back 1 job(s)" in stopping.log()
    assert told[second.job.id].result.meta["worker"] == survivor.worker.consumer  # type: ignore[union-attr]
    assert told[first.job.id].result.meta["worker"] != survivor.worker.consumer  # type: ignore[union-attr]
    done = {j: await queue.get_job(j) for j in told}
    assert {j.status for j in done.values() if j} == {JobStatus.DONE}
    # taken at once: done while the stopping worker still generated its group
    assert done[second.job.id].finished_at < done[first.job.id].finished_at  # type: ignore[union-attr,operator]
    assert done[second.job.id].attempts == 1  # type: ignore[union-attr]  # no delivery counted
    assert survivor.backend.keys_seen == [second.job.id]
    assert [k for b in stopping.batches() for k, _style in b] == [first.job.id]
