"""The worker process: one backend (one GPU), one `generation.worker.Worker`, Redis, and
(when AVATARBOT_WORKER_HEALTH_PORT is set) its own `/healthz` and `/metrics`.

Several workers on one machine each need their own health port (`avatarbot run` gives
worker i the port + i); the server binds AVATARBOT_WEB_HOST. A port that cannot be bound
is logged and the worker works on without it.
"""

from __future__ import annotations

import asyncio
import logging
import os

from avatarbot.http_policy import HttpPolicy
from avatarbot.http_server import HttpServer
from avatarbot.signals import stop_on_signals
from avatarbot.wiring import build_queue, load_encoder, load_likeness, redis_client
from bot.config import ConfigError, Settings
from bot.queue import QueueAdmin, WorkerQueue
from bot.styles import StyleCatalog
from generation.backends import backend_from_settings
from generation.backends.base import Backend
from generation.worker import Encoder, Worker
from generation.worker_health import WorkerHealth

log = logging.getLogger(__name__)


def run_worker(
    settings: Settings, backend: Backend | None = None, *, encode: Encoder | None = None
) -> int:
    """Run one worker process until SIGTERM/SIGINT (the batch in hand is finished).

    Without `backend`, the one the settings name; without `encode`, every avatar is
    labelled as AI-made (`avatarbot.wiring.load_encoder`)."""
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set (the worker needs a Redis to take jobs from)")
    return asyncio.run(_serve(settings, settings.redis_url, backend, encode))


async def _serve(
    settings: Settings, redis_url: str, backend: Backend | None, encode: Encoder | None
) -> int:
    # Stop signals are handled from the start: one that arrives while the backend loads
    # ends the process cleanly (exit 0) once loading is done, with nothing in hand.
    with stop_on_signals(asyncio.Event()) as stop:
        catalog = StyleCatalog.load(settings.styles_file)
        if backend is None:
            backend = await asyncio.to_thread(backend_from_settings, settings, catalog)
        await asyncio.to_thread(backend.warmup)
        if stop.is_set():
            log.info("worker stopped while starting")
            return 0
        async with redis_client(redis_url) as redis:
            worker = Worker(
                build_queue(settings, redis, WorkerQueue),
                backend,
                catalog,
                batch_size=settings.batch_size,
                output_size=settings.output_size,
                reclaim_interval_s=settings.reclaim_interval_s,
                encode=encode or await load_encoder(settings, redis),
                likeness=await load_likeness(settings),
            )
            log.info(
                "worker %s: backend %s, batch %d, %d px, pid %d",
                worker.consumer,
                backend.describe(),
                settings.batch_size,
                settings.output_size,
                os.getpid(),
            )
            server = await _health_server(settings, worker)
            try:
                await worker.run(stop)
            finally:
                if server is not None:
                    await server.stop()
        return 0


async def _health_server(settings: Settings, worker: Worker) -> HttpServer | None:
    """The worker's /healthz and /metrics, listening; None when off or the port is taken."""
    if not settings.worker_health_port:
        return None
    health = WorkerHealth(worker)
    server = HttpServer(
        settings.web_host,
        settings.worker_health_port,
        redis=worker.queue.redis,
        stats=QueueAdmin.sharing(worker.queue).stats,
        probe=health.probe,
        policy=HttpPolicy.from_settings(settings),
    )
    server.add_metrics(health.families)
    try:
        url = await server.start()
    except OSError as exc:  # the worker still works; the operator sees why in the log
        log.error(
            "worker health server cannot listen on %s:%d: %s",
            settings.web_host,
            settings.worker_health_port,
            exc,
        )
        return None
    log.info("worker health and metrics at %s", url)
    return server
