"""The generation worker: takes jobs off the queue, runs the backend, publishes results.

One worker process runs one backend (one GPU), two loops on one event loop, and one
thread:

- consume: claim up to `batch_size` new jobs (XREADGROUP, BLOCK ~0.25 s so a stop is
  noticed), group them by style, run each group through the backend in a thread, complete
  or fail every job on its own (one bad job never spoils its batch);
- reclaim: take over the jobs of workers that stopped (`WorkerQueue.reclaim`): every
  `watch_interval_s` (a quarter second) it looks for workers whose liveness record lapsed
  (and jobs given back by stopping workers) and takes theirs at once; every
  `reclaim_interval_s` it also sweeps for jobs held past their stuck bound. A job taken
  from a dead worker is a suspect (it may be what killed it), so it runs alone, with
  nothing else claimed by this worker meanwhile: if it kills this worker too, no innocent
  job is charged another delivery, and after `max_deliveries` it is dead-lettered;
- liveness (`bot.queue.WorkerLiveness`, an OS thread with its own Redis client): renews
  this worker's liveness record and registration, whatever the backend and the event loop
  are busy with.

Generation is serialised by one lock, so a batch claimed is a batch being worked on. On
stop, the jobs in hand whose generation has not begun are given back at once (another
worker takes them), the group being generated is finished, and the loops return. The
process around it (Redis, signals, the backend from the settings, the health server) is
wired in `avatarbot.worker_process`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from PIL import Image
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.consumers import consumer_name
from bot.jobs import FailureReason, Job, JobResult, ResultImage
from bot.queue import ClaimedJob, WorkerLiveness, WorkerQueue
from bot.selfie import CorruptImage, load_selfie
from bot.styles import Style, StyleCatalog
from generation.backends.base import (
    Backend,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
    ProgressCallback,
)
from generation.worker_metrics import WorkerMetrics

if TYPE_CHECKING:
    from generation.likeness_check import LikenessCheck

log = logging.getLogger(__name__)

Encoder = Callable[[Image.Image, Job, int], ResultImage]
"""Turns one generated image into the bytes users get: (image, job, seed) -> ResultImage.
The provenance labeller plugs in here."""

T = TypeVar("T")

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def png_encoder(image: Image.Image, job: Job, seed: int) -> ResultImage:
    """Plain PNG, no labels (tests, and until the labeller is plugged in)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return ResultImage(
        data=buffer.getvalue(), mime="image/png", width=image.width, height=image.height, seed=seed
    )


class Worker:
    def __init__(
        self,
        queue: WorkerQueue,
        backend: Backend,
        catalog: StyleCatalog,
        *,
        consumer: str | None = None,
        batch_size: int = 4,
        output_size: int = 512,
        reclaim_interval_s: float = 5.0,
        block_ms: int | None = None,
        progress_interval_s: float = 1.0,
        encode: Encoder = png_encoder,
        metrics: WorkerMetrics | None = None,
        likeness: LikenessCheck | None = None,
        liveness: WorkerLiveness | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.queue = queue
        self.backend = backend
        self.catalog = catalog
        self.consumer = consumer or consumer_name("worker")
        self.batch_size = batch_size
        self.output_size = output_size
        self.reclaim_interval_s = reclaim_interval_s
        self.block_ms = block_ms or min(1000, max(50, int(queue.config.watch_interval_s * 1000)))
        """How long a read waits on an empty queue (holding the lock): by default the watch
        interval, so a dead worker's jobs wait at most that for the lock."""
        self.progress_interval_s = progress_interval_s
        self.encode = encode
        self.metrics = metrics or WorkerMetrics()
        self.likeness = likeness
        """Scores every image against its selfie (None: not measured)."""
        self.liveness = liveness or WorkerLiveness.beside(queue, self.consumer)
        """Renews this worker's liveness record from its own thread."""
        self.running = False
        """True while the consume and reclaim loops run (the worker's /healthz)."""
        self._lock = asyncio.Lock()
        self._in_flight: dict[str, ClaimedJob] = {}
        self._started: set[str] = set()
        """Entries in hand whose generation has begun (never given back)."""
        self._given_back: set[str] = set()
        """Entries in hand given back on stop (never started here)."""
        self._stop: asyncio.Event | None = None
        self.processed = 0
        """Jobs this worker completed or failed (for logs and tests)."""

    @property
    def in_hand(self) -> int:
        """Jobs claimed and not yet finished."""
        return len(self._in_flight)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then give back the jobs not started and finish the
        group being generated."""
        self._stop = stop
        await self._retrying(self.queue.ensure_groups, stop)
        # The record exists before anything is claimed, so no job of ours looks orphaned.
        await self._retrying(lambda: asyncio.to_thread(self.liveness.renew), stop)
        self.liveness.start()
        log.info("worker %s ready: %s", self.consumer, self.backend.describe())
        giving_back = asyncio.create_task(self._give_back_on_stop(stop), name="give-back")
        self.running = True
        try:
            await asyncio.gather(self._consume_loop(stop), self._reclaim_loop(stop))
        finally:
            self.running = False
            if not stop.is_set():  # the loops failed: nothing to give back
                giving_back.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await giving_back
            await asyncio.to_thread(self.liveness.stop)
            with contextlib.suppress(*_REDIS_DOWN):
                await self.queue.unregister_worker(self.consumer)
            log.info("worker %s stopped after %d job(s)", self.consumer, self.processed)

    # --- loops ---------------------------------------------------------------------------

    async def _consume_loop(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                async with self._lock:
                    if stop.is_set():
                        break
                    claimed = await self.queue.claim(self.consumer, self.batch_size, self.block_ms)
                    if claimed:
                        await self.process(claimed)
                failures = 0
            except _REDIS_DOWN as exc:
                failures += 1
                await self._pause_after(exc, failures, stop)
            except Exception as exc:  # never die silently: log, pause, go on
                log.exception("consume loop error")
                failures += 1
                await self._pause_after(exc, failures, stop)

    async def _reclaim_loop(self, stop: asyncio.Event) -> None:
        """Every `watch_interval_s`, look (without waiting for the lock) for workers that
        stopped; take their jobs when there are some, and sweep for stuck jobs when the
        sweep is due (every `reclaim_interval_s`, back to back while it finds some)."""
        failures = 0
        tick = min(self.reclaim_interval_s, self.queue.config.watch_interval_s)
        next_sweep = time.monotonic()
        while not stop.is_set():
            taken = 0
            try:
                sweep = time.monotonic() >= next_sweep
                if sweep or await self.queue.dead_workers(self.consumer):
                    async with self._lock:
                        if stop.is_set():
                            break
                        taken = await self._take_over(stop, idle=sweep)
                    if sweep and not taken:
                        next_sweep = time.monotonic() + self.reclaim_interval_s
                failures = 0
            except _REDIS_DOWN as exc:
                failures += 1
                await self._pause_after(exc, failures, stop)
                continue
            except Exception as exc:  # never die silently: log, pause, go on
                log.exception("reclaim loop error")
                failures += 1
                await self._pause_after(exc, failures, stop)
                continue
            if not taken:  # drain suspects back to back; otherwise wait for the tick
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)

    async def _take_over(self, stop: asyncio.Event, *, idle: bool) -> int:
        """Under the lock: take over jobs one at a time and run each alone (a suspect),
        up to `batch_size` of them before the consume loop gets a turn. Returns how many."""
        taken = 0
        while taken < self.batch_size and not stop.is_set():
            claimed = await self.queue.reclaim(self.consumer, 1, idle=idle)
            if not claimed:
                break
            for suspect in claimed:
                await self.process([suspect])
            taken += len(claimed)
        return taken

    async def _give_back_on_stop(self, stop: asyncio.Event) -> None:
        """When `stop` is set, give back at once the jobs in hand not yet started (the
        group being generated finishes; those after it would wait for it)."""
        await stop.wait()
        await self._give_back(list(self._in_flight.values()))

    async def _give_back(self, jobs: Sequence[ClaimedJob]) -> None:
        """Hand back those of `jobs` not started here, so another worker takes them now.
        They are marked first, in the same step of the event loop that chose them, so
        `process` never starts one. If Redis is away they stay pending in this worker's
        name and go to the living when its liveness record is deleted or lapses."""
        jobs = [c for c in jobs if c.entry_id not in self._started | self._given_back]
        if not jobs:
            return
        self._given_back.update(c.entry_id for c in jobs)
        try:
            handed = await self.queue.hand_back(self.consumer, jobs)
        except _REDIS_DOWN as exc:
            log.warning("giving back %d job(s) failed (%s)", len(jobs), exc.__class__.__name__)
            return
        log.info("stopping: gave back %d job(s) not started", handed)

    async def _pause_after(self, exc: BaseException, failures: int, stop: asyncio.Event) -> None:
        delay = min(5.0, 0.1 * 2 ** min(failures, 6))
        log.warning("worker paused (%s); retrying in %.1fs", exc.__class__.__name__, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)

    async def _retrying(self, call: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T:
        failures = 0
        while True:
            try:
                return await call()
            except _REDIS_DOWN as exc:
                failures += 1
                if stop.is_set():
                    raise
                await self._pause_after(exc, failures, stop)

    # --- one batch -----------------------------------------------------------------------

    async def process(self, claimed: Sequence[ClaimedJob]) -> None:
        """Generate a claimed batch, one backend call per style; finish every job. Once the
        worker is stopping, the groups not begun are given back instead."""
        for c in claimed:
            self._in_flight[c.entry_id] = c
        try:
            groups: dict[str, list[ClaimedJob]] = {}
            for c in claimed:
                if c.job.style_id not in self.catalog:
                    log.warning(
                        "job %s: unknown style %r",
                        c.job.id,
                        c.job.style_id,
                        extra={"job_id": c.job.id},
                    )
                    await self._fail(c, FailureReason.UNKNOWN_STYLE)
                    continue
                groups.setdefault(c.job.style_id, []).append(c)
            for group in groups.values():
                if self._stop is not None and self._stop.is_set():
                    await self._give_back(group)
                todo = [c for c in group if c.entry_id not in self._given_back]
                if todo:
                    self._started.update(c.entry_id for c in todo)
                    await self._generate_group(todo)
        finally:
            for c in claimed:
                self._in_flight.pop(c.entry_id, None)
                self._started.discard(c.entry_id)
                self._given_back.discard(c.entry_id)

    async def _generate_group(self, group: list[ClaimedJob]) -> None:
        style = self.catalog.get(group[0].job.style_id)
        started = time.perf_counter()
        try:
            produced = await asyncio.to_thread(self._run_group, style, group, self._progress())
        except Exception:
            log.exception(
                "backend %s failed a whole batch of %d (jobs %s)",
                self.backend.name,
                len(group),
                ",".join(c.job.id for c in group),
                extra={"job_id": group[0].job.id},
            )
            await self._fail_all(group, FailureReason.GENERATION_FAILED)
            return
        elapsed = time.perf_counter() - started
        self.metrics.observe_batch(style.id, len(group), elapsed)
        items: list[tuple[ClaimedJob, JobResult | FailureReason]] = []
        for c, images in zip(group, produced, strict=True):
            if isinstance(images, GenerationError):
                log.warning("job %s failed: %s", c.job.id, images, extra={"job_id": c.job.id})
                items.append((c, images.reason))
                continue
            result = JobResult(
                job_id=c.job.id,
                style_id=c.job.style_id,
                images=images,
                backend=self.backend.name,
                elapsed_s=elapsed,
                meta={"device": self.backend.device, "worker": self.consumer},
            )
            items.append((c, result))
        per_job = elapsed / len(group)
        verdicts = await self._finishing(
            lambda: self.queue.finish_many(items, seconds_per_job=per_job)
        )
        for (c, outcome), recorded in zip(items, verdicts or [False] * len(items), strict=True):
            if recorded and isinstance(outcome, JobResult):
                self.metrics.observe_done(c.job.style_id)
                self.metrics.observe_likeness(c.job.style_id, outcome.images)
                log.info(
                    "job %s done (%d image(s), %.2fs)",
                    c.job.id,
                    len(outcome.images),
                    elapsed,
                    extra={"job_id": c.job.id},
                )
            elif recorded and isinstance(outcome, FailureReason):
                self.metrics.observe_failure(outcome.value)
        self.processed += len(items)

    def _run_group(
        self, style: Style, group: Sequence[ClaimedJob], progress: ProgressCallback
    ) -> list[tuple[ResultImage, ...] | GenerationError]:
        """In one worker thread: decode the selfies, generate, encode (label) the images.
        One entry per job; a job whose selfie or encoding fails gets its own error."""
        out: list[tuple[ResultImage, ...] | GenerationError | None] = []
        requests: list[GenerationRequest] = []
        for c in group:
            try:
                selfie = load_selfie(c.selfie_jpeg)
            except CorruptImage as exc:
                log.warning(
                    "job %s: selfie unreadable (%s)",
                    c.job.id,
                    exc.__class__.__name__,
                    extra={"job_id": c.job.id},
                )
                out.append(GenerationError("selfie unreadable"))
                continue
            out.append(None)
            requests.append(
                GenerationRequest(
                    key=c.job.id,
                    selfie=selfie,
                    style=style,
                    seeds=tuple(c.job.seeds),
                    size=self.output_size,
                )
            )
        started = time.perf_counter()
        outputs = self.backend.generate(requests, progress) if requests else []
        if len(outputs) != len(requests):
            raise RuntimeError(f"backend returned {len(outputs)} results for {len(requests)}")
        if self.likeness is not None and requests:
            took = time.perf_counter() - started
            outputs = self.likeness.check(self.backend, requests, outputs, took)
        by_key = {o.key: o for o in outputs if isinstance(o, GenerationOutput)}
        pending = iter(outputs)
        for i, c in enumerate(group):
            if out[i] is not None:
                continue
            output = next(pending)
            if isinstance(output, GenerationError):
                out[i] = output
                continue
            matched = by_key.get(c.job.id, output)
            try:
                out[i] = tuple(
                    replace(self.encode(g.image, c.job, g.seed), likeness=g.likeness, tries=g.tries)
                    for g in matched.images
                )
            except Exception as exc:
                log.exception(
                    "job %s: encoding the result failed", c.job.id, extra={"job_id": c.job.id}
                )
                out[i] = GenerationError(f"encoding failed: {exc.__class__.__name__}")
        return [x for x in out if x is not None]

    async def _fail_all(self, jobs: Sequence[ClaimedJob], reason: FailureReason) -> None:
        if jobs:
            await self._finishing(lambda: self.queue.finish_many([(c, reason) for c in jobs]))
            self.processed += len(jobs)
            for _ in jobs:
                self.metrics.observe_failure(reason.value)

    async def _fail(self, c: ClaimedJob, reason: FailureReason) -> None:
        await self._finishing(lambda: self.queue.fail(c, reason))
        self.processed += 1
        self.metrics.observe_failure(reason.value)

    async def _finishing(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """Record a job's end, riding out a short Redis outage. If Redis stays away the
        entry stays pending and is reclaimed (and regenerated) later: nothing is lost."""
        for attempt in range(8):
            try:
                return await call()
            except _REDIS_DOWN as exc:
                delay = min(3.0, 0.1 * 2**attempt)
                log.warning("recording a job failed (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(delay)
        log.error("could not record a job's end; it will be reclaimed and run again")
        return None

    def _progress(self) -> Callable[[str, float], None]:
        """A thread-safe progress callback that writes to the job hash, throttled."""
        loop = asyncio.get_running_loop()
        last: dict[str, float] = {}

        def report(key: str, fraction: float) -> None:
            now = time.monotonic()
            if fraction < 1.0 and now - last.get(key, float("-inf")) < self.progress_interval_s:
                return
            last[key] = now
            future = asyncio.run_coroutine_threadsafe(self.queue.set_progress(key, fraction), loop)
            future.add_done_callback(_log_progress_error)

        return report


def _log_progress_error(future: concurrent.futures.Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        log.debug("progress update failed: %s", exc.__class__.__name__)
