"""A worker's own `/healthz` and `/metrics`: a tiny aiohttp server in the worker process.

Off unless `AVATARBOT_WORKER_HEALTH_PORT` is set (several workers on one machine each need
their own port; `avatarbot run` gives worker i the port + i). It binds `AVATARBOT_WEB_HOST`.

- `/healthz`: 200 `{"status": "ok", ...}` when Redis answers and the worker's loops run;
  503 with a reason otherwise (a load balancer or an orchestrator restarts on that).
- `/metrics` (Prometheus text): queue lag (age of the oldest queued or running job), queue
  depth, jobs running, this worker's jobs in hand; batch sizes; generation latency per
  style; failures by reason; jobs finished by style; GPU memory when torch with CUDA is
  loaded in this process (never imported just for this).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from aiohttp import web

from bot import metrics as prom

if TYPE_CHECKING:
    from bot.jobs import ResultImage
    from generation.worker import Worker

log = logging.getLogger(__name__)

BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64)
LIKENESS_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TRIES_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 5, 8)


class WorkerMetrics:
    """What one worker process observes; the worker calls `observe_*`."""

    def __init__(self) -> None:
        self.batch_size = prom.Histogram(
            "avatarbot_worker_batch_size", "Jobs per backend call (one style each).", BATCH_BUCKETS
        )
        self.latency = prom.LabelledHistogram(
            "avatarbot_worker_generation_seconds",
            "Wall time of one backend call (a batch of one style), by style.",
            "style",
        )
        self.likeness = prom.LabelledHistogram(
            "avatarbot_worker_likeness_score",
            "Likeness of each delivered image to its selfie (0..1; 0.5 = same person), by style.",
            "style",
            LIKENESS_BUCKETS,
        )
        self.tries = prom.LabelledHistogram(
            "avatarbot_worker_likeness_tries",
            "Generations each delivered image took (more than 1: re-rolled), by style.",
            "style",
            TRIES_BUCKETS,
        )
        self._finished: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._no_face: dict[str, int] = {}

    def observe_batch(self, style_id: str, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.latency.observe(style_id, seconds)

    def observe_done(self, style_id: str) -> None:
        self._finished[style_id] = self._finished.get(style_id, 0) + 1

    def observe_likeness(self, style_id: str, images: Sequence[ResultImage]) -> None:
        """A delivered job's images: score (or "no face") and tries; unmeasured ones skip."""
        for image in images:
            if image.likeness is None:
                continue
            self.tries.observe(style_id, image.tries)
            score = image.likeness.score
            if score is None:
                self._no_face[style_id] = self._no_face.get(style_id, 0) + 1
            else:
                self.likeness.observe(style_id, score)

    def observe_failure(self, reason: str) -> None:
        self._failures[reason] = self._failures.get(reason, 0) + 1

    def failures(self, reason: str) -> int:
        return self._failures.get(reason, 0)

    def render(self) -> list[str]:
        return [
            *prom.family(
                "avatarbot_worker_jobs_done_total",
                "counter",
                "Jobs this worker finished with a result, by style.",
                [({"style": s}, float(n)) for s, n in sorted(self._finished.items())],
            ),
            *prom.family(
                "avatarbot_worker_failures_total",
                "counter",
                "Jobs this worker failed, by reason.",
                [({"reason": r}, float(n)) for r, n in sorted(self._failures.items())],
            ),
            *prom.family(
                "avatarbot_worker_likeness_no_face_total",
                "counter",
                "Delivered images in which no face was found (no likeness score), by style.",
                [({"style": s}, float(n)) for s, n in sorted(self._no_face.items())],
            ),
            *self.batch_size.render(),
            *self.latency.render(),
            *self.likeness.render(),
            *self.tries.render(),
        ]


def gpu_memory() -> list[tuple[dict[str, str], float]]:
    """(labels, bytes) per CUDA device and kind, when torch is loaded and sees CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        out: list[tuple[dict[str, str], float]] = []
        for i in range(torch.cuda.device_count()):
            device = {"device": f"cuda:{i}"}
            out.append(({**device, "kind": "allocated"}, float(torch.cuda.memory_allocated(i))))
            out.append(({**device, "kind": "reserved"}, float(torch.cuda.memory_reserved(i))))
            free, total = torch.cuda.mem_get_info(i)
            out.append(({**device, "kind": "total"}, float(total)))
            out.append(({**device, "kind": "free"}, float(free)))
        return out
    except Exception:  # a metrics scrape must never take the worker down
        log.debug("reading GPU memory failed", exc_info=True)
        return []


class WorkerHealth:
    """The aiohttp app for one worker."""

    def __init__(self, worker: Worker, metrics: WorkerMetrics) -> None:
        self.worker = worker
        self.metrics = metrics

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_text)
        return app

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.wait_for(self.worker.queue.redis.ping(), 2.0)
        except (TimeoutError, aioredis.ConnectionError, aioredis.TimeoutError) as exc:
            return _json({"status": "unavailable", "reason": f"redis: {type(exc).__name__}"}, 503)
        body = {
            "worker": self.worker.consumer,
            "backend": self.worker.backend.name,
            "in_hand": self.worker.in_hand,
            "processed": self.worker.processed,
        }
        if not self.worker.running:
            return _json({"status": "unavailable", "reason": "not running", **body}, 503)
        return _json({"status": "ok", **body})

    async def metrics_text(self, request: web.Request) -> web.StreamResponse:
        try:
            stats = await asyncio.wait_for(self.worker.queue.stats(), 2.0)
        except (TimeoutError, aioredis.ConnectionError, aioredis.TimeoutError):
            stats = None
        families: list[list[str]] = [
            prom.family(
                "avatarbot_up", "gauge", "1 when Redis answered this scrape.",
                [({}, 1.0 if stats else 0.0)],
            ),
            prom.family(
                "avatarbot_worker_jobs_in_hand", "gauge", "Jobs this worker is generating now.",
                [({}, float(self.worker.in_hand))],
            ),
        ]  # fmt: skip
        if stats is not None:
            families += [
                prom.family(
                    "avatarbot_queue_lag_seconds",
                    "gauge",
                    "Age of the oldest queued or running job (0 when none).",
                    [({}, stats.oldest_age_s or 0.0)],
                ),
                prom.family(
                    "avatarbot_jobs",
                    "gauge",
                    "Jobs in the queue by state (queued: waiting for a worker).",
                    [({"state": "queued"}, stats.depth), ({"state": "running"}, stats.running)],
                ),
                prom.family(
                    "avatarbot_dead_letters", "gauge", "Dead-lettered jobs.",
                    [({}, stats.dead_letters)],
                ),
            ]  # fmt: skip
        families.append(self.metrics.render())
        gpu = gpu_memory()
        if gpu:
            families.append(
                prom.family(
                    "avatarbot_gpu_memory_bytes",
                    "gauge",
                    "CUDA memory of this worker's process, by device and kind.",
                    gpu,
                )
            )
        return web.Response(
            text=prom.exposition(*families), headers={"Content-Type": prom.CONTENT_TYPE}
        )


async def serve_worker_health(
    worker: Worker, metrics: WorkerMetrics, host: str, port: int, stop: asyncio.Event
) -> None:
    """Serve until `stop` is set. Port 0 is never passed here (0 means disabled)."""
    runner = web.AppRunner(
        WorkerHealth(worker, metrics).app(), access_log=None, handle_signals=False
    )
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:  # the worker still works; the operator sees why in the log
            log.error("worker health server cannot listen on %s:%d: %s", host, port, exc)
            return
        log.info("worker health and metrics at http://%s:%d/", host, port)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", charset="utf-8"
    )
