"""Per-chat settings a group's own admins control: the bot off in their group, and a lower
limit on variants per avatar.

A hash per chat, `{prefix}:access:chat:<platform>:<chat id>` (each part URL-quoted), with
`enabled` ('0' when the bot is off there) and `max_variants`; deleted when both are back
to their defaults, so only groups that changed something have a key. Who may change them
is `bot.group_admins.GroupAdmins`' business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.jobs import MAX_VARIANTS, MIN_VARIANTS, Owner


@dataclass(frozen=True)
class ChatConfig:
    enabled: bool = True
    max_variants: int | None = None
    """None: the bot's own limit (`bot.jobs.MAX_VARIANTS`)."""

    def cap(self, variants: int) -> int:
        """`variants` within this chat's limit."""
        return variants if self.max_variants is None else min(variants, self.max_variants)


class ChatSettings:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def key(self, owner: Owner) -> str:
        chat = ":".join(quote(part, safe="") for part in (owner.platform, owner.chat_id))
        return f"{self._prefix}:access:chat:{chat}"

    async def get(self, owner: Owner) -> ChatConfig:
        """The settings of the chat `owner` wrote in (defaults when none were changed)."""
        return self.parse(await self._redis.hgetall(self.key(owner)))

    def read(self, pipe: Pipeline, owner: Owner) -> None:
        """Queue `get`'s one read on `pipe` (to share a round trip); see `parse`."""
        pipe.hgetall(self.key(owner))

    @staticmethod
    def parse(raw: Mapping[bytes | str, bytes | str] | None) -> ChatConfig:
        if not raw:
            return ChatConfig()
        fields = {_text(k): _text(v) for k, v in raw.items()}
        limit = fields.get("max_variants")
        return ChatConfig(
            enabled=fields.get("enabled", "1") != "0",
            max_variants=int(limit) if limit else None,
        )

    async def set_enabled(self, owner: Owner, enabled: bool) -> ChatConfig:
        current = await self.get(owner)
        return await self._put(owner, ChatConfig(enabled, current.max_variants))

    async def set_max_variants(self, owner: Owner, limit: int | None) -> ChatConfig:
        if limit is not None and not MIN_VARIANTS <= limit <= MAX_VARIANTS:
            raise ValueError(f"max_variants must be {MIN_VARIANTS}..{MAX_VARIANTS}, got {limit}")
        current = await self.get(owner)
        return await self._put(owner, ChatConfig(current.enabled, limit))

    async def _put(self, owner: Owner, config: ChatConfig) -> ChatConfig:
        key = self.key(owner)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if not config.enabled:
                pipe.hset(key, "enabled", "0")
            if config.max_variants is not None:
                pipe.hset(key, "max_variants", str(config.max_variants))
            await pipe.execute()
        return config


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
