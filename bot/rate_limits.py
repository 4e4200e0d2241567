"""Rate limits: counters in Redis, each with a TTL, shared by every bot process.

A limit allows `count` events per `window_s` for one subject (a web chat identity, a
network address's tag). The window starts with the subject's first event and its counter
expires with it, so a counter never outlives its window (nothing leaks when a client
goes away). One short script counts and answers atomically:
`{prefix}:rate:{limit name}:{subject}`.

A refusal carries how long until the window ends (`RateLimited.retry_after_s`); the
adapter turns it into its platform's answer (the web chat: 429 with Retry-After).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.errors import AvatarbotError

# KEYS[1] the counter; ARGV[1] the window (s), ARGV[2] the events allowed in it.
# Returns 0 when allowed, else the seconds until the window ends.
_HIT = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
if n > tonumber(ARGV[2]) then return ttl end
return 0
"""


@dataclass(frozen=True)
class RateLimit:
    name: str
    count: int
    window_s: int

    def __post_init__(self) -> None:
        if self.count < 1 or self.window_s < 1:
            raise ValueError(f"rate limit {self.name}: count and window must be positive")


class RateLimited(AvatarbotError):
    """Over a rate limit; a later try (after `retry_after_s`) may pass."""

    def __init__(self, limit: RateLimit, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = max(1, retry_after_s)
        super().__init__(f"rate limit {limit.name}: {limit.count} per {limit.window_s}s")


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._hit = redis.register_script(_HIT)

    async def hit(self, limit: RateLimit, subject: str) -> None:
        """Count one event of `subject`; raises `RateLimited` when it is over `limit`.

        Redis errors (unreachable, full: `OutOfMemoryError`) propagate: the caller
        answers "busy" rather than let an uncounted event through."""
        key = f"{self._prefix}:rate:{limit.name}:{subject}"
        wait = int(await self._hit(keys=[key], args=[limit.window_s, limit.count]))
        if wait > 0:
            raise RateLimited(limit, wait)
