"""The access policy: who may use the bot, read from Redis on every request, so an admin's
change applies at once in every bot process (no restart).

Keys, under `{prefix}:access:` (operator settings: no TTL):
- `mode` — `open` or `restricted`; absent: `AVATARBOT_ACCESS_MODE` (default open).
- `allow` — set of scopes (see `bot.scopes`) that may use the bot in restricted mode.
- `deny` — set of scopes refused in every mode. A ban is a user here.
- `pause` — hash {message, by, since} while new avatar requests are paused.

A request's decision (`AccessPolicy.decide`, one round trip):
1. any of its scopes is denied: DENIED — the deny list always wins, even over an admin;
2. restricted mode, the user is not an admin and none of its scopes is allowed:
   NOT_ALLOWED;
3. otherwise allowed. A pause is reported alongside (`Decision.pause`); the gate applies it
   to new avatar requests only (the queue keeps draining) and lets admins through.

Admins are named in the settings (`AVATARBOT_ADMINS=telegram:42,discord:123`), never in
Redis: nobody can make themselves an admin through the bot.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.jobs import Owner
from bot.scopes import scopes_of

READS = 4
"""Replies `AccessPolicy.read` queues."""


class AccessMode(enum.StrEnum):
    OPEN = "open"
    """Everyone not denied."""
    RESTRICTED = "restricted"
    """Only admins and requests matching an allowed scope (and not a denied one)."""


class Refusal(enum.StrEnum):
    """Why a request was refused by policy (recorded in the audit trail)."""

    DENIED = "denied"
    NOT_ALLOWED = "not_allowed"
    PAUSED = "paused"
    CHAT_OFF = "chat_off"
    NO_QUOTA = "no_quota"


@dataclass(frozen=True)
class Pause:
    message: str
    """The operator's message to users ('' for none)."""
    by: str
    since: float


@dataclass(frozen=True)
class Decision:
    refusal: Refusal | None
    """None: the request may go on (subject to `pause` for new avatars)."""
    pause: Pause | None
    admin: bool


class AccessPolicy:
    """The allow and deny lists, the mode and the pause switch, in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        admins: Collection[str] = frozenset(),
        default_mode: AccessMode = AccessMode.OPEN,
    ) -> None:
        self.redis = redis
        self.admins = frozenset(admins)
        self.default_mode = default_mode
        base = f"{prefix}:access:"
        self.mode_key = base + "mode"
        self.allow_key = base + "allow"
        self.deny_key = base + "deny"
        self.pause_key = base + "pause"

    def is_admin(self, owner: Owner) -> bool:
        return owner.key in self.admins

    async def decide(self, owner: Owner) -> Decision:
        async with self.redis.pipeline(transaction=False) as pipe:
            self.read(pipe, owner)
            return self.decision(owner, await pipe.execute())

    def read(self, pipe: Pipeline, owner: Owner) -> None:
        """Queue the reads a decision needs (`READS` replies) on `pipe`, so a caller can
        add its own to the same round trip; `decision` turns the replies into one."""
        scopes = scopes_of(owner)
        pipe.smismember(self.deny_key, scopes)
        pipe.get(self.mode_key)
        pipe.smismember(self.allow_key, scopes)
        pipe.hgetall(self.pause_key)

    def decision(self, owner: Owner, replies: Sequence[Any]) -> Decision:
        denied, mode_raw, allowed, pause_raw = replies[:READS]
        admin = self.is_admin(owner)
        pause = _pause(pause_raw)
        if any(int(hit) for hit in denied):
            return Decision(Refusal.DENIED, pause, admin)
        mode = self._mode(mode_raw)
        if mode is AccessMode.RESTRICTED and not admin and not any(int(hit) for hit in allowed):
            return Decision(Refusal.NOT_ALLOWED, pause, admin)
        return Decision(None, pause, admin)

    # --- mode ----------------------------------------------------------------------

    async def mode(self) -> AccessMode:
        return self._mode(await self.redis.get(self.mode_key))

    async def set_mode(self, mode: AccessMode) -> None:
        await self.redis.set(self.mode_key, mode.value)

    def _mode(self, raw: bytes | str | None) -> AccessMode:
        if raw is None:
            return self.default_mode
        try:
            return AccessMode(_text(raw))
        except ValueError:
            return self.default_mode

    # --- lists -----------------------------------------------------------------------

    async def allowed(self) -> list[str]:
        return sorted(_text(m) for m in await self.redis.smembers(self.allow_key))

    async def denied(self) -> list[str]:
        return sorted(_text(m) for m in await self.redis.smembers(self.deny_key))

    async def allow(self, scope: str) -> bool:
        """Add `scope` to the allow list; False when it was there already."""
        return bool(await self.redis.sadd(self.allow_key, scope))

    async def unallow(self, scope: str) -> bool:
        return bool(await self.redis.srem(self.allow_key, scope))

    async def deny(self, scope: str) -> bool:
        """Add `scope` to the deny list; False when it was there already."""
        return bool(await self.redis.sadd(self.deny_key, scope))

    async def undeny(self, scope: str) -> bool:
        return bool(await self.redis.srem(self.deny_key, scope))

    async def is_denied(self, scope: str) -> bool:
        return bool(await self.redis.sismember(self.deny_key, scope))

    # --- pause -----------------------------------------------------------------------

    async def pause(self, message: str, by: str, *, now: float | None = None) -> None:
        since = time.time() if now is None else now
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.pause_key)
            pipe.hset(self.pause_key, mapping={"message": message, "by": by, "since": since})
            await pipe.execute()

    async def resume(self) -> bool:
        """End the pause; False when the bot was not paused."""
        return bool(await self.redis.delete(self.pause_key))

    async def paused(self) -> Pause | None:
        return _pause(await self.redis.hgetall(self.pause_key))


def _pause(raw: Mapping[bytes | str, bytes | str] | None) -> Pause | None:
    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}
    try:
        since = float(fields.get("since", "0"))
    except ValueError:
        since = 0.0
    return Pause(message=fields.get("message", ""), by=fields.get("by", ""), since=since)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
