"""Keeping the "you're number 3 in the queue" messages current.

`StatusTracker` polls the status of the jobs this bot waits on (`bot.waiting.WaitingJobs`,
in Redis) and calls the adapter when the text would change, at most once per chat every
`throttle_s` seconds (Telegram's flood control bites otherwise). A cancelled job gets one
last update (its message says so; the queue publishes no outcome for it); other finished
jobs are left to the delivery pump (`bot.queue.pump.DeliveryPump`). The throttle is a
Redis key, so several bot processes share it.

One tracker runs per bot process; each adapter registers its callback for its platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import quote

import redis.asyncio as aioredis

from bot import i18n
from bot.jobs import Job, JobStatus, Owner
from bot.queue.producer import JobProducer, Receipt
from bot.replies import Queued
from bot.waiting import Shown, WaitingJobs

log = logging.getLogger(__name__)

StatusCallback = Callable[[Job, Queued], Awaitable[None]]
"""Adapter side of status updates: edit (or send) the job's queue message."""


class StatusRenderer(Protocol):
    def status_reply(self, receipt: Receipt) -> Queued: ...


class StatusTracker:
    """Polls the status of waited-on jobs and pushes changed texts, throttled per chat."""

    def __init__(
        self,
        queue: JobProducer,
        renderer: StatusRenderer,
        waiting: WaitingJobs,
        redis: aioredis.Redis,
        prefix: str,
        *,
        interval_s: float = 1.0,
        throttle_s: float = 3.0,
    ) -> None:
        self.queue = queue
        self.renderer = renderer
        self.waiting = waiting
        self._redis = redis
        self._prefix = prefix
        self.interval_s = interval_s
        self.throttle_s = throttle_s
        self._handlers: dict[str, StatusCallback] = {}

    def register(self, platform: str, update: StatusCallback) -> None:
        self._handlers[platform] = update

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                log.warning("status: Redis unavailable (%s)", type(exc).__name__)
            except Exception:
                log.exception("status loop failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def poll_once(self) -> int:
        """One pass over the waited-on jobs; returns how many updates were pushed."""
        pushed = 0
        for job_id, shown in (await self.waiting.all()).items():
            receipt = await self.queue.status(job_id)
            if receipt is None:  # expired or forgotten
                await self.waiting.remove(job_id)
                continue
            status = receipt.job.status
            if status.final and status is not JobStatus.CANCELLED:
                await self.waiting.remove(job_id)  # the pump tells the user the outcome
                continue
            if await self._push(receipt, shown):
                pushed += 1
                if status is JobStatus.CANCELLED:  # no outcome follows: this was the last word
                    await self.waiting.remove(job_id)
            elif (
                status is JobStatus.CANCELLED
                and shown.text == self.renderer.status_reply(receipt).text
            ):
                await self.waiting.remove(job_id)
        return pushed

    async def _push(self, receipt: Receipt, shown: Shown) -> bool:
        job = receipt.job
        reply = self.renderer.status_reply(receipt)
        state = Shown(
            status=job.status.value,
            position=reply.position,
            eta_s=round(reply.eta_s),
            since=shown.since,
            text=reply.text,
        )
        if state.text == shown.text:
            return False
        handler = self._handlers.get(job.owner.platform)
        if handler is None or not await self._take_slot(job):
            return False
        try:
            with i18n.use(job.locale):
                await handler(job, reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed edit is not worth more than a log line
            log.warning("status update for job %s failed: %s", job.id, type(exc).__name__)
            return False
        await self.waiting.update(job.id, state)
        return True

    async def _take_slot(self, job: Job) -> bool:
        """At most one update per user per chat every `throttle_s`, across processes (on
        Discord each user's status is its own message; on Telegram AIORateLimiter also keeps
        a group inside its per-chat flood limit)."""
        key = status_throttle_key(self._prefix, job.owner)
        return bool(await self._redis.set(key, "1", nx=True, px=round(self.throttle_s * 1000)))


def status_throttle_key(prefix: str, owner: Owner) -> str:
    """The key that spaces out one user's status edits in one chat (`StatusTracker`)."""
    parts = (owner.platform, owner.chat_id, owner.user_id)
    return f"{prefix}:conv:throttle:" + ":".join(quote(p, safe="") for p in parts)
