"""What every audience of the queue shares: the Redis client, the config, the key schema,
the clock, the scripts and the consumer groups."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bot.jobs import Job
from bot.queue.config import QueueConfig
from bot.queue.keys import DELIVERY_GROUP, JOBS_GROUP, QueueKeys
from bot.queue.scripts import Script
from bot.redis_connection import MIN_VERSION, RedisTooOldError, parse_version

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class QueueClient:
    """The base of each audience's view of the queue (`JobProducer`, `WorkerQueue`,
    `DeliveryQueue`, `QueueAdmin`). Each is built from the same three things, and
    `sharing` builds one audience from another."""

    def __init__(
        self, redis: aioredis.Redis, config: QueueConfig, *, clock: Clock = time.time
    ) -> None:
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the queue needs a client with decode_responses=False (binary data)")
        self.redis = redis
        self.config = config
        self.keys = QueueKeys(config.prefix)
        self.clock = clock
        self._groups_ready: set[str] = set()
        self._version_checked = False

    @classmethod
    def sharing(cls, other: QueueClient) -> Self:
        """This audience's view over `other`'s Redis client, config and clock (and what it
        already checked: the server's version, the consumer groups it created)."""
        view = cls(other.redis, other.config, clock=other.clock)
        view._version_checked = other._version_checked
        view._groups_ready |= other._groups_ready
        return view

    def _script(self, name: str) -> Script:
        return Script(self.redis, name)

    async def server_version(self) -> tuple[int, int, int]:
        info = await self.redis.info("server")
        return parse_version(str(info.get("redis_version", "0")))

    async def check_server(self) -> None:
        """Raise RedisTooOldError below Redis 6.2 (XAUTOCLAIM); warn when AOF is off."""
        version = await self.server_version()
        if version < MIN_VERSION:
            raise RedisTooOldError(
                f"Redis {'.'.join(map(str, version))} is too old: the job queue needs "
                f">= {'.'.join(map(str, MIN_VERSION))} (XAUTOCLAIM)"
            )
        persistence = await self.redis.info("persistence")
        if str(persistence.get("aof_enabled", "1")) != "1":
            log.warning(
                "Redis runs without AOF (appendonly no): queued jobs may be lost if it "
                "restarts; set `appendonly yes` for at-least-once delivery"
            )
        self._version_checked = True

    async def ensure_groups(self, *bots: str) -> None:
        """Create the jobs group (and the results group of each bot named) at id 0 with
        MKSTREAM, so entries added before the group existed are still read."""
        if not self._version_checked:
            await self.check_server()
        await self._create_group(self.keys.jobs, JOBS_GROUP)
        for bot in bots:
            await self._create_group(self.keys.results(bot), DELIVERY_GROUP)

    async def _create_group(self, stream: str, group: str) -> None:
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_ready.add(stream)

    async def get_job(self, job_id: str) -> Job | None:
        raw: Any = await self.redis.hgetall(self.keys.job(job_id))
        return job_or_none(raw)


def text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def job_or_none(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> Job | None:
    if not raw:
        return None
    try:
        return Job.from_fields(raw)
    except ValueError:
        log.warning("ignoring a malformed job record")
        return None
