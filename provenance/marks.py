"""Which watermark mark ids this instance issued: turns a watermark-only match into a story.

When a chat app re-encodes an avatar, its C2PA manifest and XMP are gone but the watermark's
mark id survives; looking that id up here says "made by this instance on <date> in style
<style>". Only the style and the time are stored: nothing about the user or the selfie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis

from bot.errors import AvatarbotError

DEFAULT_TTL_S = 365 * 24 * 3600
_MARK_ID = re.compile(r"[0-9a-f]{12}")


class MarkIdCollisionError(AvatarbotError):
    """The mark id is already recorded (a 48-bit collision): draw a new id and re-label."""

    def __init__(self, mark_id: str) -> None:
        super().__init__(f"mark id {mark_id} is already recorded")
        self.mark_id = mark_id


@dataclass(frozen=True)
class MarkRecord:
    mark_id: str
    style_id: str
    created_at: datetime


class MarkRegistry:
    def __init__(
        self, client: aioredis.Redis, key_prefix: str, *, ttl_s: int = DEFAULT_TTL_S
    ) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._ttl_s = ttl_s

    def _key(self, mark_id: str) -> str:
        if not _MARK_ID.fullmatch(mark_id):
            raise ValueError("a mark id is 12 lowercase hex digits")
        return f"{self._prefix}:mark:{mark_id}"

    async def record(self, mark_id: str, style_id: str, created_at: datetime) -> None:
        """Remember a mark id; raises `MarkIdCollisionError` if it is already taken."""
        if created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        value = f"{created_at.astimezone(UTC).isoformat()}|{style_id}"
        stored = await self._redis.set(self._key(mark_id), value, nx=True, ex=self._ttl_s)
        if not stored:
            raise MarkIdCollisionError(mark_id)

    async def lookup(self, mark_id: str) -> MarkRecord | None:
        raw = await self._redis.get(self._key(mark_id))
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        created, _, style_id = text.partition("|")
        return MarkRecord(mark_id, style_id, datetime.fromisoformat(created))
