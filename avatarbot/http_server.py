"""The HTTP server of a process: it owns `/healthz` and `/metrics`; adapters add routes.

A bot process serves it on `AVATARBOT_WEB_HOST:AVATARBOT_WEB_PORT` whatever its chat
surfaces: the web chat adds its page and API to it, the Telegram adapter its webhook. A
worker serves one on `AVATARBOT_WORKER_HEALTH_PORT` when that is set.

One server may listen on several addresses, each with its own routes (`listen_apart`),
so an operator can expose one of them alone: the Telegram webhook on
AVATARBOT_WEBHOOK_PORT, `/metrics` on AVATARBOT_METRICS_PORT. Every listener serves
`/healthz` and applies the same `avatarbot.http_policy` (host check, trusted proxies,
body deadline, one-line errors, security headers) and connection timeouts
(`avatarbot.http_protocol`).

- `/healthz`: 200 `{"status": "ok", ...}` when Redis answers and the process's probe says
  so; 503 `{"status": "unavailable", "reason": ...}` otherwise (a load balancer or an
  orchestrator restarts on that). Details added with `add_health` (the chat platforms'
  states) come along either way: a platform that is down does not make the process
  unhealthy, since restarting it would not bring the platform back.
- `/metrics` (Prometheus text, format 0.0.4): the queue-wide families every process
  exports (`bot.metrics.queue_families`, read from Redis at scrape time), then the
  families of each source the process added (what it observed itself).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web

from avatarbot.http_policy import Checkpoint, HttpPolicy, refusal_family
from avatarbot.http_protocol import HardenedRunner
from bot import metrics as prom
from bot.health import HealthProbe

log = logging.getLogger(__name__)

MetricsSource = Callable[[], list[str]]
"""Renders one or more metric families (`bot.metrics.family` lines) of this process."""

HealthDetails = Callable[[], object]
"""A JSON-able value `/healthz` shows under its name."""

RouteAdder = Callable[[web.Application], None]
"""Adds an adapter's routes (and its startup/shutdown hooks) to the server's app."""

MAIN = "main"
_REDIS_TIMEOUT_S = 2.0
_REDIS_DOWN = (TimeoutError, aioredis.ConnectionError, aioredis.TimeoutError)


@dataclass
class Listener:
    """One address the server listens on, with its own app (routes)."""

    name: str
    host: str
    port: int
    app: web.Application
    checkpoint: Checkpoint
    runner: HardenedRunner | None = None
    url: str = ""
    """`http://host:port/` once started (the port the system picked for port 0)."""


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
        policy: HttpPolicy | None = None,
        metrics_at: tuple[str, int] | None = None,
    ) -> None:
        """`metrics_at`: serve `/metrics` there alone (not on `host:port`)."""
        self._redis = redis
        self._stats = stats
        self._probe = probe
        self._client_max_size = client_max_size
        self.policy = policy or HttpPolicy()
        self._sources: list[MetricsSource] = []
        self._health: dict[str, HealthDetails] = {}
        self.listeners: dict[str, Listener] = {}
        main = self.listen_apart(MAIN, host, port)
        metrics = self.listen_apart("metrics", *metrics_at) if metrics_at else main
        metrics.app.router.add_get("/metrics", self.metrics)
        self.add_metrics(self._refusals)

    @property
    def app(self) -> web.Application:
        """The main listener's app."""
        return self.listeners[MAIN].app

    @property
    def url(self) -> str:
        """The main listener's URL once started."""
        return self.listeners[MAIN].url

    def listen_apart(self, name: str, host: str, port: int) -> Listener:
        """Another address to listen on, with `/healthz`; `add_routes(..., to=name)` adds
        routes to it."""
        if name in self.listeners:
            raise ValueError(f"a listener named {name!r} exists already")
        app = web.Application(client_max_size=self._client_max_size)
        checkpoint = Checkpoint(self.policy)
        checkpoint.install(app)
        app.router.add_get("/healthz", self.healthz)
        listener = Listener(name, host, port, app, checkpoint)
        self.listeners[name] = listener
        return listener

    def add_routes(self, add: RouteAdder, *, to: str = MAIN) -> None:
        add(self.listeners[to].app)

    def add_metrics(self, source: MetricsSource) -> None:
        self._sources.append(source)

    def add_health(self, name: str, details: HealthDetails) -> None:
        self._health[name] = details

    async def start(self) -> str:
        """Listen on every address; returns the main URL. Raises OSError when an address
        is taken (nothing is left listening then)."""
        try:
            for listener in self.listeners.values():
                await self._start(listener)
        except BaseException:
            await self.stop()
            raise
        return self.url

    async def _start(self, listener: Listener) -> None:
        runner = HardenedRunner(listener.app, idle_timeout_s=self.policy.idle_timeout_s)
        await runner.setup()
        try:
            await web.TCPSite(runner, listener.host, listener.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        listener.runner = runner
        listener.url = _url(runner, listener.host, listener.port)

    async def stop(self) -> None:
        for listener in reversed(self.listeners.values()):
            runner, listener.runner = listener.runner, None
            if runner is not None:
                await runner.cleanup()

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        extra = {name: details() for name, details in self._health.items()}
        try:
            await asyncio.wait_for(self._redis.ping(), _REDIS_TIMEOUT_S)
            health = await asyncio.wait_for(self._probe(), _REDIS_TIMEOUT_S)
        except _REDIS_DOWN as exc:
            body = {"status": "unavailable", "reason": f"redis: {type(exc).__name__}", **extra}
            return _json(body, 503)
        return _json({**health.body(), **extra}, 200 if health.ok else 503)

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

    def _refusals(self) -> list[str]:
        refused: Counter[str] = Counter()
        for listener in self.listeners.values():
            refused.update(listener.checkpoint.refused)
        return refusal_family(refused)


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
