"""The operator's side of the queue: how it stands (`avatarbot queue`, health checks,
metrics) and the dead letters (`avatarbot dead-letters`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from bot.jobs import Job
from bot.queue import upkeep
from bot.queue.client import Clock, QueueClient, text
from bot.queue.config import QueueConfig
from bot.queue.keys import JOBS_GROUP

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    job_id: str
    deliveries: int
    dead_at: float
    job: Job | None

    def render(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.dead_at))
        style = self.job.style_id if self.job else "?"
        retryable = "" if self.job else " (job expired)"
        return (
            f"{self.entry_id}  job {self.job_id}  style {style}  "
            f"{self.deliveries} deliveries  dead since {when}Z{retryable}"
        )


@dataclass(frozen=True)
class QueueStats:
    depth: int
    """Jobs waiting for a worker."""
    running: int
    """Jobs handed to a worker and not yet finished."""
    pending: Mapping[str, int]
    """Running jobs per worker consumer."""
    oldest_age_s: float | None
    """Age of the oldest queued or running job."""
    dead_letters: int
    live_workers: int
    avg_job_s: float | None

    def render(self) -> str:
        lines = [
            f"queued:       {self.depth}",
            f"running:      {self.running}",
            f"oldest job:   {'-' if self.oldest_age_s is None else f'{self.oldest_age_s:.1f}s'}",
            f"live workers: {self.live_workers}",
            f"avg job:      {'-' if self.avg_job_s is None else f'{self.avg_job_s:.2f}s'}",
            f"dead letters: {self.dead_letters}",
        ]
        lines += [f"  {name}: {count} pending" for name, count in sorted(self.pending.items())]
        return "\n".join(lines)


class QueueAdmin(QueueClient):
    """What an operator (and a health check or metrics scrape) asks of the queue."""

    def __init__(
        self, redis: aioredis.Redis, config: QueueConfig, *, clock: Clock = time.time
    ) -> None:
        super().__init__(redis, config, clock=clock)
        self._retry = self._script("retry_dead")
        self._purge = self._script("purge_dead")

    async def stats(self) -> QueueStats:
        now = self.clock()
        keys = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(keys.jobs)
            pipe.xpending(keys.jobs, JOBS_GROUP)
            pipe.xrange(keys.jobs, "-", "+", count=1)
            pipe.xlen(keys.dead)
            pipe.zcount(keys.workers, now, "+inf")
            pipe.hget(keys.stats, "avg_job_s")
            length, pending, first, dead, workers, avg = await pipe.execute()
        running = int(pending["pending"])
        per_consumer = {text(c["name"]): int(c["pending"]) for c in pending["consumers"] or []}
        oldest = None
        if first:
            oldest = max(0.0, now - int(text(first[0][0]).split("-")[0]) / 1000)
        return QueueStats(
            depth=max(0, int(length) - running),
            running=running,
            pending=per_consumer,
            oldest_age_s=oldest,
            dead_letters=int(dead),
            live_workers=int(workers),
            avg_job_s=float(avg) if avg is not None else None,
        )

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        entries: Any = await self.redis.xrange(self.keys.dead, "-", "+", count=limit)
        out = []
        for eid, fields in entries:
            job_id = text(fields[b"job_id"])
            out.append(
                DeadLetter(
                    entry_id=text(eid),
                    job_id=job_id,
                    deliveries=int(fields.get(b"deliveries", b"0")),
                    dead_at=float(fields.get(b"dead_at", b"0")),
                    job=await self.get_job(job_id),
                )
            )
        return out

    async def retry_dead(self, entry_id: str | None = None) -> int:
        """Requeue one dead letter (or all, with None). A job whose hash or selfie expired
        cannot be retried; its dead letter is dropped. Returns how many were requeued."""
        keys = self.keys
        if entry_id is None:
            everything: Any = await self.redis.xrange(keys.dead, "-", "+")
            ids = [text(e[0]) for e in everything]
        else:
            ids = [entry_id]
        if not ids:
            return 0
        requeued, dropped = await self._retry(
            keys=[keys.dead, keys.jobs, keys.active_jobs],
            args=[keys.prefix, repr(self.clock()), self.config.job_ttl_s, *ids],
        )
        if dropped:
            log.warning("%d dead letter(s) could not be retried (job or selfie expired)", dropped)
        return int(requeued)

    async def purge_dead(self) -> int:
        """Delete every dead letter (and the selfies kept for retrying them)."""
        return int(await self._purge(keys=[self.keys.dead], args=[self.keys.prefix]))

    async def maintain(self) -> tuple[int, int, int, int]:
        """Run the upkeep now (`bot.queue.upkeep.maintain`; workers run it on a timer)."""
        return await upkeep.maintain(self)

    async def sweep_orphaned_selfies(self) -> int:
        """Delete the selfies of jobs that ended or vanished (part of the upkeep)."""
        return await upkeep.sweep_orphaned_selfies(self)
