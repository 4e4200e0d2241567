"""The conversation's copy of a user's current selfie, kept only for a short while.

Each job remembers which selfie it was made from (an id, not the image) so "more like
this" can tell whether that selfie is still the current one.

Selfie retention, the decision in one place:
- Intake keeps nothing. The queue stores its own copy of the normalised selfie with the
  job and deletes it as soon as the job ends (done, failed, cancelled or dead).
- The conversation keeps the user's *current* normalised selfie (one per user, across
  chats) in Redis with a TTL of `selfie_ttl_s`, so "more like this" and "another style"
  work without a new upload. A new selfie replaces the old one.
- "Forget my selfie" deletes it at once; /forgetme deletes it together with the user's
  sessions, jobs and results (through the queue).
- After the TTL the buttons answer that the selfie is gone and ask for a new one.
- Nothing here logs image bytes, and nothing stores tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.jobs import Owner
from bot.sessions import owner_key


@dataclass(frozen=True)
class StoredSelfie:
    selfie_id: str
    jpeg: bytes

    def __repr__(self) -> str:  # never put image bytes in a log line
        return f"StoredSelfie({self.selfie_id}, {len(self.jpeg)} bytes)"


class SelfieStore:
    """`{prefix}:conv:selfie:<platform>:<user>` -> {id, jpeg}; `...:jobselfie:<job>` -> id."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._redis = redis
        self._prefix = prefix
        self.ttl_s = ttl_s

    def key(self, owner: Owner) -> str:
        return f"{self._prefix}:conv:selfie:{owner_key(owner, with_chat=False)}"

    def _link_key(self, job_id: str) -> str:
        return f"{self._prefix}:conv:jobselfie:{job_id}"

    async def put(self, owner: Owner, jpeg: bytes) -> StoredSelfie:
        """Store `jpeg` as the user's current selfie (replacing any other) for `ttl_s`."""
        selfie_id = hashlib.blake2b(jpeg, digest_size=8).hexdigest()
        key = self.key(owner)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"id": selfie_id, "jpeg": jpeg})
            pipe.expire(key, self.ttl_s)
            await pipe.execute()
        return StoredSelfie(selfie_id, jpeg)

    async def get(self, owner: Owner) -> StoredSelfie | None:
        raw = await self._redis.hmget(self.key(owner), ["id", "jpeg"])
        selfie_id, jpeg = raw[0], raw[1]
        if selfie_id is None or jpeg is None:
            return None
        return StoredSelfie(_text(selfie_id), jpeg if isinstance(jpeg, bytes) else jpeg.encode())

    async def ttl(self, owner: Owner) -> int | None:
        """Seconds left before the selfie is deleted, None when there is none."""
        left = int(await self._redis.ttl(self.key(owner)))
        return left if left >= 0 else None

    async def delete(self, owner: Owner, job_ids: Sequence[str] = ()) -> bool:
        """Delete the user's selfie (and the links of `job_ids` to it); True if one existed."""
        links = [self._link_key(job_id) for job_id in job_ids]
        if links:
            await self._redis.delete(*links)
        return bool(await self._redis.delete(self.key(owner)))

    async def link(self, job_id: str, selfie_id: str) -> None:
        """Remember that `job_id` was made from `selfie_id` (for as long as a selfie lives)."""
        await self._redis.set(self._link_key(job_id), selfie_id, ex=self.ttl_s)

    async def linked(self, job_id: str) -> str | None:
        raw = await self._redis.get(self._link_key(job_id))
        return _text(raw) if raw is not None else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
