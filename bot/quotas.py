"""Daily quotas set live by an admin: one user's, or the default for everyone.

A hash `{prefix}:access:quota` (no TTL): field `default` -> N replaces
`AVATARBOT_DAILY_QUOTA`; field `platform:user_id` -> N is that user's own. The queue
counts what was used (`bot.queue`, per UTC day); this only says how much is allowed.
A quota of 0 keeps a user from making avatars without banning them (a ban also keeps them
out of everything else).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

DEFAULT_FIELD = "default"
MAX_QUOTA = 100_000


@dataclass(frozen=True)
class Quota:
    limit: int
    own: bool
    """True when the user has a quota of their own (else the default applies)."""


class QuotaLimits:
    def __init__(self, redis: aioredis.Redis, prefix: str, default: int) -> None:
        self._redis = redis
        self.key = f"{prefix}:access:quota"
        self._settings_default = default

    async def for_user(self, user: str) -> Quota:
        """The daily quota of `user` (`platform:user_id`)."""
        own, default = await self._redis.hmget(self.key, [user, DEFAULT_FIELD])
        if own is not None:
            return Quota(int(own), own=True)
        return Quota(self._default(default), own=False)

    async def default(self) -> int:
        return self._default(await self._redis.hget(self.key, DEFAULT_FIELD))

    async def set_user(self, user: str, limit: int | None) -> None:
        """Give `user` a quota of their own (None: back to the default)."""
        if limit is None:
            await self._redis.hdel(self.key, user)
        else:
            await self._redis.hset(self.key, user, _checked(limit))

    async def set_default(self, limit: int | None) -> None:
        """Change the default (None: back to `AVATARBOT_DAILY_QUOTA`)."""
        if limit is None:
            await self._redis.hdel(self.key, DEFAULT_FIELD)
        else:
            await self._redis.hset(self.key, DEFAULT_FIELD, _checked(limit))

    def _default(self, raw: bytes | str | None) -> int:
        return self._settings_default if raw is None else int(raw)


def _checked(limit: int) -> int:
    if not 0 <= limit <= MAX_QUOTA:
        raise ValueError(f"quota must be 0..{MAX_QUOTA}, got {limit}")
    return limit
