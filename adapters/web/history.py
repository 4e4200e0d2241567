"""The web chat's message history per browser user, in Redis (so a reload shows it).

Two keys per user: a list of message ids (the order) and a hash id -> message JSON (so a
status message can be replaced in place). Both expire `ttl_s` after the last write and
hold at most `max_messages`; the oldest are dropped first. Messages hold text and URLs,
never image bytes.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

Message = dict[str, Any]

_UPSERT = """
local added = redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if added == 1 then redis.call('RPUSH', KEYS[1], ARGV[1]) end
local n = redis.call('LLEN', KEYS[1])
local limit = tonumber(ARGV[3])
if n > limit then
  local old = redis.call('LRANGE', KEYS[1], 0, n - limit - 1)
  redis.call('LTRIM', KEYS[1], n - limit, -1)
  for _, id in ipairs(old) do redis.call('HDEL', KEYS[2], id) end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return added
"""

_REPLACE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class ChatHistory:
    def __init__(
        self, redis: aioredis.Redis, prefix: str, ttl_s: int, max_messages: int = 200
    ) -> None:
        if ttl_s < 1 or max_messages < 1:
            raise ValueError("ttl_s and max_messages must be positive")
        self._redis = redis
        self._prefix = prefix
        self.ttl_s = ttl_s
        self.max_messages = max_messages

    def _keys(self, uid: str) -> tuple[str, str]:
        base = f"{self._prefix}:web:history:{uid}"
        return f"{base}:order", f"{base}:messages"

    async def add(self, uid: str, message: Message) -> None:
        """Append `message` (or replace the one with its id, keeping its place)."""
        order, messages = self._keys(uid)
        await self._redis.eval(
            _UPSERT,
            2,
            order,
            messages,
            str(message["id"]),
            json.dumps(message),
            self.max_messages,
            self.ttl_s,
        )

    async def replace(self, uid: str, message: Message) -> bool:
        """Replace a message that is still in the history; False if it is not."""
        _, messages = self._keys(uid)
        done = await self._redis.eval(
            _REPLACE, 1, messages, str(message["id"]), json.dumps(message)
        )
        return bool(done)

    async def get(self, uid: str, message_id: str) -> Message | None:
        _, messages = self._keys(uid)
        raw = await self._redis.hget(messages, message_id)
        return _load(raw) if raw is not None else None

    async def all(self, uid: str) -> list[Message]:
        order, messages = self._keys(uid)
        ids = await self._redis.lrange(order, 0, -1)
        if not ids:
            return []
        raws = await self._redis.hmget(messages, ids)
        return [_load(raw) for raw in raws if raw is not None]

    async def clear(self, uid: str) -> None:
        await self._redis.delete(*self._keys(uid))


def _load(raw: bytes | str) -> Message:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("history message is not an object")
    return data
