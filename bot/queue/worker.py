"""The worker's side of the queue: claim jobs, finish them, give back the ones not started
when stopping, and take over the jobs of workers that stopped (docs/reliability.md, "A
job's way through" and "When a worker stops").

How stopped workers are found: each worker keeps a liveness record (`alive:{consumer}`,
a TTL of seconds, renewed by its own thread: `bot.queue.liveness.WorkerLiveness`).
`reclaim` is the one call a worker's reclaim loop makes; it finds jobs two ways: by
consumer (`_reclaim_dead`: every entry of a worker whose record lapsed, and of the
hand-back consumer, at once) and by idle time (`_reclaim_idle`: the net for a worker alive
but stuck, past a bound that follows the job's expected length). Every take-over goes
through lua/lib.lua's `take_over` (delivery count, dead letters); a job's result is
recorded only by finish.lua, fenced by the delivery the finishing worker holds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bot.jobs import FailureReason, Job, JobResult, JobStatus
from bot.queue import upkeep
from bot.queue.client import Clock, QueueClient, text
from bot.queue.config import QueueConfig
from bot.queue.keys import JOBS_GROUP

log = logging.getLogger(__name__)

STATS_TTL_S = 7 * 86_400
EWMA_ALPHA = 0.2
REFUNDED = frozenset(
    {
        FailureReason.GENERATION_FAILED,
        FailureReason.UNKNOWN_STYLE,
        FailureReason.SELFIE_EXPIRED,
        FailureReason.DEAD_LETTER,
    }
)
"""Failures that are our fault: the job does not count against the user's daily quota."""


@dataclass(frozen=True)
class ClaimedJob:
    entry_id: str
    job: Job
    selfie_jpeg: bytes = field(repr=False)
    deliveries: int = 1
    """How many times the entry was handed to a worker; above 1 it is a suspect (the last
    worker died on it), and workers run it alone. With `consumer`, the fencing token:
    only the holder of this delivery can finish the job."""
    consumer: str = ""
    """The worker it was handed to."""


class WorkerQueue(QueueClient):
    """Jobs out, results in: what a generation worker asks of the queue. One instance per
    worker process (it keeps the reclaim cursor)."""

    def __init__(
        self, redis: aioredis.Redis, config: QueueConfig, *, clock: Clock = time.time
    ) -> None:
        super().__init__(redis, config, clock=clock)
        self._claim = self._script("claim")
        self._start = self._script("start")
        self._reclaim = self._script("reclaim")
        self._reclaim_dead_script = self._script("reclaim_dead")
        self._dead_workers = self._script("dead_workers")
        self._hand_back = self._script("hand_back")
        self._finish = self._script("finish")
        self._progress = self._script("set_progress")
        self._duration = self._script("record_duration")
        self._reclaim_cursor = "0-0"
        self._jobs_idle: set[str] = set()
        """Consumers whose last read found nothing: their next claim blocks at once instead
        of first trying a read that would come back empty."""
        self._last_maintenance = float("-inf")
        self._stuck = json.dumps(
            {
                "factor": config.stuck_factor,
                "min_ms": int(config.stuck_min_s * 1000),
                "max_ms": int(config.stuck_max_s * 1000),
                "default_s": config.default_job_s,
            }
        )
        """The stuck bound's terms, as the scripts that start jobs take them."""
        self._judge_after_ms = int(min(config.liveness_ttl_s, 2 * config.liveness_refresh_s) * 1000)
        """How long a worker gives the others to renew their records, after Redis started
        or after its own record lapsed, before it judges them: two renewals."""

    # --- claiming --------------------------------------------------------------------

    async def claim(self, consumer: str, count: int, block_ms: int) -> list[ClaimedJob]:
        """New jobs for `consumer` (XREADGROUP >), marked running. Cancelled or vanished
        jobs are acknowledged and skipped; a job whose selfie expired fails at once
        (SELFIE_EXPIRED, its user is told).

        While jobs keep coming, one script reads and starts them in one round trip; when it
        finds none (and after a read that found none), a blocking XREADGROUP waits up to
        `block_ms` and a second script starts what it got."""
        keys = self.keys
        try:
            if consumer not in self._jobs_idle:
                rows = await self._claim(
                    keys=[keys.jobs, keys.active_jobs, keys.stats],
                    args=[keys.prefix, repr(self.clock()), consumer, count, self._stuck],
                )
                if rows:
                    return self._claimed_rows(rows, consumer)
            reply: Any = await self.redis.xreadgroup(
                JOBS_GROUP, consumer, {keys.jobs: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("jobs consumer group missing (Redis lost its data?); recreating it")
            await self._create_group(keys.jobs, JOBS_GROUP)
            return []
        if reply:
            self._jobs_idle.discard(consumer)
        else:
            self._jobs_idle.add(consumer)
        return await self._start_read(consumer, reply or [])

    async def _start_read(self, consumer: str, reply: Any) -> list[ClaimedJob]:
        """Start the jobs of the entries a blocking XREADGROUP returned."""
        keys = self.keys
        job_keys: list[str] = [keys.jobs, keys.active_jobs, keys.stats]
        pairs: list[str | bytes] = []
        for _stream, entries in reply:
            for entry_id, fields in entries:
                job_id = fields.get(b"job_id")
                if job_id is None:
                    await self.redis.xack(keys.jobs, JOBS_GROUP, entry_id)
                    await self.redis.xdel(keys.jobs, entry_id)
                    continue
                pairs += [entry_id, job_id]
                job_keys += [keys.job(text(job_id)), keys.selfie(text(job_id))]
        if not pairs:
            return []
        rows = await self._start(
            keys=job_keys, args=[keys.prefix, repr(self.clock()), consumer, self._stuck, *pairs]
        )
        return self._claimed_rows(rows, consumer)

    def _claimed_rows(self, rows: Sequence[bytes], consumer: str) -> list[ClaimedJob]:
        """The jobs handed to `consumer` in a START/CLAIM/RECLAIM reply: two items per stream
        entry, a JSON header [entry, verdict, job id, deliveries, job hash] and the selfie."""
        out = []
        for i in range(0, len(rows), 2):
            entry_id, verdict, job_id, deliveries, *fields = json.loads(rows[i])
            if verdict == "ok":
                out.append(
                    ClaimedJob(
                        entry_id=entry_id,
                        job=Job.from_fields(fields[0]),
                        selfie_jpeg=bytes(rows[i + 1]),
                        deliveries=int(deliveries),
                        consumer=consumer,
                    )
                )
            elif verdict == "dead":
                log.warning("job %s dead-lettered after %d deliveries", job_id, deliveries)
            elif verdict == "expired":
                log.warning("job %s failed: its selfie expired before a worker got to it", job_id)
            else:
                log.info("skipped job %s (%s)", job_id, verdict)
        return out

    # --- taking over -----------------------------------------------------------------

    async def reclaim(self, consumer: str, count: int, *, idle: bool = True) -> list[ClaimedJob]:
        """Take over up to `count` jobs of workers that stopped: first, at once, every entry
        of a worker whose liveness record lapsed (and those given back by stopping
        workers); then, with `idle`, entries held past their stuck bound (their worker is
        alive but stuck). Delivery counts from XPENDING; a job delivered more than
        `max_deliveries` times is dead-lettered instead (status DEAD, outcome published so
        its user is told). Also runs the upkeep on its timer."""
        await self._maybe_maintain()
        out = await self._reclaim_dead(consumer, count)
        if idle and len(out) < count:
            out += await self._reclaim_idle(consumer, count - len(out))
        return out

    async def dead_workers(self, consumer: str) -> list[str]:
        """The consumers holding jobs that `reclaim` would take at once: workers whose
        liveness record lapsed while `consumer`'s lived (only with `reclaim_by_liveness`;
        not in the two renewals after Redis started or `consumer`'s own record lapsed) and
        the hand-back consumer. Takes nothing."""
        cfg, keys = self.config, self.keys
        names = await self._dead_workers(
            keys=[keys.jobs],
            args=[
                keys.prefix,
                consumer,
                self._judge_after_ms,
                "1" if cfg.reclaim_by_liveness else "0",
            ],
        )
        return [text(n) for n in names]

    async def _reclaim_dead(self, consumer: str, count: int) -> list[ClaimedJob]:
        cfg, keys = self.config, self.keys
        rows = await self._reclaim_dead_script(
            keys=[keys.jobs, keys.active_jobs, keys.dead, keys.stats],
            args=[
                keys.prefix,
                repr(self.clock()),
                consumer,
                count,
                cfg.max_deliveries,
                self._judge_after_ms,
                "1" if cfg.reclaim_by_liveness else "0",
                self._stuck,
            ],
        )
        out = self._claimed_rows(rows, consumer)
        for claimed in out:
            log.warning(
                "took over job %s from a stopped worker (delivery %d)",
                claimed.job.id,
                claimed.deliveries,
            )
        return out

    async def _reclaim_idle(self, consumer: str, count: int) -> list[ClaimedJob]:
        cfg, keys = self.config, self.keys
        out: list[ClaimedJob] = []
        # Scan until `count` jobs are in hand or one full pass over the pending list is done
        # (a pass ends when the cursor comes back to 0-0; starting mid-list takes two).
        mid_pass = self._reclaim_cursor != "0-0"
        for _ in range(1000):
            reply = await self._reclaim(
                keys=[keys.jobs, keys.active_jobs, keys.dead, keys.stats],
                args=[
                    keys.prefix,
                    repr(self.clock()),
                    consumer,
                    int(cfg.stuck_min_s * 1000),
                    self._reclaim_cursor,
                    count - len(out),
                    cfg.max_deliveries,
                    self._stuck,
                ],
            )
            self._reclaim_cursor = text(reply[0])
            for claimed in self._claimed_rows(reply[1], consumer):
                log.warning(
                    "took over job %s, held past its stuck bound (delivery %d)",
                    claimed.job.id,
                    claimed.deliveries,
                )
                out.append(claimed)
            if len(out) >= count:
                break
            if self._reclaim_cursor == "0-0":
                if not mid_pass:
                    break
                mid_pass = False
        return out

    async def _maybe_maintain(self) -> None:
        now = self.clock()
        if now - self._last_maintenance < self.config.maintenance_interval_s:
            return
        self._last_maintenance = now
        await upkeep.maintain(self)

    # --- finishing -------------------------------------------------------------------

    async def complete(self, claimed: ClaimedJob, result: JobResult) -> bool:
        """Store the result, mark the job DONE and publish its outcome, all at once.
        Idempotent: False (and nothing published) when the job had already ended, was
        cancelled (the result is discarded) or forgotten."""
        return (await self.finish_many([(claimed, result)]))[0]

    async def fail(self, claimed: ClaimedJob, reason: FailureReason) -> bool:
        """Mark the job FAILED with `reason` and publish the outcome; same bookkeeping and
        idempotence as `complete`."""
        return (await self.finish_many([(claimed, reason)]))[0]

    async def finish_many(
        self,
        items: Sequence[tuple[ClaimedJob, JobResult | FailureReason]],
        *,
        seconds_per_job: float | None = None,
    ) -> list[bool]:
        """`complete` (with a JobResult) or `fail` (with a FailureReason) several jobs in one
        script call, each job on its own (one that had already ended is only acknowledged;
        one whose delivery another worker took over since is left alone: 'stale'); with
        `seconds_per_job`, also fold the batch's per-job duration into the ETA average and
        its styles' averages (as `record_duration`; not when no job was recorded). True for
        each job recorded."""
        if not items:
            return []
        keys = self.keys
        job_keys = [keys.jobs, keys.active_jobs, keys.stats]
        jobs: list[list[str]] = []
        values: list[str | bytes] = []
        for claimed, outcome in items:
            if isinstance(outcome, JobResult):
                status, reason = JobStatus.DONE, None
                fields = outcome.to_fields()
            else:
                status, reason, fields = JobStatus.FAILED, outcome, {}
            job_id = claimed.job.id
            job_keys += [keys.job(job_id), keys.selfie(job_id), keys.result(job_id)]
            jobs.append(
                [
                    job_id,
                    claimed.entry_id,
                    claimed.consumer,
                    str(claimed.deliveries),
                    status.value,
                    reason.value if reason else "",
                    "1" if reason in REFUNDED else "0",
                    *fields,
                ]
            )
            values += fields.values()
        batch = {
            "now": repr(self.clock()),
            "result_ttl": str(self.config.result_ttl_s),
            "seconds": "" if seconds_per_job is None else repr(seconds_per_job),
            "alpha": repr(EWMA_ALPHA),
            "stats_ttl": str(STATS_TTL_S),
            "jobs": jobs,
        }
        reply = await self._finish(keys=job_keys, args=[keys.prefix, json.dumps(batch), *values])
        return self._recorded(items, json.loads(reply))

    @staticmethod
    def _recorded(
        items: Sequence[tuple[ClaimedJob, JobResult | FailureReason]], verdicts: list[str]
    ) -> list[bool]:
        out = []
        for (claimed, outcome), verdict in zip(items, verdicts, strict=True):
            if verdict != "ok":
                what = "result" if isinstance(outcome, JobResult) else outcome.value
                log.info("job %s: %s not recorded (%s)", claimed.job.id, what, verdict)
            out.append(verdict == "ok")
        return out

    async def set_progress(self, job_id: str, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        await self._progress(keys=[self.keys.job(job_id)], args=[repr(round(fraction, 4))])

    async def record_duration(self, seconds: float, style_id: str | None = None) -> float:
        """Fold one job's duration into the EWMA used for ETAs (and, with `style_id`, into
        that style's, which sets its jobs' stuck bounds); returns the new average."""
        args: list[object] = [repr(seconds), EWMA_ALPHA, STATS_TTL_S]
        if style_id is not None:
            args.append(style_id)
        avg = await self._duration(keys=[self.keys.stats], args=args)
        return float(avg)

    # --- stopping --------------------------------------------------------------------

    async def hand_back(self, consumer: str, jobs: Sequence[ClaimedJob]) -> int:
        """Give back jobs `consumer` claimed and will not start (it is stopping): queued
        again, taken at once by a living worker (the hand-back consumer is never alive),
        with no delivery counted against them. Returns how many were handed back."""
        if not jobs:
            return 0
        handed = await self._hand_back(
            keys=[self.keys.jobs, *(self.keys.job(c.job.id) for c in jobs)],
            args=[consumer, *(c.entry_id for c in jobs)],
        )
        return int(handed)

    # --- registration ----------------------------------------------------------------

    async def register_worker(self, consumer: str, ttl_s: float) -> None:
        """Count a worker as live (ETAs, stats) until now + ttl_s. A running worker's
        `WorkerLiveness` does this with its liveness record; this alone is no record."""
        now = self.clock()
        workers = self.keys.workers
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(workers, {consumer: now + ttl_s})
            pipe.zremrangebyscore(workers, "-inf", now)
            pipe.expire(workers, max(int(ttl_s) + 1, 60))
            await pipe.execute()

    async def unregister_worker(self, consumer: str) -> None:
        """A worker stopping cleanly: delete its liveness record (so whatever it still holds
        goes to the living at once) and its registration, and drop its consumer if nothing
        is pending."""
        await self.redis.delete(self.keys.alive(consumer))
        await self.redis.zrem(self.keys.workers, consumer)
        info = await self.redis.xpending_range(
            self.keys.jobs, JOBS_GROUP, "-", "+", 1, consumername=consumer
        )
        if not info:
            await self.redis.xgroup_delconsumer(self.keys.jobs, JOBS_GROUP, consumer)
