"""The audit trail: every admin action and every refusal by policy, in capped Redis streams.

- `{prefix}:audit:admin` — admin actions (chat or `avatarbot admin`).
- `{prefix}:audit:refusals` — requests the policy refused. Kept apart, so a flood of
  refused requests can never push admin actions out of the trail; and one entry per user
  and reason per `quiet_s` at most (the throttle key is a hash: no identifier in clear).

Each entry: `actor` (who: `platform:user_id`, or `cli:<unix user>`), `action` (what),
`target` (a scope, or ''), `detail` (a reason, a number or the operator's pause message);
its stream id is when, and `seq` (one counter shared by both streams) orders entries
made within the same millisecond. Never image data or tokens: nothing here is given any. Both
streams are trimmed to about `cap` entries (XADD MAXLEN ~: no consumer group reads them).

/forgetme (`forget_user`) deletes the user's refusals and the admin entries about them,
except bans: entries with a ban action (`BAN_ACTIONS`) stay, so forgetting yourself does
not erase why you were kept out. Actions an admin took stay too (the operator's record).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

REFUSED = "refused"
BAN_ACTIONS = frozenset({"ban", "unban", "deny", "undeny"})
"""Entries that survive the user's /forgetme."""
DEFAULT_CAP = 10_000
QUIET_S = 60


@dataclass(frozen=True)
class AuditEntry:
    entry_id: str
    actor: str
    action: str
    target: str = ""
    detail: str = ""
    seq: int = 0
    """Order across both streams (entries older than the counter have 0)."""

    @property
    def at(self) -> float:
        return int(self.entry_id.split("-", 1)[0]) / 1000

    def render(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.at))
        parts = [f"{when}Z", self.actor, self.action]
        parts += [part for part in (self.target, self.detail) if part]
        return "  ".join(parts)


class AuditLog:
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        cap: int = DEFAULT_CAP,
        quiet_s: int = QUIET_S,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.admin_stream = f"{prefix}:audit:admin"
        self.refusal_stream = f"{prefix}:audit:refusals"
        self._seq_key = f"{prefix}:audit:seq"
        self.cap = cap
        self.quiet_s = quiet_s

    async def record(self, actor: str, action: str, target: str = "", detail: str = "") -> str:
        """Append an admin action; returns its entry id."""
        fields: dict[FieldT, EncodableT] = {
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail,
            "seq": await self._redis.incr(self._seq_key),
        }
        entry = await self._redis.xadd(self.admin_stream, fields, maxlen=self.cap, approximate=True)
        return _text(entry)

    async def refusal(self, actor: str, reason: str, where: str = "") -> bool:
        """Append a refusal of `actor`'s request (at most one per actor and reason per
        `quiet_s`); True when it was appended."""
        digest = hashlib.sha256(f"{self._prefix}|{actor}|{reason}".encode()).hexdigest()[:32]
        quiet = f"{self._prefix}:audit:quiet:{digest}"
        if not await self._redis.set(quiet, "1", nx=True, ex=self.quiet_s):
            return False
        fields: dict[FieldT, EncodableT] = {
            "actor": actor,
            "action": REFUSED,
            "target": where,
            "detail": reason,
            "seq": await self._redis.incr(self._seq_key),
        }
        await self._redis.xadd(self.refusal_stream, fields, maxlen=self.cap, approximate=True)
        return True

    async def recent(self, limit: int = 20) -> list[AuditEntry]:
        """The newest `limit` entries of both streams, newest first."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrevrange(self.admin_stream, count=limit)
            pipe.xrevrange(self.refusal_stream, count=limit)
            admin, refusals = await pipe.execute()
        entries = [_entry(eid, fields) for eid, fields in [*admin, *refusals]]
        entries.sort(key=lambda e: (int(e.entry_id.split("-", 1)[0]), e.seq), reverse=True)
        return entries[:limit]

    async def forget_user(self, user: str) -> int:
        """Delete `user`'s refusals and the admin entries about them, bans excepted."""
        deleted = 0
        for stream in (self.admin_stream, self.refusal_stream):
            admin = stream == self.admin_stream
            doomed = [
                entry.entry_id
                async for entry in self._scan(stream)
                if _about(entry, user, admin_entry=admin)
            ]
            for i in range(0, len(doomed), 500):
                deleted += int(await self._redis.xdel(stream, *doomed[i : i + 500]))
        return deleted

    async def _scan(self, stream: str) -> AsyncIterator[AuditEntry]:
        start = "-"
        while True:
            batch: Any = await self._redis.xrange(stream, min=start, count=1000)
            for eid, fields in batch:
                yield _entry(eid, fields)
            if len(batch) < 1000:
                return
            start = "(" + _text(batch[-1][0])


def _about(entry: AuditEntry, user: str, *, admin_entry: bool) -> bool:
    """Whether /forgetme of `user` deletes `entry`: their refusals, and admin actions done
    to them except bans. Actions an admin took (as the actor) stay: they are the
    operator's record of running the bot, not data about a user of it."""
    if admin_entry:
        return entry.target == user and entry.action not in BAN_ACTIONS
    return entry.actor == user


def _entry(eid: bytes | str, fields: dict[Any, Any]) -> AuditEntry:
    values = {_text(k): _text(v) for k, v in fields.items()}
    return AuditEntry(
        entry_id=_text(eid),
        actor=values.get("actor", ""),
        action=values.get("action", ""),
        target=values.get("target", ""),
        detail=values.get("detail", ""),
        seq=int(values.get("seq", "0") or 0),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
