"""A worker's liveness record, renewed from its own thread (docs/reliability.md, "When a
worker stops").

Liveness is kept apart from progress: the record (`alive:{consumer}`, a TTL of
`liveness_ttl_s`) says only that the process runs. A plain OS thread with its own
synchronous Redis client renews it every `liveness_refresh_s`, so neither a long GPU
batch nor a style that keeps the event loop busy makes a busy worker look dead. When the
process dies (SIGKILL, a crash, the OOM killer) the thread dies with it, the record lapses,
and the other workers take its jobs at once (`WorkerQueue.reclaim`). A process frozen
whole (SIGSTOP, a long pause, cut off from Redis) lapses too; if it comes back, finish.lua
drops the results of the deliveries it lost.

The one thing that starves this thread is a C extension that holds the GIL for longer than
the TTL; both backends release it in their heavy calls (OpenCV, torch).

The same renewal keeps the worker's entry in the `workers` registry (ETAs, stats).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.queue import scripts
from bot.queue.client import Clock, QueueClient
from bot.queue.config import QueueConfig
from bot.queue.keys import QueueKeys

log = logging.getLogger(__name__)

_SYNC_PARAMS = frozenset(inspect.signature(redis.Redis.__init__).parameters)


class WorkerLiveness:
    """Renews one worker's liveness record: once with `renew` (before the worker claims
    anything), then from its own daemon thread between `start` and `stop`."""

    def __init__(
        self,
        client: redis.Redis,
        config: QueueConfig,
        consumer: str,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.consumer = consumer
        self.ttl_s = config.liveness_ttl_s
        self.refresh_s = config.liveness_refresh_s
        self._client = client
        self._clock = clock
        keys = QueueKeys(config.prefix)
        self._keys = [keys.alive(consumer), keys.workers]
        self._alive = client.register_script(scripts.source("alive"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._first = ""
        """When (server ms) this worker first created its record (the script returns it)."""
        self.renewed_at: float | None = None
        """When (monotonic) the record was last renewed; None before the first renewal."""

    @classmethod
    def beside(cls, queue: QueueClient, consumer: str) -> WorkerLiveness:
        """A renewer for `consumer` with its own synchronous client to `queue`'s server."""
        timeout = max(0.05, queue.config.liveness_ttl_s / 2)
        client = sync_client_like(queue.redis, timeout_s=timeout)
        return cls(client, queue.config, consumer, clock=queue.clock)

    def renew(self) -> None:
        """Renew the record now; raises RedisError when Redis cannot be reached."""
        now = self._clock()
        first = self._alive(
            keys=self._keys,
            args=[
                self.consumer,
                int(self.ttl_s * 1000),
                repr(now),
                repr(now + self.ttl_s),
                max(int(self.ttl_s) + 1, 60),
                self._first,
            ],
        )
        self._first = first.decode() if isinstance(first, bytes) else str(first)
        self.renewed_at = time.monotonic()

    def start(self) -> None:
        """Renew from a daemon thread every `refresh_s` until `stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"liveness-{self.consumer}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (blocks until the thread ended) and close the client. The record
        lapses by itself; `WorkerQueue.unregister_worker` deletes it at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 4 * self.ttl_s))
            self._thread = None
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.renew()
            except (RedisError, OSError) as exc:
                if not self._failing:
                    log.warning(
                        "worker %s: liveness record not renewed (%s); retrying every %.1fs",
                        self.consumer,
                        exc.__class__.__name__,
                        self.refresh_s,
                    )
                self._failing = True
                continue
            if self._failing:
                log.warning("worker %s: liveness record renewed again", self.consumer)
                self._failing = False


def sync_client_like(client: aioredis.Redis, *, timeout_s: float) -> redis.Redis:
    """A synchronous client to the same server, database and credentials as `client` (an
    asyncio one), with `timeout_s` for connecting and for each reply."""
    pool = client.connection_pool
    kwargs: dict[str, Any] = {
        k: v
        for k, v in pool.connection_kwargs.items()
        if k in {"host", "port", "db", "username", "password", "client_name"}
        or (k.startswith("ssl_") and k in _SYNC_PARAMS)
    }
    if "path" in pool.connection_kwargs:
        kwargs["unix_socket_path"] = pool.connection_kwargs["path"]
    if pool.connection_class.__name__ == "SSLConnection":
        kwargs["ssl"] = True
    else:
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ssl_")}
    return redis.Redis(**kwargs, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
