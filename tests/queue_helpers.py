"""Helpers for the queue and worker tests: the whole queue on one client, a movable clock,
requests, outcome collection."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from bot.jobs import JobRequest, JobResult, Owner, ResultImage, Route
from bot.queue import ClaimedJob, Delivery, DeliveryQueue, JobProducer, QueueAdmin, WorkerQueue

BOT = "testbot"


class JobQueue(JobProducer, WorkerQueue, DeliveryQueue, QueueAdmin):
    """Every audience's view of the queue on one client, for tests that play every part
    (a bot enqueueing, a worker claiming, a bot delivering, an operator looking) and pass
    it wherever one view is wanted. Production code holds only the view it needs."""

    def job_key(self, job_id: str) -> str:
        return self.keys.job(job_id)

    def selfie_key(self, job_id: str) -> str:
        return self.keys.selfie(job_id)

    def result_key(self, job_id: str) -> str:
        return self.keys.result(job_id)

    def results_stream(self, bot: str) -> str:
        return self.keys.results(bot)

    def quota_key(self, owner: Owner, now: float) -> str:
        return self.keys.quota(owner, now)


class MovableClock:
    """Real time plus an offset tests can advance (quota days, ages)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def owner(n: int | str) -> Owner:
    return Owner(platform="test", user_id=f"user{n}", chat_id=f"chat{n}")


def request(n: int | str, style: str = "sketch", variants: int = 1) -> JobRequest:
    return JobRequest(
        owner=owner(n),
        route=Route(bot=BOT, data={"msg": str(n)}),
        style_id=style,
        variants=variants,
    )


def result_for(claimed: ClaimedJob) -> JobResult:
    return JobResult(
        job_id=claimed.job.id,
        style_id=claimed.job.style_id,
        images=tuple(
            ResultImage(
                data=b"\x89PNG" + claimed.job.id.encode(),
                mime="image/png",
                width=8,
                height=8,
                seed=s,
            )
            for s in claimed.job.seeds
        ),
        backend="test",
        elapsed_s=0.01,
    )


async def collect(
    queue: JobQueue, n: int, *, consumer: str = "bot-1", timeout_s: float = 20.0
) -> list[Delivery]:
    """Read outcomes until `n` were delivered (mark_delivered True) or the time is up."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        for delivery in await queue.read_outcomes(BOT, consumer, 10, 100):
            if await queue.mark_delivered(BOT, delivery):
                got.append(delivery)
    return got


async def wait_for(predicate_coro: object, timeout_s: float = 10.0) -> None:
    """Poll an async predicate (a zero-argument coroutine function) until true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate_coro():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def keys_under(client: aioredis.Redis, prefix: str) -> dict[str, str]:
    """Every key under the prefix with its type."""
    out: dict[str, str] = {}
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        out[key.decode()] = (await client.type(key)).decode()
    return out
