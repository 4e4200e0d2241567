"""The jobs a bot deployment is waiting on, so their queue status can be kept up to date.

A Redis hash per bot (`{prefix}:conv:waiting:<bot>`): job id -> the status last shown to
the user (JSON). The conversation adds a job when it enqueues it; the status tracker
edits the user's message when the status changes and drops the job once it is final.
In Redis, not in memory, so a restarted bot keeps updating the messages it sent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis.asyncio as aioredis


@dataclass(frozen=True)
class Shown:
    """What the user's status message says now."""

    status: str
    position: int
    eta_s: int
    since: float
    """When the job started being watched (epoch seconds)."""
    text: str = ""
    """The message text last shown."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "status": self.status,
                "position": self.position,
                "eta": self.eta_s,
                "t": self.since,
                "text": self.text,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Shown:
        try:
            data = json.loads(raw)
            return cls(
                status=str(data["status"]),
                position=int(data["position"]),
                eta_s=int(data["eta"]),
                since=float(data["t"]),
                text=str(data.get("text", "")),
            )
        except (ValueError, KeyError, TypeError):
            return cls(status="", position=-1, eta_s=-1, since=time.time())


_SET_IF_PRESENT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


class WaitingJobs:
    def __init__(self, redis: aioredis.Redis, prefix: str, bot: str) -> None:
        self._redis = redis
        self.key = f"{prefix}:conv:waiting:{bot}"

    async def add(self, job_id: str, shown: Shown) -> None:
        await self._redis.hset(self.key, job_id, shown.to_json())

    async def update(self, job_id: str, shown: Shown) -> bool:
        """Record a new shown state; False when the job is no longer watched."""
        done = await self._redis.eval(_SET_IF_PRESENT, 1, self.key, job_id, shown.to_json())
        return bool(done)

    async def remove(self, job_id: str) -> bool:
        return bool(await self._redis.hdel(self.key, job_id))

    async def all(self) -> dict[str, Shown]:
        raw = await self._redis.hgetall(self.key)
        return {_text(k): Shown.from_json(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
