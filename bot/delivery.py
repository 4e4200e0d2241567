"""Getting results and status updates from the queue to the chats that wait for them.

`DeliveryPump` reads this bot's outcomes stream (through its consumer group, so results
survive a bot restart) and delivers each outcome exactly once in effect: it takes a lease
on it (no other bot process sends it while the lease lives, and the lease is renewed
while a slow send runs), renders it into replies with the conversation, hands them to
the adapter of the job's platform, then confirms (`JobQueue.confirm_delivery`). The
lease is taken in the same script call that reads the outcome
(`JobQueue.read_outcomes(lease=True)`), and again with `JobQueue.claim_delivery` when
that lease is no longer fresh or a send is retried. A bot killed before confirming
leaves the outcome to the next bot process (or itself, restarted), which takes the
lapsed lease and sends it. A duplicate is possible only if a bot dies, or loses Redis
for longer than the lease, in the instant between a successful send and its confirm (a
confirm that fails on a Redis error is retried from memory, never the send). An adapter
that raises is logged once and the delivery is retried with capped backoff (up to
`max_attempts`), each try under a renewed lease; then it is given up (the result stays
in Redis until `result_ttl_s`).

`StatusTracker` keeps the "you're number 3 in the queue" messages current: it polls the
status of the jobs this bot waits on (`bot.waiting.WaitingJobs`, in Redis) and calls the
adapter when the text would change, at most once per chat every `throttle_s` seconds
(Telegram's flood control bites otherwise). A cancelled job gets one last update (its
message says so; the queue publishes no outcome for it); other finished jobs are left to
the pump. The throttle is a Redis key, so several bot
processes share it.

One pump and one tracker run per bot process; each adapter registers its callbacks for
its platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import redis.asyncio as aioredis

from bot import i18n
from bot.jobs import Job, JobStatus, Owner
from bot.metrics import BotMetrics
from bot.queue import DeliveryClaim
from bot.replies import Queued, Reply
from bot.waiting import Shown, WaitingJobs

if TYPE_CHECKING:
    from bot.queue import Delivery, JobQueue, Receipt

log = logging.getLogger(__name__)

DeliverCallback = Callable[["Delivery", Sequence[Reply]], Awaitable[None]]
"""Adapter side of delivery: send `replies` to `delivery.job.owner` / `.route`."""
StatusCallback = Callable[[Job, Queued], Awaitable[None]]
"""Adapter side of status updates: edit (or send) the job's queue message."""


class OutcomeRenderer(Protocol):
    async def outcome_replies(self, delivery: Delivery) -> list[Reply]: ...

    def status_reply(self, receipt: Receipt) -> Queued: ...


@dataclass
class _Retry:
    delivery: Delivery
    attempts: int
    due: float


class DeliveryPump:
    """Reads `bot`'s outcomes as `consumer` and delivers them through platform callbacks."""

    def __init__(
        self,
        queue: JobQueue,
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
        entry_id = delivery.entry_id
        job_id = delivery.outcome.job_id
        # Take the lease first: while it lives no other bot process sends this outcome. A
        # first try of a fresh read already holds it (taken while reading); retries renew.
        if attempts == 0 and self.queue.holds_lease(delivery):
            claim = DeliveryClaim.OK
        else:
            claim = await self.queue.claim_delivery(self.bot, delivery, self.consumer)
        if claim is not DeliveryClaim.OK:
            self._retries.pop(entry_id, None)
            log.info(
                "outcome of job %s %s; skipped",
                job_id,
                "being delivered elsewhere" if claim is DeliveryClaim.HELD else "already handled",
                extra={"job_id": job_id},
            )
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
                return False
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
            return False
        self._retries.pop(entry_id, None)
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
        self._unconfirmed[entry_id] = delivery
        await self._confirm(delivery)
        return True

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


class StatusTracker:
    """Polls the status of waited-on jobs and pushes changed texts, throttled per chat."""

    def __init__(
        self,
        queue: JobQueue,
        renderer: OutcomeRenderer,
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
