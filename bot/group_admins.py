"""Who administers a group chat, as the platform says, cached in Redis.

The core cannot ask a platform itself: an adapter registers a lookup for its platform
(Telegram: `getChatAdministrators`) and the core calls it when it needs to know, keeping
the answer for `ttl_s` in a set `{prefix}:access:chat_admins:<platform>:<chat id>` (the
user ids, plus an empty member so an empty answer is cached too). A lookup that fails
counts as "not an admin" and is not cached. A private chat (chat id = user id) has no
group admins.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from urllib.parse import quote

import redis.asyncio as aioredis

from bot.jobs import Owner

log = logging.getLogger(__name__)

ChatAdminLookup = Callable[[str], Awaitable[Collection[str]]]
"""An adapter's answer to "who are the admins of chat <id>?": their user ids."""

DEFAULT_TTL_S = 600


class GroupAdmins:
    def __init__(self, redis: aioredis.Redis, prefix: str, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis = redis
        self._prefix = prefix
        self.ttl_s = ttl_s
        self._lookups: dict[str, ChatAdminLookup] = {}

    def register(self, platform: str, lookup: ChatAdminLookup) -> None:
        self._lookups[platform] = lookup

    def key(self, platform: str, chat_id: str) -> str:
        chat = ":".join(quote(part, safe="") for part in (platform, chat_id))
        return f"{self._prefix}:access:chat_admins:{chat}"

    async def is_group_admin(self, owner: Owner) -> bool:
        """True when `owner` administers the group chat they wrote in."""
        lookup = self._lookups.get(owner.platform)
        if lookup is None or not owner.chat_id or owner.chat_id == owner.user_id:
            return False
        key = self.key(owner.platform, owner.chat_id)
        cached = {_text(m) for m in await self._redis.smembers(key)}
        if not cached:
            try:
                admins = {str(user_id) for user_id in await lookup(owner.chat_id)}
            except Exception as exc:  # a platform error: not an admin, ask again next time
                log.warning(
                    "chat admin lookup failed on %s: %s", owner.platform, type(exc).__name__
                )
                return False
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(key, "", *admins)
                pipe.expire(key, self.ttl_s)
                await pipe.execute()
            cached = admins
        return owner.user_id in cached - {""}

    async def forget(self, platform: str, chat_id: str) -> None:
        """Drop the cached list (an adapter that learns the admins changed)."""
        await self._redis.delete(self.key(platform, chat_id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
