"""The one HTTP server of a process: it owns `/healthz` and `/metrics`; adapters add routes.

A bot process serves it on `AVATARBOT_WEB_HOST:AVATARBOT_WEB_PORT` whatever its chat
surfaces: the web chat adds its page and API to it, the Telegram adapter its webhook. A
worker serves one on `AVATARBOT_WORKER_HEALTH_PORT` when that is set.

- `/healthz`: 200 `{"status": "ok", ...}` when Redis answers and the process's probe says
  so; 503 `{"status": "unavailable", "reason": ...}` otherwise (a load balancer or an
  orchestrator restarts on that).
- `/metrics` (Prometheus text, format 0.0.4): the queue-wide families every process
  exports (`bot.metrics.queue_families`, read from Redis at scrape time), then the
  families of each source the process added (what it observed itself).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from aiohttp import web

from bot import metrics as prom
from bot.health import HealthProbe

log = logging.getLogger(__name__)

MetricsSource = Callable[[], list[str]]
"""Renders one or more metric families (`bot.metrics.family` lines) of this process."""

RouteAdder = Callable[[web.Application], None]
"""Adds an adapter's routes (and its startup/shutdown hooks) to the server's app."""

_REDIS_TIMEOUT_S = 2.0
_REDIS_DOWN = (TimeoutError, aioredis.ConnectionError, aioredis.TimeoutError)


class HttpServer:
    """An aiohttp server for one process. Add routes and metric sources, then `start`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        redis: aioredis.Redis,
        stats: Callable[[], Awaitable[prom.QueueNumbers]],
        probe: HealthProbe,
        client_max_size: int = 1024**2,
    ) -> None:
        self.host = host
        self.port = port
        self._redis = redis
        self._stats = stats
        self._probe = probe
        self._sources: list[MetricsSource] = []
        self.app = web.Application(client_max_size=client_max_size)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/metrics", self.metrics)
        self._runner: web.AppRunner | None = None
        self.url = ""
        """`http://host:port/` once started (the port the system picked for port 0)."""

    def add_routes(self, add: RouteAdder) -> None:
        add(self.app)

    def add_metrics(self, source: MetricsSource) -> None:
        self._sources.append(source)

    async def start(self) -> str:
        """Listen; returns the URL. Raises OSError when the address is taken."""
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.url = _url(runner, self.host, self.port)
        return self.url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.wait_for(self._redis.ping(), _REDIS_TIMEOUT_S)
            health = await asyncio.wait_for(self._probe(), _REDIS_TIMEOUT_S)
        except _REDIS_DOWN as exc:
            body = {"status": "unavailable", "reason": f"redis: {type(exc).__name__}"}
            return _json(body, 503)
        return _json(health.body(), 200 if health.ok else 503)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        try:
            stats = await asyncio.wait_for(self._stats(), _REDIS_TIMEOUT_S)
        except _REDIS_DOWN:
            stats = None
        families = prom.queue_families(stats)
        families += [source() for source in self._sources]
        return web.Response(
            text=prom.exposition(*families), headers={"Content-Type": prom.CONTENT_TYPE}
        )


def _json(data: object, status: int) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", charset="utf-8"
    )


def _url(runner: web.AppRunner, host: str, port: int) -> str:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            port = int(address[1])
            break
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  # listening everywhere; show localhost
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"
