"""Kill-to-answer times for the fault suite (bench/faults.py): for each worker SIGKILLed,
the jobs it held at that moment, and how long after the kill each was finished by another
worker (its outcome published) and answered (marked delivered by a bot, after sending).

The worker killed is one holding jobs, none of them taken over from an earlier death when
there is such a worker: each kill's recovery is measured on its own (a job whose new
holder is killed too waits for two recoveries, one after the other). Poison jobs are left
out: their answer is the dead letter, after a death per delivery."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.queue import QueueKeys
from bot.queue.keys import JOBS_GROUP

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
POLL_S = 0.02
FINAL = (b"done", b"failed", b"dead", b"cancelled")


@dataclass
class Recoveries:
    """What the kills cost the users whose jobs the killed workers held."""

    kills: int = 0
    held: int = 0
    """Jobs pending in the killed workers' names at the moment of each kill."""
    finished_s: list[float] = field(default_factory=list)
    """Seconds from a kill to the job's outcome, one per held job finished."""
    answered_s: list[float] = field(default_factory=list)
    """Seconds from a kill to the answer, one per held job answered."""

    @property
    def unanswered(self) -> int:
        return self.held - len(self.answered_s)

    def p50(self) -> float | None:
        return statistics.median(self.answered_s) if self.answered_s else None

    def max(self) -> float | None:
        return max(self.answered_s) if self.answered_s else None

    def render(self) -> str:
        if not self.answered_s:
            return f"{self.held} job(s) held by {self.kills} killed worker(s); none answered"
        return (
            f"{self.held} job(s) held by {self.kills} killed worker(s): answered after "
            f"p50 {self.p50():.2f}s, max {self.max():.2f}s (outcome ready: p50 "
            f"{_seconds(_median(self.finished_s))}, max {_seconds(_max(self.finished_s))})"
            + (f"; {self.unanswered} not answered" if self.unanswered else "")
        )


def pid_of(consumer: str) -> int | None:
    """The process id in a worker's consumer name (`worker-<host>-<pid>-<tag>`)."""
    parts = consumer.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class RecoveryWatch:
    """Finds what a worker holds before it is killed and times each of its jobs' answers."""

    def __init__(self, redis: aioredis.Redis, keys: QueueKeys, timeout_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.timeout_s = timeout_s
        self.recoveries = Recoveries()
        self._tasks: list[asyncio.Task[None]] = []

    async def holders(self) -> tuple[dict[int, str], set[int]]:
        """(pid -> consumer name of the workers holding jobs now, the pids among them
        holding only first deliveries)."""
        out: dict[int, str] = {}
        fresh: set[int] = set()
        with contextlib.suppress(*_REDIS_DOWN):
            rows = await self.redis.xpending_range(self.keys.jobs, JOBS_GROUP, "-", "+", 1000)
            taken_over = set()
            for row in rows:
                name = _text(row["consumer"])
                pid = pid_of(name)
                if pid is not None:
                    out[pid] = name
                    if int(row["times_delivered"]) > 1:
                        taken_over.add(pid)
            fresh = set(out) - taken_over
        return out, fresh

    async def killed(self, consumer: str, killed_at: float, poison: set[str]) -> None:
        """`consumer`'s worker was killed at `killed_at` (monotonic): time its jobs, but
        for the `poison` ones (their answer is a dead letter, after as many deaths as
        `AVATARBOT_MAX_DELIVERIES` allows)."""
        self.recoveries.kills += 1
        job_ids = [j for j in await self._held(consumer) if j not in poison]
        self.recoveries.held += len(job_ids)
        for job_id in job_ids:
            self._tasks.append(asyncio.create_task(self._time(job_id, killed_at)))

    async def finish(self) -> Recoveries:
        """Wait for every timed job's answer (or its timeout)."""
        await asyncio.gather(*self._tasks)
        return self.recoveries

    async def _held(self, consumer: str) -> list[str]:
        # Nobody takes a dead worker's entries before its liveness record lapses (seconds):
        # read right after the kill, its pending list is what it held.
        rows = await self.redis.xpending_range(
            self.keys.jobs, JOBS_GROUP, "-", "+", 1000, consumername=consumer
        )
        job_ids = []
        for row in rows:
            entries: Any = await self.redis.xrange(
                self.keys.jobs, row["message_id"], row["message_id"]
            )
            if entries and b"job_id" in entries[0][1]:
                job_ids.append(entries[0][1][b"job_id"].decode())
        return job_ids

    async def _time(self, job_id: str, killed_at: float) -> None:
        deadline = killed_at + self.timeout_s
        finished = False
        while time.monotonic() < deadline:
            with contextlib.suppress(*_REDIS_DOWN):
                status, delivered = await self.redis.hmget(
                    self.keys.job(job_id), ["status", "delivered"]
                )
                if status in FINAL and not finished:
                    finished = True
                    self.recoveries.finished_s.append(time.monotonic() - killed_at)
                if delivered == b"1":
                    self.recoveries.answered_s.append(time.monotonic() - killed_at)
                    return
            await asyncio.sleep(POLL_S)


def compare(runs: list[tuple[str, Recoveries]]) -> str:
    """Kill-to-answer times of several runs of one scenario, side by side."""
    lines = [
        "kill to answer (and to the outcome ready), jobs held by a SIGKILLed worker:",
        f"{'':<34}{'kills':>6}{'jobs':>6}{'p50':>9}{'max':>9}{'ready p50':>11}{'ready max':>11}",
    ]
    for name, r in runs:
        lines.append(
            f"{name:<34}{r.kills:>6}{r.held:>6}{_seconds(r.p50()):>9}{_seconds(r.max()):>9}"
            f"{_seconds(_median(r.finished_s)):>11}{_seconds(_max(r.finished_s)):>11}"
        )
    return "\n".join(lines)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _max(values: list[float]) -> float | None:
    return max(values) if values else None


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
