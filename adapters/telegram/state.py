"""What the Telegram adapter remembers between updates and across restarts (in Redis).

Nothing here is a user's content: file ids of the style previews this bot uploaded,
which chats have seen the preview album, the queue message of each waiting job, and
results that could not be delivered (which parts of a result were sent is the core's
`bot.sent_parts`). Every per-chat or per-job key
has a TTL; the preview file ids are per bot token (Telegram file ids are per bot) and
per preview content.

Keys: `{prefix}:tg:{bot_id}:...`. The bot id is the public numeric half of the token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis

#: How long a chat counts as having seen the preview album.
PREVIEWS_SHOWN_TTL_S = 30 * 24 * 3600
#: The photos of one incoming album arrive within seconds of each other.
ALBUM_TTL_S = 300


@dataclass(frozen=True)
class MessageRef:
    chat_id: int
    message_id: int


@dataclass(frozen=True)
class Undeliverable:
    job_id: str
    chat_id: int
    reason: str
    at: float


class TelegramState:
    def __init__(self, redis: aioredis.Redis, prefix: str, bot_id: str, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._redis = redis
        self._base = f"{prefix}:tg:{bot_id}"
        self._ttl_s = ttl_s

    async def forget(self, chat_id: int, job_ids: Iterable[str]) -> int:
        """Delete what this adapter kept about a user: their jobs' message references and
        delivery records, and (for their private chat) the preview and album claims."""
        keys = [
            f"{self._base}:{kind}:{job_id}"
            for job_id in job_ids
            for kind in ("status", "outcome", "undeliverable")
        ]
        keys.append(f"{self._base}:shown:{chat_id}")
        keys += [k async for k in self._redis.scan_iter(match=f"{self._base}:album:{chat_id}:*")]
        return int(await self._redis.delete(*keys)) if keys else 0

    # --- style previews ------------------------------------------------------------
    async def preview_file_ids(self, digests: list[str]) -> dict[str, str]:
        """Cached Telegram file ids of preview images, by content digest."""
        if not digests:
            return {}
        values = await self._redis.hmget(f"{self._base}:previews", digests)
        return {d: _text(v) for d, v in zip(digests, values, strict=True) if v is not None}

    async def save_preview_file_ids(self, file_ids: dict[str, str]) -> None:
        if file_ids:
            await self._redis.hset(
                f"{self._base}:previews", mapping={d: f for d, f in file_ids.items()}
            )

    async def forget_preview_file_ids(self) -> None:
        await self._redis.delete(f"{self._base}:previews")

    async def claim_preview_album(self, chat_id: int) -> bool:
        """True once per chat (per TTL): the caller sends the album now."""
        key = f"{self._base}:shown:{chat_id}"
        return bool(await self._redis.set(key, "1", nx=True, ex=PREVIEWS_SHOWN_TTL_S))

    async def unclaim_preview_album(self, chat_id: int) -> None:
        """The album could not be sent; let the next picker try again."""
        await self._redis.delete(f"{self._base}:shown:{chat_id}")

    # --- incoming albums ---------------------------------------------------------------
    async def claim_album(self, chat_id: int, media_group_id: str) -> bool:
        """True for the first photo of an incoming album (each photo arrives alone)."""
        key = f"{self._base}:album:{chat_id}:{media_group_id}"
        return bool(await self._redis.set(key, "1", nx=True, ex=ALBUM_TTL_S))

    # --- the queue message of a job --------------------------------------------------
    async def status_message(self, job_id: str) -> MessageRef | None:
        raw = await self._redis.get(f"{self._base}:status:{job_id}")
        if raw is None:
            return None
        data = json.loads(raw)
        return MessageRef(int(data["chat"]), int(data["message"]))

    async def set_status_message(self, job_id: str, ref: MessageRef) -> None:
        value = json.dumps({"chat": ref.chat_id, "message": ref.message_id})
        await self._redis.set(f"{self._base}:status:{job_id}", value, ex=self._ttl_s)

    async def pop_status_message(self, job_id: str) -> MessageRef | None:
        raw = await self._redis.getdel(f"{self._base}:status:{job_id}")
        if raw is None:
            return None
        data = json.loads(raw)
        return MessageRef(int(data["chat"]), int(data["message"]))

    # --- delivery progress -------------------------------------------------------------
    async def mark_outcome_started(self, job_id: str) -> None:
        """The job's outcome is being sent: its queue message must go, whenever shown."""
        await self._redis.set(f"{self._base}:outcome:{job_id}", "1", ex=self._ttl_s)

    async def outcome_started(self, job_id: str) -> bool:
        return bool(await self._redis.exists(f"{self._base}:outcome:{job_id}"))

    async def record_undeliverable(self, job_id: str, chat_id: int, reason: str) -> None:
        """Keep a record that this job's result never reached its chat, and why."""
        value = json.dumps({"chat": chat_id, "reason": reason, "at": time.time()})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{self._base}:undeliverable:{job_id}", value, ex=self._ttl_s)
            pipe.incr(f"{self._base}:undeliverable_total")
            await pipe.execute()

    async def undeliverable(self, job_id: str) -> Undeliverable | None:
        raw = await self._redis.get(f"{self._base}:undeliverable:{job_id}")
        if raw is None:
            return None
        data = json.loads(raw)
        return Undeliverable(job_id, int(data["chat"]), str(data["reason"]), float(data["at"]))

    async def undeliverable_total(self) -> int:
        raw = await self._redis.get(f"{self._base}:undeliverable_total")
        return int(raw) if raw is not None else 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
