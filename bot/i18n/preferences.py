"""Each user's /language choice, in Redis.

One key per user and platform, `{prefix}:lang:{platform}:{user_id}`, holding a locale.
It lives `ttl_s` after it was last read or set, and /forgetme deletes it. A user with no
choice gets what their app asks for (`bot.i18n.locales.negotiate`).
"""

from __future__ import annotations

from urllib.parse import quote

import redis.asyncio as aioredis

from bot.jobs import Owner

#: A choice not used for this long is dropped (the app's language applies again).
PREFERENCE_TTL_S = 365 * 24 * 3600


class LanguagePreferences:
    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_s: int = PREFERENCE_TTL_S) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._redis = redis
        self._prefix = prefix
        self.ttl_s = ttl_s

    def key(self, user: Owner) -> str:
        parts = (quote(user.platform, safe=""), quote(user.user_id, safe=""))
        return f"{self._prefix}:lang:{parts[0]}:{parts[1]}"

    async def get(self, user: Owner) -> str | None:
        """The user's chosen locale (its lifetime starts again), or None."""
        raw = await self._redis.getex(self.key(user), ex=self.ttl_s)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def set(self, user: Owner, locale: str) -> None:
        await self._redis.set(self.key(user), locale, ex=self.ttl_s)

    async def clear(self, user: Owner) -> bool:
        """Forget the user's choice; True if there was one."""
        return bool(await self._redis.delete(self.key(user)))
