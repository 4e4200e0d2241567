"""Per-chat conversation state in Redis: which step a user is on in a chat.

Keyed by platform + chat + user (one user may talk to the bot in several chats, several
users share a group chat). Kept in Redis with a TTL, never in process memory, so a
restarted bot carries on where it was. Holds no images and no tokens.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from urllib.parse import quote

import redis.asyncio as aioredis

from bot.jobs import MAX_VARIANTS, MIN_VARIANTS, Owner


class Stage(enum.StrEnum):
    IDLE = "idle"
    AWAITING_SELFIE = "awaiting_selfie"
    """/avatar was sent; the next photo is the selfie."""
    CHOOSING_STYLE = "choosing_style"
    """A selfie is stored; the user picks a style."""
    AWAITING_VERIFY = "awaiting_verify"
    """/verify was sent; the next image is checked, not used as a selfie."""


@dataclass(frozen=True)
class Session:
    stage: Stage = Stage.IDLE
    variants: int = 1
    """How many variants the next job makes (the picker's selection)."""

    def to(self, stage: Stage) -> Session:
        return replace(self, stage=stage)


def owner_key(owner: Owner, *, with_chat: bool) -> str:
    """A Redis key fragment for an owner; each part quoted so ':' in ids cannot collide."""
    parts = [owner.platform, owner.user_id] + ([owner.chat_id] if with_chat else [])
    return ":".join(quote(part, safe="") for part in parts)


class SessionStore:
    """Reads and writes `Session`s under `{prefix}:conv:session:...` with a sliding TTL."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._redis = redis
        self._prefix = prefix
        self._ttl_s = ttl_s

    def key(self, owner: Owner) -> str:
        return f"{self._prefix}:conv:session:{owner_key(owner, with_chat=True)}"

    async def get(self, owner: Owner) -> Session:
        raw = await self._redis.hgetall(self.key(owner))
        if not raw:
            return Session()
        fields = {_text(k): _text(v) for k, v in raw.items()}
        try:
            stage = Stage(fields.get("stage", Stage.IDLE.value))
        except ValueError:
            stage = Stage.IDLE
        try:
            variants = int(fields.get("variants", "1"))
        except ValueError:
            variants = 1
        if not MIN_VARIANTS <= variants <= MAX_VARIANTS:
            variants = 1
        return Session(stage=stage, variants=variants)

    async def put(self, owner: Owner, session: Session) -> None:
        key = self.key(owner)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"stage": session.stage.value, "variants": session.variants})
            pipe.expire(key, self._ttl_s)
            await pipe.execute()

    async def set_stage(self, owner: Owner, stage: Stage) -> Session:
        session = (await self.get(owner)).to(stage)
        await self.put(owner, session)
        return session

    async def delete(self, owner: Owner) -> bool:
        return bool(await self._redis.delete(self.key(owner)))

    async def delete_user(self, owner: Owner) -> int:
        """Every session of this user, in every chat (for /forgetme)."""
        pattern = f"{self._prefix}:conv:session:{owner_key(owner, with_chat=False)}:*"
        keys = [key async for key in self._redis.scan_iter(match=_glob_escape(pattern))]
        return int(await self._redis.delete(*keys)) if keys else 0


def _glob_escape(pattern: str) -> str:
    """Escape glob metacharacters in everything but the trailing `*`."""
    body = pattern[:-1]
    for ch in "\\[]?*":
        body = body.replace(ch, "\\" + ch)
    return body + "*"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
