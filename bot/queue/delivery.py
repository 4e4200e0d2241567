"""The bot's side of delivery in Redis: read outcomes, lease them, confirm them.

This and `bot.queue.pump.DeliveryPump` (which sends what is read here through the
adapters) are the whole delivery protocol; docs/reliability.md explains the lease.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bot.jobs import Job, JobResult, JobStatus, Outcome
from bot.queue.client import Clock, QueueClient, job_or_none, text
from bot.queue.config import QueueConfig
from bot.queue.keys import DELIVERY_GROUP

OUTCOME_TRIM_EVERY_S = 60.0


@dataclass(frozen=True)
class Delivery:
    """An outcome a bot must tell its user about. `job` is never None here (outcomes of
    vanished jobs are dropped while reading); `result` is set for DONE jobs."""

    entry_id: str
    outcome: Outcome
    job: Job | None
    result: JobResult | None
    lease_until: float | None = None
    """Until when (the queue's clock) this reader holds the lease to deliver it, when it
    was read with `lease=True`; None otherwise."""


class DeliveryClaim(enum.Enum):
    """What `DeliveryQueue.claim_delivery` decided."""

    OK = "ok"
    """This consumer holds the lease: send, then confirm."""
    HELD = "held"
    """Another consumer's lease is live: it is delivering this outcome."""
    DONE = "done"
    """Nothing to deliver any more (delivered, vanished, moved on)."""


class DeliveryQueue(QueueClient):
    """Outcomes out: what a bot process delivering results asks of the queue. One instance
    per bot process (it keeps its read cursors)."""

    def __init__(
        self, redis: aioredis.Redis, config: QueueConfig, *, clock: Clock = time.time
    ) -> None:
        super().__init__(redis, config, clock=clock)
        self._read_outcomes = self._script("read_outcomes")
        self._claim_delivery = self._script("claim_delivery")
        self._confirm_delivery = self._script("confirm_delivery")
        self._mark = self._script("mark_delivered")
        self._outcome_cursors: dict[str, str] = {}
        self._pending_read: set[tuple[str, str]] = set()
        self._outcomes_idle: set[tuple[str, str]] = set()
        """(stream, consumer) pairs whose last read found nothing: the next read blocks at
        once instead of first trying a read that would come back empty."""
        self._last_outcome_upkeep: dict[str, float] = {}
        self._last_outcome_reclaim: dict[str, float] = {}

    async def read_outcomes(
        self, bot: str, consumer: str, count: int, block_ms: int, *, lease: bool = False
    ) -> list[Delivery]:
        """Outcomes for `bot` to deliver, read through its consumer group.

        After a restart, `consumer`'s own pending entries come first (id 0); entries left
        pending by a bot consumer that died are reclaimed (XAUTOCLAIM, `reclaim_idle_s`);
        then new ones, blocking up to `block_ms`. Outcomes whose job vanished, was already
        delivered or is stale (the job has moved on) are acknowledged and dropped here.
        Each read and the fetch of its jobs and results is one script call (plus a blocking
        XREADGROUP when nothing was waiting).

        With `lease`, each outcome returned is also leased to `consumer` (as
        `claim_delivery` does, in the same script call; `holds_lease` tells whether the
        lease is still fresh enough to send without renewing it first); an outcome whose
        lease another consumer holds is left to it and not returned."""
        stream = self.keys.results(bot)
        if stream not in self._groups_ready:
            await self._create_group(stream, DELIVERY_GROUP)
        await self._outcome_upkeep(bot)
        seen = 0
        out: list[Delivery] = []
        if (bot, consumer) not in self._pending_read:
            seen, out = await self._fetch_outcomes(bot, consumer, lease, "read", count, "0")
            if not seen:
                self._pending_read.add((bot, consumer))
        if not seen and self._outcome_reclaim_due(bot):
            cursor = self._outcome_cursors.get(bot, "0-0")
            min_idle_ms = int(self.config.reclaim_idle_s * 1000)
            seen, out = await self._fetch_outcomes(
                bot, consumer, lease, "claim", count, min_idle_ms, cursor
            )
        idle_key = (stream, consumer)
        if not seen and idle_key not in self._outcomes_idle:
            seen, out = await self._fetch_outcomes(bot, consumer, lease, "read", count, ">")
        if not seen:
            out = await self._read_blocking(bot, consumer, lease, count, block_ms)
        return out

    async def _read_blocking(
        self, bot: str, consumer: str, lease: bool, count: int, block_ms: int
    ) -> list[Delivery]:
        """Wait up to `block_ms` for new outcomes, then fetch what came in one script call."""
        stream = self.keys.results(bot)
        idle_key = (stream, consumer)
        entries = await self._xreadgroup(stream, consumer, ">", count, block_ms)
        if not entries:
            self._outcomes_idle.add(idle_key)
            return []
        self._outcomes_idle.discard(idle_key)
        given: list[str | bytes] = []
        for eid, fields in entries:
            outcome = Outcome.from_fields(fields)
            failure = outcome.failure.value if outcome.failure else ""
            given += [eid, outcome.job_id, outcome.status.value, failure]
        _seen, out = await self._fetch_outcomes(bot, consumer, lease, "given", *given)
        return out

    def holds_lease(self, delivery: Delivery) -> bool:
        """True when `delivery` was read with a lease (`read_outcomes(lease=True)`) that
        has at least two thirds of its length left: time enough to start sending before
        a sender's first renewal (`DeliveryPump` renews every third), so `claim_delivery`
        can be skipped."""
        if delivery.lease_until is None:
            return False
        left = delivery.lease_until - self.clock()
        return left > self.config.delivery_lease_s * 2 / 3

    async def _fetch_outcomes(
        self, bot: str, consumer: str, lease: bool, mode: str, *args: str | bytes | int
    ) -> tuple[int, list[Delivery]]:
        """Run read_outcomes.lua; returns (entries seen, deliveries)."""
        now = self.clock()
        lease_s = self.config.delivery_lease_s
        try:
            reply = await self._read_outcomes(
                keys=[self.keys.results(bot)],
                args=[
                    self.keys.prefix,
                    consumer,
                    repr(now),
                    repr(lease_s) if lease else "",
                    mode,
                    *args,
                ],
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._create_group(self.keys.results(bot), DELIVERY_GROUP)
            return 0, []
        if mode == "claim":
            self._outcome_cursors[bot] = text(reply[0])
        out, stale = self._deliveries(reply, now + lease_s if lease else None)
        if stale:  # malformed job records: nothing can be delivered from them
            stream = self.keys.results(bot)
            await self.redis.xack(stream, DELIVERY_GROUP, *stale)
            await self.redis.xdel(stream, *stale)
        return int(reply[1]), out

    @staticmethod
    def _deliveries(reply: Any, lease_until: float | None) -> tuple[list[Delivery], list[str]]:
        """The deliveries in a read_outcomes.lua reply, and the entries whose job record is
        malformed."""
        out: list[Delivery] = []
        stale: list[str] = []
        i = 2
        while i < len(reply):
            entry_id, outcome_fields, job_fields, names = json.loads(reply[i])
            values = reply[i + 1 : i + 1 + len(names)]
            i += 1 + len(names)
            outcome = Outcome.from_fields(outcome_fields)
            job = job_or_none(job_fields)
            if job is None:
                stale.append(entry_id)
                continue
            result = None
            if names and job.status is JobStatus.DONE:  # no names comes as {} from Lua
                result = JobResult.from_fields(dict(zip(names, values, strict=True)))
            out.append(
                Delivery(
                    entry_id=entry_id,
                    outcome=outcome,
                    job=job,
                    result=result,
                    lease_until=lease_until,
                )
            )
        return out, stale

    def _outcome_reclaim_due(self, bot: str) -> bool:
        """Entries of dead bot consumers are looked for at most every reclaim_idle_s / 2
        (and once per full pass of the cursor), not on every read."""
        now = self.clock()
        every = min(self.config.reclaim_idle_s / 2, 5.0)
        if self._outcome_cursors.get(bot, "0-0") != "0-0":
            return True
        if now - self._last_outcome_reclaim.get(bot, float("-inf")) < every:
            return False
        self._last_outcome_reclaim[bot] = now
        return True

    async def _xreadgroup(
        self, stream: str, consumer: str, since: str, count: int, block_ms: int | None
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        try:
            reply: Any = await self.redis.xreadgroup(
                DELIVERY_GROUP, consumer, {stream: since}, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._create_group(stream, DELIVERY_GROUP)
            return []
        out: list[tuple[bytes, dict[bytes, bytes]]] = []
        for _name, items in reply or []:
            for eid, fields in items:
                if fields:
                    out.append((eid, fields))
                else:  # a pending entry deleted meanwhile: drop it from our pending list
                    await self.redis.xack(stream, DELIVERY_GROUP, eid)
        return out

    async def _outcome_upkeep(self, bot: str) -> None:
        """Trim the bot's results stream of entries older than `job_ttl_s` (their jobs are
        gone), at most once a minute."""
        now = self.clock()
        if now - self._last_outcome_upkeep.get(bot, float("-inf")) < OUTCOME_TRIM_EVERY_S:
            return
        self._last_outcome_upkeep[bot] = now
        min_id = f"{int((now - self.config.job_ttl_s) * 1000)}-0"
        await self.redis.xtrim(self.keys.results(bot), minid=min_id)

    async def claim_delivery(self, bot: str, delivery: Delivery, consumer: str) -> DeliveryClaim:
        """Take (or renew) the lease to deliver `delivery` as `consumer`, for
        `delivery_lease_s`. OK: send it, then `confirm_delivery`. HELD: another bot process
        is delivering it right now; leave it. DONE: nothing to deliver (already delivered,
        the job vanished or moved on); the entry was acknowledged and deleted."""
        reply = await self._claim_delivery(
            keys=self._delivery_keys(bot, delivery),
            args=[
                delivery.entry_id,
                delivery.outcome.status.value,
                consumer,
                repr(self.clock()),
                repr(self.config.delivery_lease_s),
            ],
        )
        return DeliveryClaim(text(reply))

    async def confirm_delivery(self, bot: str, delivery: Delivery, *, sent: bool = True) -> bool:
        """End a delivery claimed with `claim_delivery`: acknowledge and delete the entry,
        drop the lease and (when `sent`) mark the job delivered. `sent=False` gives the
        delivery up (the user cannot be reached); the result stays until `result_ttl_s`.
        True when this call marked the job delivered; False when it already was (a
        duplicate send happened), vanished, moved on, or was given up."""
        reply = await self._confirm_delivery(
            keys=self._delivery_keys(bot, delivery),
            args=[delivery.entry_id, delivery.outcome.status.value, "1" if sent else "0"],
        )
        return bool(int(reply))

    async def mark_delivered(self, bot: str, delivery: Delivery, consumer: str = "") -> bool:
        """Claim and confirm in one step, for one-shot readers (`avatarbot submit --wait`,
        tests): True exactly once per job outcome. The price is at most once (a reader
        that dies right after this call loses that message; the result stays in Redis for
        `result_ttl_s`), so long-running bots use `claim_delivery` + `confirm_delivery`.
        A live lease held by another consumer wins: False, and the entry is left to it."""
        reply = await self._mark(
            keys=self._delivery_keys(bot, delivery),
            args=[delivery.entry_id, delivery.outcome.status.value, consumer, repr(self.clock())],
        )
        return bool(int(reply))

    def _delivery_keys(self, bot: str, delivery: Delivery) -> list[str]:
        return [self.keys.results(bot), self.keys.job(delivery.outcome.job_id)]

    async def already_delivered(self, job_id: str) -> bool:
        return await self.redis.hget(self.keys.job(job_id), "delivered") == b"1"

    async def drop_results_stream(self, bot: str) -> None:
        """Delete a bot's results stream and group (one-off bots such as `avatarbot submit`)."""
        stream = self.keys.results(bot)
        await self.redis.delete(stream)
        self._groups_ready.discard(stream)
        self._pending_read = {k for k in self._pending_read if k[0] != bot}
