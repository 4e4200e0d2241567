"""Which parts of a job's delivery a chat already has, so each reaches it exactly once.

An adapter sends an outcome in parts (an album, then a message with the buttons; one
Discord message per reply; a web chat status edit, then each reply). A part that fails
raises, and the `DeliveryPump` retries the whole delivery later, perhaps after a
restart. `SentParts.send_once` records each part in Redis as soon as it went through,
so a retry sends only the parts the chat does not have yet, whichever way it sends them
(a Discord followup, then a DM). Part names are the adapter's, stable for a given list
of replies (e.g. "0", "1.0").

Keys: `{prefix}:sent:{job_id}`, a set of part names, with the job's TTL. /forgetme
deletes them with the user's other data (`forget` is a `bot.conversation.ForgetHook`).
A part that was sent but not recorded (the process died in between, or Redis was gone)
is sent again: at least once, and exactly once in every other case.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.jobs import Owner


@dataclass(frozen=True)
class Part:
    """One call that sends one part of a delivery, under a name stable across retries."""

    name: str
    send: Callable[[], Awaitable[None]]


class SentParts:
    """The ledger of delivered parts, in Redis, per job."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._redis = redis
        self._prefix = prefix
        self._ttl_s = ttl_s

    def key(self, job_id: str) -> str:
        return f"{self._prefix}:sent:{job_id}"

    async def send_once(self, job_id: str, parts: Iterable[Part]) -> int:
        """Send, in order, each part the chat does not have yet, recording each once sent.
        An exception from a part stops there (the parts before it stay recorded). Returns
        how many parts were sent by this call."""
        done = await self.sent(job_id)
        count = 0
        for part in parts:
            if part.name in done:
                continue
            await part.send()
            await self.mark(job_id, part.name)
            count += 1
        return count

    async def sent(self, job_id: str) -> set[str]:
        members = await self._redis.smembers(self.key(job_id))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    async def mark(self, job_id: str, part: str) -> None:
        key = self.key(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, part)
            pipe.expire(key, self._ttl_s)
            await pipe.execute()

    async def forget(self, owner: Owner, job_ids: Sequence[str]) -> int:
        """/forgetme: drop the records of the user's jobs."""
        keys = [self.key(job_id) for job_id in job_ids]
        return int(await self._redis.delete(*keys)) if keys else 0
