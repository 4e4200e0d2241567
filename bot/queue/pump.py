"""Getting results from the queue to the chats that wait for them.

`DeliveryPump` reads this bot's outcomes stream (through its consumer group, so results
survive a bot restart) and delivers each outcome exactly once in effect, by the lease
protocol of docs/reliability.md: lease it (`DeliveryQueue.read_outcomes(lease=True)` or
`DeliveryQueue.claim_delivery`), send it through the adapter of the job's platform
(renewing the lease while a slow send runs), confirm it (`DeliveryQueue.confirm_delivery`).
An adapter that raises is logged once and the delivery is retried with capped backoff (up to
`max_attempts`), each try under a renewed lease; then it is given up (the result stays
in Redis until `result_ttl_s`).

One pump runs per bot process; each adapter registers its callback for its platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

from bot import i18n
from bot.jobs import Job
from bot.metrics import BotMetrics
from bot.queue.delivery import Delivery, DeliveryClaim, DeliveryQueue
from bot.replies import Reply

log = logging.getLogger(__name__)

DeliverCallback = Callable[[Delivery, Sequence[Reply]], Awaitable[None]]
"""Adapter side of delivery: send `replies` to `delivery.job.owner` / `.route`."""


class OutcomeRenderer(Protocol):
    async def outcome_replies(self, delivery: Delivery) -> list[Reply]: ...


@dataclass
class _Retry:
    delivery: Delivery
    attempts: int
    due: float


class DeliveryPump:
    """Reads `bot`'s outcomes as `consumer` and delivers them through platform callbacks."""

    def __init__(
        self,
        queue: DeliveryQueue,
        renderer: OutcomeRenderer,
        bot: str,
        consumer: str,
        *,
        batch: int = 16,
        block_ms: int = 1000,
        retry_base_s: float = 2.0,
        retry_max_s: float = 60.0,
        max_attempts: int = 30,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.queue = queue
        self.renderer = renderer
        self.bot = bot
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.max_attempts = max_attempts
        self.metrics = metrics
        self._handlers: dict[str, DeliverCallback] = {}
        self._retries: dict[str, _Retry] = {}
        self._unconfirmed: dict[str, Delivery] = {}
        self.delivered = 0
        """Outcomes handed to an adapter without error (for metrics and tests)."""

    def register(self, platform: str, deliver: DeliverCallback) -> None:
        self._handlers[platform] = deliver

    @property
    def retrying(self) -> int:
        """Entries whose delivery failed and waits for another try, or whose send went
        through and whose confirm waits for Redis."""
        return len(self._retries) + len(self._unconfirmed)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set. Errors are logged and retried, never fatal: a pump
        that died would leave every user waiting."""
        log.info("delivering results for bot %r as %s", self.bot, self.consumer)
        while not stop.is_set():
            try:
                await self.pump_once()
                continue
            except asyncio.CancelledError:
                raise
            except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                log.warning("delivery: Redis unavailable (%s); retrying", type(exc).__name__)
            except Exception:
                log.exception("delivery loop failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def pump_once(self, block_ms: int | None = None) -> int:
        """Confirm what was sent, retry what is due, then read and deliver one batch;
        returns deliveries made."""
        done = 0
        for delivery in list(self._unconfirmed.values()):
            await self._confirm(delivery)
        now = time.monotonic()
        for retry in list(self._retries.values()):
            if retry.due <= now and await self._deliver(retry.delivery, retry.attempts):
                done += 1
        wait = self.block_ms if block_ms is None else block_ms
        if self._retries:  # do not sleep past the next retry
            next_due = min(r.due for r in self._retries.values())
            wait = max(1, min(wait, round((next_due - time.monotonic()) * 1000)))
        deliveries = await self.queue.read_outcomes(
            self.bot, self.consumer, self.batch, wait, lease=True
        )
        for delivery in deliveries:
            if delivery.entry_id in self._retries or delivery.entry_id in self._unconfirmed:
                continue  # already ours, waiting for its retry or its confirm
            if await self._deliver(delivery, 0):
                done += 1
        return done

    async def _deliver(self, delivery: Delivery, attempts: int) -> bool:
        job = delivery.job
        job_id = delivery.outcome.job_id
        if not await self._lease(delivery, attempts):
            return False
        if job is None:  # the queue drops these while reading; kept for the type
            log.warning("outcome for vanished job %s dropped", job_id, extra={"job_id": job_id})
            await self.queue.confirm_delivery(self.bot, delivery, sent=False)
            return False
        handler = self._handlers.get(job.owner.platform)
        try:
            if handler is None:
                raise LookupError(f"no adapter for platform {job.owner.platform!r} here")
            with i18n.use(job.locale):  # the adapter's own words too, in the job's language
                replies = await self.renderer.outcome_replies(delivery)
                await self._under_lease(delivery, handler(delivery, replies))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an adapter failure must not stop the pump
            await self._failed(delivery, job, attempts, exc)
            return False
        await self._sent(delivery, job)
        return True

    async def _lease(self, delivery: Delivery, attempts: int) -> bool:
        """Take the lease first: while it lives no other bot process sends this outcome. A
        first try of a fresh read already holds it (taken while reading); retries renew.
        False (and the outcome left alone) when another process holds it or it is done."""
        if attempts == 0 and self.queue.holds_lease(delivery):
            return True
        claim = await self.queue.claim_delivery(self.bot, delivery, self.consumer)
        if claim is DeliveryClaim.OK:
            return True
        job_id = delivery.outcome.job_id
        self._retries.pop(delivery.entry_id, None)
        log.info(
            "outcome of job %s %s; skipped",
            job_id,
            "being delivered elsewhere" if claim is DeliveryClaim.HELD else "already handled",
            extra={"job_id": job_id},
        )
        return False

    async def _failed(self, delivery: Delivery, job: Job, attempts: int, exc: Exception) -> None:
        """A send raised: schedule a retry with capped backoff, or give up after
        `max_attempts` (the entry is acknowledged, the job not marked delivered)."""
        entry_id = delivery.entry_id
        if attempts + 1 >= self.max_attempts:
            log.error(
                "giving up delivering job %s after %d attempts (%s); its result stays "
                "in Redis until it expires",
                job.id,
                attempts + 1,
                type(exc).__name__,
                extra={"job_id": job.id},
            )
            self._retries.pop(entry_id, None)
            with contextlib.suppress(aioredis.ConnectionError, aioredis.TimeoutError):
                await self.queue.confirm_delivery(self.bot, delivery, sent=False)
            return
        if attempts == 0:
            log.warning(
                "delivering job %s failed (%s: %s); will retry",
                job.id,
                type(exc).__name__,
                exc,
                extra={"job_id": job.id},
            )
        delay = min(self.retry_max_s, self.retry_base_s * 2**attempts)
        self._retries[entry_id] = _Retry(delivery, attempts + 1, time.monotonic() + delay)

    async def _sent(self, delivery: Delivery, job: Job) -> None:
        """A send went through: count it, then confirm it."""
        self._retries.pop(delivery.entry_id, None)
        self.delivered += 1
        log.info(
            "delivered job %s (%s)", job.id, delivery.outcome.status.value, extra={"job_id": job.id}
        )
        if self.metrics is not None:
            self.metrics.observe_delivery(
                job.owner.platform,
                delivery.outcome.status.value,
                delivery.result.elapsed_s if delivery.result is not None else None,
                (job.finished_at or time.time()) - job.created_at,
            )
        self._unconfirmed[delivery.entry_id] = delivery
        await self._confirm(delivery)

    async def _confirm(self, delivery: Delivery) -> None:
        """Mark a sent outcome delivered. A Redis error keeps it in memory for the next
        pass: the confirm is retried, never the send."""
        try:
            first = await self.queue.confirm_delivery(self.bot, delivery)
        except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
            log.warning(
                "confirming delivery of job %s failed (%s); will retry",
                delivery.outcome.job_id,
                type(exc).__name__,
                extra={"job_id": delivery.outcome.job_id},
            )
            return
        self._unconfirmed.pop(delivery.entry_id, None)
        if not first:
            log.warning(
                "job %s was already marked delivered when confirmed (its lease had lapsed)",
                delivery.outcome.job_id,
                extra={"job_id": delivery.outcome.job_id},
            )

    async def _under_lease(self, delivery: Delivery, send: Awaitable[None]) -> None:
        """Run `send`, renewing the lease every third of its length until it returns (the
        renewing task starts only once a send outlasts the first third: most are quicker)."""
        every = max(0.05, self.queue.config.delivery_lease_s / 3)

        async def renew() -> None:
            while True:
                try:
                    claim = await self.queue.claim_delivery(self.bot, delivery, self.consumer)
                except (aioredis.ConnectionError, aioredis.TimeoutError):
                    claim = DeliveryClaim.OK  # try again next time
                if claim is not DeliveryClaim.OK:
                    log.warning(
                        "lost the lease on job %s while sending (%s)",
                        delivery.outcome.job_id,
                        claim.value,
                        extra={"job_id": delivery.outcome.job_id},
                    )
                    return
                await asyncio.sleep(every)

        renewer: asyncio.Task[None] | None = None

        def start_renewing() -> None:
            nonlocal renewer
            renewer = asyncio.create_task(renew(), name="delivery-lease")

        timer = asyncio.get_running_loop().call_later(every, start_renewing)
        try:
            await send
        finally:
            timer.cancel()
            if renewer is not None:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
