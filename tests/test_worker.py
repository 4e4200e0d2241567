"""The generation worker with a real Redis: batching, failures, stops, crashes, poison jobs,
and a Redis restart."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from PIL import Image

from bot.jobs import FailureReason, JobStatus
from bot.queue import QueueConfig
from bot.redis_connection import make_client
from bot.styles import StyleCatalog
from generation.worker import Worker
from tests.conftest import RedisServer
from tests.fake_backends import FakeBackend, RaisingBackend, colour
from tests.queue_helpers import BOT, JobQueue, collect, keys_under, request, wait_for

ROOT = Path(__file__).resolve().parent.parent
IDLE_S = 0.5
LIVENESS = {"liveness_ttl_s": 0.5, "liveness_refresh_s": 0.1}  # a dead worker is found fast


@pytest.fixture(scope="module")
def catalog() -> StyleCatalog:
    return StyleCatalog.load()


def make_queue(client: aioredis.Redis, prefix: str, **overrides: object) -> JobQueue:
    options: dict[str, object] = {
        "prefix": prefix,
        "reclaim_idle_s": IDLE_S,
        "max_deliveries": 2,
        **LIVENESS,
    }
    options.update(overrides)
    return JobQueue(client, QueueConfig(**options))  # type: ignore[arg-type]


@pytest.fixture
async def queue(redis_client: aioredis.Redis, key_prefix: str) -> JobQueue:
    q = make_queue(redis_client, key_prefix)
    await q.ensure_groups(BOT)
    return q


def worker(queue: JobQueue, backend: FakeBackend | RaisingBackend, catalog: StyleCatalog,
           **options: object) -> Worker:  # fmt: skip
    defaults: dict[str, object] = {
        "batch_size": 4,
        "output_size": 64,
        "reclaim_interval_s": 0.1,
        "block_ms": 100,
        "progress_interval_s": 0.0,
    }
    defaults.update(options)
    return Worker(queue, backend, catalog, **defaults)  # type: ignore[arg-type]


class Running:
    """A worker running as a task until `stop()`."""

    def __init__(self, w: Worker) -> None:
        self.worker = w
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(w.run(self.stop_event))

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 10)


async def test_batch_grouped_by_style_and_failures_stay_alone(
    queue: JobQueue, face_jpeg: bytes, catalog: StyleCatalog
) -> None:
    styles = ["sketch", "oil", "sketch", "no-such-style", "comic"]
    receipts = [
        await queue.enqueue(request(n, style=s, variants=2 if n == 0 else 1), face_jpeg)
        for n, s in enumerate(styles)
    ]
    backend = FakeBackend(fail_style="comic")
    running = Running(worker(queue, backend, catalog, batch_size=5))
    deliveries = await collect(queue, len(styles))
    await running.stop()

    assert sorted(sorted(style for _key, style in b) for b in backend.batches) == [
        ["comic"], ["oil"], ["sketch", "sketch"],
    ]  # fmt: skip
    by_id = {d.outcome.job_id: d for d in deliveries}
    assert len(by_id) == len(styles)
    for receipt in receipts:
        d = by_id[receipt.job.id]
        if receipt.job.style_id == "no-such-style":
            assert d.outcome.failure is FailureReason.UNKNOWN_STYLE
        elif receipt.job.style_id == "comic":
            assert d.outcome.failure is FailureReason.GENERATION_FAILED
        else:
            assert d.outcome.status is JobStatus.DONE
            assert d.result is not None
            assert len(d.result.images) == receipt.job.variants
            for image in d.result.images:
                with Image.open(io.BytesIO(image.data)) as png:
                    assert png.format == "PNG"
                    assert png.size == (64, 64) == (image.width, image.height)
                    assert png.getpixel((5, 5)) == colour(receipt.job.style_id, image.seed)
            assert [im.seed for im in d.result.images] == receipt.job.seeds
    stats = await queue.stats()
    assert (stats.depth, stats.running) == (0, 0)
    assert stats.avg_job_s is not None
    assert stats.live_workers == 0  # unregistered on stop


async def test_backend_that_raises_fails_its_batch_only(
    queue: JobQueue, face_jpeg: bytes, catalog: StyleCatalog
) -> None:
    await queue.enqueue(request(1), face_jpeg)
    running = Running(worker(queue, RaisingBackend(), catalog))
    [told] = await collect(queue, 1)
    await running.stop()
    assert told.outcome.failure is FailureReason.GENERATION_FAILED


async def test_unreadable_selfie_fails_that_job(
    queue: JobQueue, face_jpeg: bytes, catalog: StyleCatalog
) -> None:
    bad = await queue.enqueue(request(1), b"not an image")
    good = await queue.enqueue(request(2), face_jpeg)
    running = Running(worker(queue, FakeBackend(), catalog))
    told = {d.outcome.job_id: d.outcome for d in await collect(queue, 2)}
    await running.stop()
    assert told[bad.job.id].failure is FailureReason.GENERATION_FAILED
    assert told[good.job.id].status is JobStatus.DONE


async def test_stop_mid_batch_finishes_the_batch(
    queue: JobQueue, face_jpeg: bytes, catalog: StyleCatalog
) -> None:
    receipts = [await queue.enqueue(request(n), face_jpeg) for n in range(3)]
    backend = FakeBackend(delay_s=0.8)
    running = Running(worker(queue, backend, catalog, batch_size=2))

    async def generating() -> bool:
        job = await queue.get_job(receipts[0].job.id)
        return job is not None and job.progress > 0

    await wait_for(generating)  # progress reaches the job hash while the batch runs
    await running.stop()
    for receipt in receipts[:2]:
        job = await queue.get_job(receipt.job.id)
        assert job is not None
        assert job.status is JobStatus.DONE
    left = await queue.get_job(receipts[2].job.id)
    assert left is not None
    assert left.status is JobStatus.QUEUED  # not started: waits for the next worker
    assert (await queue.stats()).running == 0


def start_worker_process(
    env_base: dict[str, str], tmp_path: Path, name: str, **fake: str
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **env_base, **fake)
    env["FAKE_LOG"] = str(tmp_path / "batches.jsonl")
    with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "tests.worker_process"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def batches_logged(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "batches.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture
def worker_env(redis_url: str, key_prefix: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "AVATARBOT_KEY_PREFIX": key_prefix,
        "AVATARBOT_RECLAIM_IDLE_S": str(IDLE_S),
        "AVATARBOT_RECLAIM_INTERVAL_S": "0.1",
        **{f"AVATARBOT_{k.upper()}": str(v) for k, v in LIVENESS.items()},
        "AVATARBOT_MAX_DELIVERIES": "2",
        "AVATARBOT_BATCH_SIZE": "4",
        "AVATARBOT_WEB_ENABLED": "false",
    }


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def test_killed_worker_process_jobs_complete_exactly_once(  # noqa: PLR0917  # fixtures
    queue: JobQueue,
    face_jpeg: bytes,
    catalog: StyleCatalog,
    worker_env: dict[str, str],
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    redis_client: aioredis.Redis,
) -> None:
    receipts = [await queue.enqueue(request(n), face_jpeg) for n in range(6)]
    victim = start_worker_process(worker_env, tmp_path, "victim", FAKE_DELAY_S="30")
    processes.append(victim)

    async def victim_generating() -> bool:
        assert victim.poll() is None, (tmp_path / "victim.log").read_text()
        return bool(batches_logged(tmp_path))

    await wait_for(victim_generating, 30)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    assert (await queue.stats()).running == 4  # its batch is still pending in its name

    backend = FakeBackend()
    running = Running(worker(queue, backend, catalog))
    deliveries = await collect(queue, 6)
    await asyncio.sleep(IDLE_S * 2)  # time for any duplicate to show up
    assert await queue.read_outcomes(BOT, "bot-1", 10, 10) == []
    await running.stop()

    assert sorted(d.outcome.job_id for d in deliveries) == sorted(r.job.id for r in receipts)
    assert all(d.outcome.status is JobStatus.DONE for d in deliveries)
    counts = {key: backend.keys_seen.count(key) for key in backend.keys_seen}
    assert set(counts.values()) == {1}  # the survivor generated each job once
    [victim_batch] = [b["batch"] for b in batches_logged(tmp_path)]
    suspects = {key for key, _style in victim_batch}  # type: ignore[attr-defined]
    assert len(suspects) == 4
    for batch in backend.batches:  # each suspect ran alone
        assert len(batch) == 1 or not suspects & {key for key, _style in batch}
    reclaimed = [d for d in deliveries if d.job is not None and d.job.attempts == 2]
    assert len(reclaimed) == 4
    assert await redis_client.xlen(queue.results_stream(BOT)) == 0


async def test_poison_job_dead_letters_and_others_complete(
    queue: JobQueue,
    face_jpeg: bytes,
    worker_env: dict[str, str],
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    poison = await queue.enqueue(request(0, style="comic"), face_jpeg)  # first in line
    others = [await queue.enqueue(request(n, style="sketch"), face_jpeg) for n in range(1, 4)]
    deliveries = []
    deadline = time.monotonic() + 60
    while len(deliveries) < 4 and time.monotonic() < deadline:
        proc = start_worker_process(
            worker_env, tmp_path, f"w{len(processes)}", FAKE_POISON_STYLE="comic"
        )
        processes.append(proc)
        while proc.poll() is None and len(deliveries) < 4 and time.monotonic() < deadline:
            deliveries += await collect(queue, 4 - len(deliveries), timeout_s=0.3)
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0  # a clean stop

    told = {d.outcome.job_id: d.outcome for d in deliveries}
    assert len(deliveries) == 4 == len(told)
    assert told[poison.job.id].status is JobStatus.DEAD
    assert told[poison.job.id].failure is FailureReason.DEAD_LETTER
    assert all(told[r.job.id].status is JobStatus.DONE for r in others)
    assert [p.returncode for p in processes[:2]] == [3, 3]  # two workers died on it
    assert len(processes) == 3
    [letter] = await queue.dead_letters(10)
    assert letter.job_id == poison.job.id
    assert letter.deliveries == 3
    generated = [key for b in batches_logged(tmp_path) for key, _style in b["batch"]]  # type: ignore[attr-defined]
    assert generated.count(poison.job.id) == 2


async def test_jobs_survive_a_redis_crash_with_aof(
    redis_server_factory: Callable[[], RedisServer],
    face_jpeg: bytes,
    catalog: StyleCatalog,
    key_prefix: str,
) -> None:
    server = redis_server_factory()
    client = make_client(server.url)
    try:
        queue = make_queue(client, key_prefix)
        await queue.ensure_groups(BOT)
        receipts = [await queue.enqueue(request(n), face_jpeg) for n in range(6)]
        backend = FakeBackend(delay_s=0.3)
        running = Running(worker(queue, backend, catalog, batch_size=2))
        first = await collect(queue, 1)
        assert first
        await asyncio.to_thread(server.restart)  # kill -9, then start on the same AOF
        rest = await collect(queue, 5, timeout_s=40)
        await running.stop()
        delivered = [d.outcome.job_id for d in first + rest]
        assert sorted(delivered) == sorted(r.job.id for r in receipts)
        assert all(d.outcome.status is JobStatus.DONE for d in first + rest)
        keys = await keys_under(client, key_prefix)
        assert not [k for k in keys if ":selfie:" in k]
    finally:
        await client.aclose()
