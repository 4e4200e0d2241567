"""Queue round trip: avatarbot's job queue against a bare Redis Streams loop, same run.

Run from the repository root: `.venv/bin/python -m bench.queue_bench [--jobs N] [--write]`
against the Redis on 127.0.0.1:6379 (or `--redis-url`). `--write` replaces the "Queue round
trip" section of docs/benchmarks.md.

Round trip = a bot enqueues a job (with a small JPEG selfie) -> a worker claims it, runs a
no-op backend (an 8 px image), publishes the result -> the bot reads the outcome and
delivers it. Ours is the real code (`JobProducer.enqueue`, `Worker`, and on the bot side
either `read_outcomes` + the one-step `mark_delivered` of one-shot readers, or the
production `DeliveryPump`: outcomes read under a lease, sent, confirmed); the baseline
does the same three roles with bare commands only (XADD; XREADGROUP + XADD result +
XACK; XREADGROUP + XACK), in the same process and event loop. Idle pick-up: on an empty
queue with the worker blocked in XREADGROUP, the time from the start of `enqueue` to the
backend being called (baseline: XADD to XREADGROUP returning). After the timed rounds, one
short untimed round per variant counts the commands the client sends per job.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from PIL import Image

from bench.queue_bench_report import render
from bench.report import write_section
from bot.jobs import Job, JobRequest, Owner, ResultImage, Route
from bot.queue import (
    Delivery,
    DeliveryPump,
    DeliveryQueue,
    JobProducer,
    QueueConfig,
    WorkerQueue,
)
from bot.queue import scripts as lua
from bot.replies import Reply
from bot.styles import StyleCatalog
from generation.backends.base import (
    Backend,
    GeneratedImage,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
    ProgressCallback,
)
from generation.worker import Worker

BOT = "bench"


class NoopBackend(Backend):
    name = "noop"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.called: dict[str, float] = {}
        self.seen = asyncio.Event()
        self._loop = loop

    def generate(
        self, batch: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationOutput | GenerationError]:
        now = time.perf_counter()
        for r in batch:
            self.called[r.key] = now
        self._loop.call_soon_threadsafe(self.seen.set)
        return [
            GenerationOutput(
                key=r.key,
                images=tuple(GeneratedImage(Image.new("RGB", (8, 8)), s) for s in r.seeds),
            )
            for r in batch
        ]


def tiny_png(image: Image.Image, job: Job, seed: int) -> ResultImage:
    return ResultImage(data=b"\x89PNG-bench", mime="image/png", width=8, height=8, seed=seed)


def selfie_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 150, 120)).save(buffer, "JPEG")
    return buffer.getvalue()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class NoReplies:
    """The pump's renderer, reduced to nothing: the bench measures the queue, not the chat
    replies (`Conversation` renders them in production)."""

    async def outcome_replies(self, delivery: Delivery) -> list[Reply]:
        return []

    def status_reply(self, receipt: object) -> object:
        raise NotImplementedError


def bot_side(
    queue: DeliveryQueue, record: Callable[[Delivery], None], *, leased: bool
) -> tuple[DeliveryPump | None, Callable[[], Awaitable[object]]]:
    """The bot's delivery step: one `DeliveryPump` pass (leased), or one read of up to 100
    outcomes, each marked delivered in one step; `record` is called per delivery."""
    if leased:
        pump = DeliveryPump(queue, NoReplies(), BOT, "bot-1")  # type: ignore[arg-type]

        async def send(delivery: Delivery, replies: Sequence[Reply]) -> None:
            record(delivery)

        pump.register("bench", send)
        pump.register("idle", send)
        return pump, pump.pump_once

    async def read_and_mark() -> None:
        for delivery in await queue.read_outcomes(BOT, "bot-1", 100, 1000):
            if await queue.mark_delivered(BOT, delivery):
                record(delivery)

    return None, read_and_mark


async def ours(
    client: aioredis.Redis,
    prefix: str,
    jobs: int,
    batch: int,
    *,
    idle: int = 40,
    leased: bool = False,
) -> dict[str, float]:
    """The real queue and worker. The bot side reads outcomes and marks each delivered in
    one step (`leased=False`, one-shot readers), or runs the production `DeliveryPump`
    (`leased=True`: outcomes read under a lease, sent, then confirmed)."""
    config = QueueConfig(prefix=prefix, queue_cap=jobs + 10, daily_quota=10, job_ttl_s=600)
    queue = JobProducer(client, config)
    await queue.ensure_groups(BOT)
    outcomes = DeliveryQueue.sharing(queue)
    backend = NoopBackend(asyncio.get_running_loop())
    worker = await _ready_worker(queue, backend, batch)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.2)
    delivered: dict[str, float] = {}

    def record(delivery: Delivery) -> None:
        delivered.setdefault(delivery.outcome.job_id, time.perf_counter())

    pump, deliver_once = bot_side(outcomes, record, leased=leased)
    elapsed, cpu, latencies = await _timed_round(queue, jobs, delivered, deliver_once)
    jpeg = selfie_jpeg()
    pickups = []  # idle queue: nothing else queued, the worker is blocked in XREADGROUP
    for n in range(idle):
        await asyncio.sleep(0.03)
        request = JobRequest(
            owner=Owner("idle", f"u{n}", "c"), route=Route(bot=BOT), style_id="sketch"
        )
        backend.seen.clear()
        t0 = time.perf_counter()
        receipt = await queue.enqueue(request, jpeg)
        await asyncio.wait_for(backend.seen.wait(), 5)
        pickups.append(backend.called[receipt.job.id] - t0)
        while receipt.job.id not in delivered:
            await deliver_once()
    while pump is not None and pump.retrying:  # a confirm left for a next pass (none expected)
        await pump.pump_once(block_ms=1)
    stop.set()
    await task
    return summary(jobs, elapsed, cpu, latencies, pickups)


async def _ready_worker(queue: JobProducer, backend: NoopBackend, batch: int) -> Worker:
    worker_queue = WorkerQueue.sharing(queue)
    # The upkeep (a SCAN for orphaned selfies, ...) runs on the reclaim timer once a minute;
    # a live worker ran it long before: run it now, not inside the few timed seconds.
    await worker_queue.reclaim("bench-upkeep", 1)
    return Worker(
        worker_queue, backend, StyleCatalog.load(), batch_size=batch, output_size=8,
        reclaim_interval_s=5.0, block_ms=1000, encode=tiny_png,
    )  # fmt: skip


async def _timed_round(
    queue: JobProducer,
    jobs: int,
    delivered: dict[str, float],
    deliver_once: Callable[[], Awaitable[object]],
) -> tuple[float, float, list[float]]:
    """Enqueue `jobs` jobs one at a time while the bot delivers them; returns the wall
    time, the process's CPU time and each job's enqueue-to-delivered latency."""
    jpeg = selfie_jpeg()
    sent: dict[str, float] = {}

    async def bot() -> None:
        while len(delivered) < jobs:
            await deliver_once()

    reader = asyncio.create_task(bot())
    start, cpu = time.perf_counter(), time.process_time()
    for n in range(jobs):
        request = JobRequest(
            owner=Owner("bench", f"u{n}", "c"), route=Route(bot=BOT), style_id="sketch"
        )
        t0 = time.perf_counter()
        receipt = await queue.enqueue(request, jpeg)
        sent[receipt.job.id] = t0
    await reader
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return elapsed, cpu, [delivered[job_id] - t0 for job_id, t0 in sent.items()]


def summary(
    jobs: int, elapsed: float, cpu: float, latencies: list[float], pickups: list[float]
) -> dict[str, float]:
    return {
        "jobs_s": jobs / elapsed,
        "cpu_ms": cpu / jobs * 1000,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "pickup_ms": statistics.median(pickups) * 1000 if pickups else float("nan"),
    }


async def bare(
    client: aioredis.Redis, prefix: str, jobs: int, batch: int, idle: int = 40
) -> dict[str, float]:
    stream, results = f"{prefix}:bare-jobs", f"{prefix}:bare-results"
    for key in (stream, results):
        await client.xgroup_create(key, "g", id="0", mkstream=True)
    jpeg = selfie_jpeg()
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    picked: dict[bytes, float] = {}
    seen = asyncio.Event()
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            reply = await client.xreadgroup("g", "w", {stream: ">"}, count=batch, block=1000)
            for _name, entries in reply or []:
                now = time.perf_counter()
                ids = []
                for entry_id, fields in entries:
                    picked[fields[b"id"]] = now
                    seen.set()
                    await client.xadd(results, {"id": fields[b"id"], "image": b"\x89PNG-bench"})
                    ids.append(entry_id)
                await client.xack(stream, "g", *ids)

    async def bot() -> None:
        while len(latencies) < jobs:
            reply = await client.xreadgroup("g", "b", {results: ">"}, count=100, block=1000)
            for _name, entries in reply or []:
                for entry_id, fields in entries:
                    await client.xack(results, "g", entry_id)
                    latencies.append(time.perf_counter() - sent[fields[b"id"]])

    consumer = asyncio.create_task(worker())
    reader = asyncio.create_task(bot())
    await asyncio.sleep(0.2)
    start, cpu = time.perf_counter(), time.process_time()
    for n in range(jobs):
        job_id = f"j{n}".encode()
        sent[job_id] = time.perf_counter()
        await client.xadd(stream, {"id": job_id, "selfie": jpeg})
    await reader
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    pickups = []
    for n in range(idle):
        await asyncio.sleep(0.03)
        job_id = f"idle{n}".encode()
        t0 = time.perf_counter()
        sent[job_id] = t0
        seen.clear()
        await client.xadd(stream, {"id": job_id, "selfie": jpeg})
        await asyncio.wait_for(seen.wait(), 5)
        pickups.append(picked[job_id] - t0)
    stop.set()
    await consumer
    return summary(jobs, elapsed, cpu, latencies, pickups)


Variant = Callable[[aioredis.Redis, str, int, int, int], Awaitable[dict[str, float]]]


async def _ours_marked(
    client: aioredis.Redis, prefix: str, jobs: int, batch: int, idle: int
) -> dict[str, float]:
    return await ours(client, prefix, jobs, batch, idle=idle)


async def _ours_leased(
    client: aioredis.Redis, prefix: str, jobs: int, batch: int, idle: int
) -> dict[str, float]:
    return await ours(client, prefix, jobs, batch, idle=idle, leased=True)


VARIANTS: dict[str, Variant] = {"bare": bare, "marked": _ours_marked, "leased": _ours_leased}
SCRIPT_NAMES = {lua.sha(name): name.upper() for name in lua.script_names()}


class CommandCounter:
    """Counts the commands a client sends (not those inside scripts), by what they do."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.counts: Counter[str] = Counter()
        send = client.execute_command

        async def counted(*args: Any, **options: Any) -> Any:
            self.counts[_label(args)] += 1
            return await send(*args, **options)

        client.execute_command = counted  # type: ignore[method-assign]


def _label(args: Sequence[Any]) -> str:
    name = str(args[0]).upper()
    if name == "EVALSHA":
        return SCRIPT_NAMES.get(_str(args[1]), "EVALSHA ?")
    if name in ("XADD", "XACK"):
        return f"{name} {_str(args[1]).rsplit(':', 1)[-1]}"
    if name == "XREADGROUP":  # group (ours) or consumer (the bare loop's one group)
        group, consumer = _str(args[2]), _str(args[3])
        return f"XREADGROUP {consumer if group == 'g' else group}"
    return name


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def measure(
    url: str, jobs: int, batch: int, rounds: int
) -> tuple[dict[str, list[dict[str, float]]], dict[str, dict[str, float]], str]:
    """Alternate the variants `rounds` times (the machine is shared; load drifts), then
    count each one's commands per job in an untimed round (no idle samples)."""
    client = aioredis.Redis.from_url(url)
    prefix = f"bench-{secrets.token_hex(4)}"
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    per_job: dict[str, dict[str, float]] = {}
    try:
        version = str((await client.info("server"))["redis_version"])
        for n in range(rounds):
            for name, variant in VARIANTS.items():
                runs[name].append(await variant(client, f"{prefix}:{n}:{name}", jobs, batch, 40))
                await _delete_under(client, prefix)  # every run starts on the same keyspace
        count_jobs = min(jobs, 500)
        for name, variant in VARIANTS.items():
            counting = aioredis.Redis.from_url(url)
            counter = CommandCounter(counting)
            try:
                await variant(counting, f"{prefix}:count:{name}", count_jobs, batch, 0)
            finally:
                await counting.aclose()
                await _delete_under(client, prefix)
            per_job[name] = {k: v / count_jobs for k, v in counter.counts.most_common()}
        return runs, per_job, version
    finally:
        await _delete_under(client, prefix)
        await client.aclose()


async def _delete_under(client: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for i in range(0, len(keys), 1000):
        await client.delete(*keys[i : i + 1000])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    runs, per_job, version = asyncio.run(
        measure(args.redis_url, args.jobs, args.batch, args.rounds)
    )
    text = render(runs, per_job, version, args.jobs, args.batch)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
