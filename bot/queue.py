"""The job queue: a thin, crash-safe layer on Redis Streams shared by bots and workers.

Keys (all under `{prefix}:`), and how each one ends:

- `jobs` — stream of job entries (`job_id` only), consumer group `workers` created at id 0
  with MKSTREAM by both sides. Entries are acknowledged *and deleted* when their job ends,
  so the stream holds only queued and in-flight jobs (never trimmed with MAXLEN, which can
  drop unacknowledged jobs). No TTL: it carries the consumer group.
- `job:{id}` — hash with the job's state (see `bot.jobs.Job`) plus bookkeeping fields
  (`owner_key`, `bot`, `entry`, `quota_key`, `outcome_entry`, `dead_entry`, `worker`,
  and `delivering`/`lease_until` while a bot holds the lease to deliver its outcome).
  TTL `job_ttl_s`.
- `selfie:{id}` — the selfie JPEG. TTL `selfie_ttl_s`; deleted as soon as the job ends
  (a dead-lettered job keeps it until the TTL, so an operator can retry it).
- `result:{id}` — hash with the result images. TTL `result_ttl_s`.
- `results:{bot}` — stream of outcomes for one bot deployment, consumer group `delivery`.
  Entries are deleted when delivered; each bot trims entries older than `job_ttl_s` (their
  jobs are gone). No TTL: it carries the consumer group.
- `dead` — stream of dead letters; trimmed by MINID age (`job_ttl_s`) on the reclaim timer.
  No TTL: an operator's inbox.
- `active:{owner}` — the user's one active job id. TTL `job_ttl_s`.
- `user:{owner}` — set of the user's job ids, so forgetting a user needs no SCAN.
  TTL: the longest retention, refreshed on every enqueue.
- `quota:{sha256}` — the user's daily counter, named by a hash of (prefix, user, UTC day).
  It is deliberately *not* in the user's index: forgetting yourself must not reset your
  quota. It holds no identifier in clear and expires at the end of its day (+1 min).
- `active_jobs` — sorted set of queued+running job ids in enqueue order (positions, cap).
  TTL `job_ttl_s`, refreshed on every enqueue; pruned of vanished jobs on the reclaim timer.
- `workers` — sorted set of live workers scored by expiry time (ETA, stats).
  TTL refreshed on every registration.
- `stats` — hash with the EWMA of the per-job duration (ETA). TTL 7 days, refreshed.

Guarantees: a job is generated at least once (a worker that dies leaves its entries
pending; `reclaim` hands them to another after `reclaim_idle_s`), at most
`max_deliveries` times (then it is dead-lettered and its user told), and its outcome is
published exactly once (the finishing script checks the job's state atomically).

Delivery to the user is effectively exactly once, with a lease: a bot process takes a
lease on an outcome ("delivering by consumer X until T", in the job hash, atomically:
while reading it, `read_outcomes(lease=True)`, or with `claim_delivery`), sends it, then
confirms (`confirm_delivery`: marks the job delivered, acknowledges and deletes the
results entry). A bot that dies before confirming leaves the
entry pending and its lease lapsing; another bot process (or the same bot restarted)
reclaims the entry after `reclaim_idle_s`, takes the lapsed lease and sends it. So no
outcome is lost, and a second send is possible only when a bot dies (or loses Redis for
longer than the lease) in the instant between a successful send and its confirm. A
sender renews its lease while a slow send runs (`DeliveryPump`). Lease times use each
bot's clock: keep the bots' clocks in sync (NTP), as any lease-based scheme needs.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from bot import queue_scripts as lua
from bot.errors import AvatarbotError
from bot.i18n import N_, ngettext
from bot.jobs import (
    FailureReason,
    Job,
    JobRequest,
    JobResult,
    JobStatus,
    Outcome,
    Owner,
)
from bot.redis_connection import MIN_VERSION, RedisTooOldError, parse_version

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], float]

DAY_S = 86_400
STATS_TTL_S = 7 * DAY_S
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


# --- errors --------------------------------------------------------------------------


class QueueError(AvatarbotError):
    """Root of the queue's errors."""


class QueueFullError(QueueError):
    """Too many jobs are queued or running."""

    user_text = N_("I'm very busy right now. Please try again in a few minutes.")

    def __init__(self, cap: int) -> None:
        super().__init__(f"queue is full ({cap} jobs)")
        self.cap = cap


class UserBusyError(QueueError):
    """The user already has a job queued or running (one at a time)."""

    user_text = N_("I'm still working on your previous avatar. Please wait for it (or cancel it).")

    def __init__(self, job_id: str) -> None:
        super().__init__(f"user already has active job {job_id}")
        self.job_id = job_id


class QuotaExceededError(QueueError):
    """The user has used their daily quota."""

    def __init__(self, limit: int, retry_after_s: float) -> None:
        super().__init__(f"daily quota of {limit} used; resets in {retry_after_s:.0f}s")
        self.limit = limit
        self.retry_after_s = retry_after_s

    def localized(self) -> str:
        hours = max(1, round(self.retry_after_s / 3600))
        made = ngettext(
            "You've made {limit} avatar today, the daily limit.",
            "You've made {limit} avatars today, the daily limit.",
            self.limit,
        ).format(limit=self.limit)
        wait = ngettext(
            "Try again in about {n} hour.", "Try again in about {n} hours.", hours
        ).format(n=hours)
        return " ".join((made, wait))


# --- values --------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueConfig:
    prefix: str = "avatarbot"
    queue_cap: int = 500
    daily_quota: int = 20
    max_deliveries: int = 3
    reclaim_idle_s: float = 30.0
    selfie_ttl_s: int = 3600
    result_ttl_s: int = DAY_S
    job_ttl_s: int = DAY_S
    default_job_s: float = 15.0
    """Per-job duration assumed for ETAs until workers have recorded some."""
    maintenance_interval_s: float = 60.0
    """How often the reclaim path trims dead letters and prunes indexes."""
    consumer_idle_s: float = 3600.0
    """A worker consumer with nothing pending and idle this long is removed from the group."""
    delivery_lease_s: float = 30.0
    """How long a bot's claim to deliver an outcome lasts unless renewed; after that (the
    bot died before confirming) another bot process may deliver it."""

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueConfig:
        return cls(
            prefix=settings.key_prefix,
            queue_cap=settings.queue_cap,
            daily_quota=settings.daily_quota,
            max_deliveries=settings.max_deliveries,
            reclaim_idle_s=settings.reclaim_idle_s,
            selfie_ttl_s=settings.selfie_ttl_s,
            result_ttl_s=settings.result_ttl_s,
            job_ttl_s=settings.job_ttl_s,
            maintenance_interval_s=max(settings.reclaim_interval_s, 60.0),
            delivery_lease_s=settings.reclaim_idle_s,
        )


@dataclass(frozen=True)
class Receipt:
    """Where a job stands: `position` counts it and the jobs ahead (0 once it ended)."""

    job: Job
    position: int
    eta_s: float


@dataclass(frozen=True)
class ClaimedJob:
    entry_id: str
    job: Job
    selfie_jpeg: bytes = field(repr=False)
    deliveries: int = 1
    """How many times the entry was handed to a worker; above 1 it is a suspect (the last
    worker died on it), and workers run it alone."""


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
    """What `JobQueue.claim_delivery` decided."""

    OK = "ok"
    """This consumer holds the lease: send, then confirm."""
    HELD = "held"
    """Another consumer's lease is live: it is delivering this outcome."""
    DONE = "done"
    """Nothing to deliver any more (delivered, vanished, moved on)."""


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    job_id: str
    deliveries: int
    dead_at: float
    job: Job | None

    def render(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.dead_at))
        style = self.job.style_id if self.job else "?"
        retryable = "" if self.job else " (job expired)"
        return (
            f"{self.entry_id}  job {self.job_id}  style {style}  "
            f"{self.deliveries} deliveries  dead since {when}Z{retryable}"
        )


@dataclass(frozen=True)
class QueueStats:
    depth: int
    """Jobs waiting for a worker."""
    running: int
    """Jobs handed to a worker and not yet finished."""
    pending: Mapping[str, int]
    """Running jobs per worker consumer."""
    oldest_age_s: float | None
    """Age of the oldest queued or running job."""
    dead_letters: int
    live_workers: int
    avg_job_s: float | None

    def render(self) -> str:
        lines = [
            f"queued:       {self.depth}",
            f"running:      {self.running}",
            f"oldest job:   {'-' if self.oldest_age_s is None else f'{self.oldest_age_s:.1f}s'}",
            f"live workers: {self.live_workers}",
            f"avg job:      {'-' if self.avg_job_s is None else f'{self.avg_job_s:.2f}s'}",
            f"dead letters: {self.dead_letters}",
        ]
        lines += [f"  {name}: {count} pending" for name, count in sorted(self.pending.items())]
        return "\n".join(lines)


@dataclass(frozen=True)
class ForgetReceipt:
    jobs: int
    selfies: int
    results: int
    queued_cancelled: int
    running_discarded: int
    outcomes: int
    dead_letters: int
    forgotten_at: float

    @property
    def total(self) -> int:
        return self.jobs + self.selfies + self.results + self.outcomes + self.dead_letters


# --- the queue -----------------------------------------------------------------------


class JobQueue:
    """Jobs in, outcomes out. One instance per process (it keeps reclaim cursors)."""

    def __init__(
        self, redis: aioredis.Redis, config: QueueConfig, *, clock: Clock = time.time
    ) -> None:
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("JobQueue needs a client with decode_responses=False (binary data)")
        self.redis = redis
        self.config = config
        self._clock = clock
        self._p = f"{config.prefix}:"
        self._jobs = self._p + "jobs"
        self._dead = self._p + "dead"
        self._active = self._p + "active_jobs"
        self._workers = self._p + "workers"
        self._stats = self._p + "stats"

        def s(source: str) -> _Script:
            return _Script(redis, source)

        self._enqueue = s(lua.ENQUEUE)
        self._claim = s(lua.CLAIM)
        self._start = s(lua.START)
        self._reclaim = s(lua.RECLAIM)
        self._heartbeat = s(lua.HEARTBEAT)
        self._finish = s(lua.FINISH)
        self._cancel = s(lua.CANCEL)
        self._mark = s(lua.MARK_DELIVERED)
        self._claim_delivery = s(lua.CLAIM_DELIVERY)
        self._confirm_delivery = s(lua.CONFIRM_DELIVERY)
        self._progress = s(lua.SET_PROGRESS)
        self._read_outcomes = s(lua.READ_OUTCOMES)
        self._duration = s(lua.RECORD_DURATION)
        self._forget = s(lua.FORGET)
        self._retry = s(lua.RETRY_DEAD)
        self._purge = s(lua.PURGE_DEAD)
        self._maintain = s(lua.MAINTAIN)
        self._reclaim_cursor = "0-0"
        self._outcome_cursors: dict[str, str] = {}
        self._pending_read: set[tuple[str, str]] = set()
        self._idle: set[tuple[str, str]] = set()
        """(stream, consumer) pairs whose last read found nothing: the next read blocks at
        once instead of first trying a read that would come back empty."""
        self._groups_ready: set[str] = set()
        self._last_maintenance = float("-inf")
        self._last_outcome_upkeep: dict[str, float] = {}
        self._last_outcome_reclaim: dict[str, float] = {}
        self._version_checked = False

    # --- keys ------------------------------------------------------------------------

    def job_key(self, job_id: str) -> str:
        return f"{self._p}job:{job_id}"

    def selfie_key(self, job_id: str) -> str:
        return f"{self._p}selfie:{job_id}"

    def result_key(self, job_id: str) -> str:
        return f"{self._p}result:{job_id}"

    def results_stream(self, bot: str) -> str:
        return f"{self._p}results:{bot}"

    def quota_key(self, owner: Owner, now: float) -> str:
        day = int(now // DAY_S)
        digest = hashlib.sha256(f"{self._p}|{owner.key}|{day}".encode()).hexdigest()[:32]
        return f"{self._p}quota:{digest}"

    # --- setup -----------------------------------------------------------------------

    async def server_version(self) -> tuple[int, int, int]:
        info = await self.redis.info("server")
        return parse_version(str(info.get("redis_version", "0")))

    async def check_server(self) -> None:
        """Raise RedisTooOldError below Redis 6.2 (XAUTOCLAIM); warn when AOF is off."""
        version = await self.server_version()
        if version < MIN_VERSION:
            raise RedisTooOldError(
                f"Redis {'.'.join(map(str, version))} is too old: the job queue needs "
                f">= {'.'.join(map(str, MIN_VERSION))} (XAUTOCLAIM)"
            )
        persistence = await self.redis.info("persistence")
        if str(persistence.get("aof_enabled", "1")) != "1":
            log.warning(
                "Redis runs without AOF (appendonly no): queued jobs may be lost if it "
                "restarts; set `appendonly yes` for at-least-once delivery"
            )
        self._version_checked = True

    async def ensure_groups(self, *bots: str) -> None:
        """Create the jobs group (and the results group of each bot named) at id 0 with
        MKSTREAM, so entries added before the group existed are still read."""
        if not self._version_checked:
            await self.check_server()
        await self._create_group(self._jobs, lua.JOBS_GROUP)
        for bot in bots:
            await self._create_group(self.results_stream(bot), lua.DELIVERY_GROUP)

    async def _create_group(self, stream: str, group: str) -> None:
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_ready.add(stream)

    # --- bots: submitting --------------------------------------------------------------

    async def enqueue(self, request: JobRequest, selfie_jpeg: bytes) -> Receipt:
        """Queue a job. Raises UserBusyError, QueueFullError or QuotaExceededError; all
        checks and writes happen in one atomic script."""
        now = self._clock()
        job = Job.from_request(request, created_at=now)
        cfg = self.config
        index_ttl = max(cfg.job_ttl_s, cfg.result_ttl_s, cfg.selfie_ttl_s)
        meta = {
            "id": job.id,
            "now": repr(now),
            "cap": str(cfg.queue_cap),
            "quota": str(cfg.daily_quota),
            "quota_ttl": str(int(DAY_S - now % DAY_S) + 60),
            "selfie_ttl": str(cfg.selfie_ttl_s),
            "job_ttl": str(cfg.job_ttl_s),
            "index_ttl": str(index_ttl),
            "owner_key": request.owner.key,
            "bot": request.route.bot,
            "quota_key": self.quota_key(request.owner, now),
            "fields": [x for pair in job.to_fields().items() for x in pair],
        }
        args = [self._p, json.dumps(meta), selfie_jpeg]
        reply = json.loads(await self._enqueue(keys=[], args=args))
        verdict = reply[0]
        if verdict == "busy":
            raise UserBusyError(str(reply[1]))
        if verdict == "full":
            raise QueueFullError(cfg.queue_cap)
        if verdict == "quota":
            raise QuotaExceededError(cfg.daily_quota, DAY_S - now % DAY_S)
        position = int(reply[2]) + 1
        log.info("job %s queued (style %s, position %d)", job.id, job.style_id, position)
        avg = float(reply[3]) if reply[3] else None
        return Receipt(job=job, position=position, eta_s=self._eta_from(position, avg, reply[4]))

    async def get_job(self, job_id: str) -> Job | None:
        raw: Any = await self.redis.hgetall(self.job_key(job_id))
        return _job_or_none(raw)

    async def status(self, job_id: str) -> Receipt | None:
        """The job with a fresh position and ETA (position 0 and ETA 0 once it ended)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.job_key(job_id))
            pipe.zrank(self._active, job_id)
            raw, rank = await pipe.execute()
        job = _job_or_none(raw)
        if job is None:
            return None
        if job.status.final or rank is None:
            return Receipt(job=job, position=0, eta_s=0.0)
        position = int(rank) + 1
        return Receipt(job=job, position=position, eta_s=await self._eta(position))

    async def _eta(self, position: int) -> float:
        now = self._clock()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._stats, "avg_job_s")
            pipe.zcount(self._workers, now, "+inf")
            avg_raw, workers = await pipe.execute()
        return self._eta_from(position, float(avg_raw) if avg_raw is not None else None, workers)

    def _eta_from(self, position: int, avg_job_s: float | None, workers: object) -> float:
        """Jobs ahead (this one included) times the average job time, shared by the live
        workers; before any job was timed, `default_job_s` stands in."""
        avg = avg_job_s if avg_job_s is not None else self.config.default_job_s
        return position * avg / max(1, int(str(workers)))

    async def active_job(self, owner: Owner) -> Job | None:
        job_id = await self.redis.get(f"{self._p}active:{owner.key}")
        if job_id is None:
            return None
        job = await self.get_job(_text(job_id))
        return None if job is None or job.status.final else job

    async def cancel(self, job_id: str, owner: Owner) -> bool:
        """Cancel the owner's job. A queued job is removed at once and never generated; a
        running one is marked, its result discarded when the worker finishes. Either way
        the user's slot is freed and the selfie deleted now. False when the job is unknown,
        not the owner's, or already ended."""
        reply = _text(
            await self._cancel(keys=[], args=[self._p, job_id, owner.key, repr(self._clock())])
        )
        if reply.startswith("cancelled"):
            log.info("job %s cancelled by its owner (%s)", job_id, reply)
            return True
        return False

    # --- workers -------------------------------------------------------------------------

    async def claim(self, consumer: str, count: int, block_ms: int) -> list[ClaimedJob]:
        """New jobs for `consumer` (XREADGROUP >), marked running. Cancelled or vanished
        jobs are acknowledged and skipped; a job whose selfie expired fails at once
        (SELFIE_EXPIRED, its user is told).

        While jobs keep coming, one script reads and starts them in one round trip; when it
        finds none (and after a read that found none), a blocking XREADGROUP waits up to
        `block_ms` and a second script starts what it got."""
        idle_key = (self._jobs, consumer)
        try:
            if idle_key not in self._idle:
                rows = await self._claim(
                    keys=[], args=[self._p, repr(self._clock()), consumer, count]
                )
                if rows:
                    return self._claimed_rows(rows)
            reply: Any = await self.redis.xreadgroup(
                lua.JOBS_GROUP, consumer, {self._jobs: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("jobs consumer group missing (Redis lost its data?); recreating it")
            await self._create_group(self._jobs, lua.JOBS_GROUP)
            return []
        pairs: list[str | bytes] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                job_id = fields.get(b"job_id")
                if job_id is None:
                    await self.redis.xack(self._jobs, lua.JOBS_GROUP, entry_id)
                    await self.redis.xdel(self._jobs, entry_id)
                    continue
                pairs += [entry_id, job_id]
        if reply:
            self._idle.discard(idle_key)
        else:
            self._idle.add(idle_key)
        if not pairs:
            return []
        rows = await self._start(keys=[], args=[self._p, repr(self._clock()), consumer, *pairs])
        return self._claimed_rows(rows)

    async def reclaim(self, consumer: str, count: int) -> list[ClaimedJob]:
        """Take over up to `count` entries idle longer than `reclaim_idle_s` (their worker
        died): XAUTOCLAIM with a cursor kept between calls, delivery counts from XPENDING.
        A job delivered more than `max_deliveries` times is dead-lettered instead (status
        DEAD, outcome published so its user is told). Also runs housekeeping on its timer."""
        await self._maybe_maintain()
        cfg = self.config
        out: list[ClaimedJob] = []
        # Scan until `count` jobs are in hand or one full pass over the pending list is done
        # (a pass ends when the cursor comes back to 0-0; starting mid-list takes two).
        mid_pass = self._reclaim_cursor != "0-0"
        for _ in range(1000):
            reply = await self._reclaim(
                keys=[],
                args=[
                    self._p,
                    repr(self._clock()),
                    consumer,
                    int(cfg.reclaim_idle_s * 1000),
                    self._reclaim_cursor,
                    count - len(out),
                    cfg.max_deliveries,
                ],
            )
            self._reclaim_cursor = _text(reply[0])
            for claimed in self._claimed_rows(reply[1]):
                log.warning("reclaimed job %s (delivery %d)", claimed.job.id, claimed.deliveries)
                out.append(claimed)
            if len(out) >= count:
                break
            if self._reclaim_cursor == "0-0":
                if not mid_pass:
                    break
                mid_pass = False
        return out

    def _claimed_rows(self, rows: Sequence[bytes]) -> list[ClaimedJob]:
        """The jobs handed over in a START/CLAIM/RECLAIM reply: two items per stream entry,
        a JSON header [entry, verdict, job id, deliveries, job hash] and the selfie."""
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
                    )
                )
            elif verdict == "dead":
                log.warning("job %s dead-lettered after %d deliveries", job_id, deliveries)
            elif verdict == "expired":
                log.warning("job %s failed: its selfie expired before a worker got to it", job_id)
            else:
                log.info("skipped job %s (%s)", job_id, verdict)
        return out

    async def heartbeat(self, consumer: str, entry_ids: Sequence[str]) -> list[str]:
        """Keep in-flight entries from being reclaimed (XCLAIM ... JUSTID to ourselves).
        Only entries `consumer` still owns are touched; returns those another took."""
        if not entry_ids:
            return []
        lost = await self._heartbeat(keys=[], args=[self._p, consumer, *entry_ids])
        return [_text(x) for x in lost]

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
        script call, each job on its own (one that had already ended is only acknowledged);
        with `seconds_per_job`, also fold the batch's per-job duration into the ETA average
        (as `record_duration`; not when no job was recorded). True for each job recorded."""
        if not items:
            return []
        jobs: list[list[str]] = []
        values: list[str | bytes] = []
        for claimed, outcome in items:
            if isinstance(outcome, JobResult):
                status, reason = JobStatus.DONE, None
                fields = outcome.to_fields()
            else:
                status, reason, fields = JobStatus.FAILED, outcome, {}
            jobs.append(
                [
                    claimed.job.id,
                    claimed.entry_id,
                    status.value,
                    reason.value if reason else "",
                    "1" if reason in REFUNDED else "0",
                    *fields,
                ]
            )
            values += fields.values()
        batch = {
            "now": repr(self._clock()),
            "result_ttl": str(self.config.result_ttl_s),
            "seconds": "" if seconds_per_job is None else repr(seconds_per_job),
            "alpha": repr(EWMA_ALPHA),
            "stats_ttl": str(STATS_TTL_S),
            "jobs": jobs,
        }
        reply = await self._finish(keys=[], args=[self._p, json.dumps(batch), *values])
        verdicts = []
        for (claimed, outcome), verdict in zip(items, json.loads(reply), strict=True):
            if verdict != "ok":
                what = "result" if isinstance(outcome, JobResult) else outcome.value
                log.info("job %s: %s not recorded (%s)", claimed.job.id, what, verdict)
            verdicts.append(verdict == "ok")
        return verdicts

    async def set_progress(self, job_id: str, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        await self._progress(keys=[], args=[self._p, job_id, repr(round(fraction, 4))])

    async def record_duration(self, seconds: float) -> float:
        """Fold one job's duration into the EWMA used for ETAs; returns the new average."""
        avg = await self._duration(keys=[], args=[self._p, repr(seconds), EWMA_ALPHA, STATS_TTL_S])
        return float(avg)

    async def register_worker(self, consumer: str, ttl_s: float) -> None:
        """Announce a live worker until now + ttl_s (call again before it lapses)."""
        now = self._clock()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._workers, {consumer: now + ttl_s})
            pipe.zremrangebyscore(self._workers, "-inf", now)
            pipe.expire(self._workers, max(int(ttl_s) + 1, 60))
            await pipe.execute()

    async def unregister_worker(self, consumer: str) -> None:
        """A worker stopping cleanly: forget it, and drop its consumer if nothing is pending."""
        await self.redis.zrem(self._workers, consumer)
        info = await self.redis.xpending_range(
            self._jobs, lua.JOBS_GROUP, "-", "+", 1, consumername=consumer
        )
        if not info:
            await self.redis.xgroup_delconsumer(self._jobs, lua.JOBS_GROUP, consumer)

    async def _maybe_maintain(self) -> None:
        now = self._clock()
        if now - self._last_maintenance < self.config.maintenance_interval_s:
            return
        self._last_maintenance = now
        await self.maintain()

    async def maintain(self) -> tuple[int, int, int, int]:
        """Trim dead letters older than `job_ttl_s`, prune the active index and the worker
        registry, drop idle worker consumers with nothing pending. Returns the counts."""
        now = self._clock()
        min_id = f"{int((now - self.config.job_ttl_s) * 1000)}-0"
        trimmed, pruned, workers = await self._maintain(
            keys=[], args=[self._p, repr(now), min_id, 10_000]
        )
        consumers = 0
        for info in await self.redis.xinfo_consumers(self._jobs, lua.JOBS_GROUP):
            idle_ms = int(info.get("idle", 0))
            if int(info.get("pending", 0)) == 0 and idle_ms > self.config.consumer_idle_s * 1000:
                await self.redis.xgroup_delconsumer(self._jobs, lua.JOBS_GROUP, info["name"])
                consumers += 1
        orphans = await self.sweep_orphaned_selfies()
        if trimmed or pruned or workers or consumers or orphans:
            log.info(
                "queue upkeep: %d dead letters trimmed, %d index entries pruned, "
                "%d workers expired, %d idle consumers removed, %d orphaned selfies deleted",
                trimmed,
                pruned,
                workers,
                consumers,
                orphans,
            )
        return int(trimmed), int(pruned), int(workers), consumers

    async def sweep_orphaned_selfies(self) -> int:
        """Delete selfie copies that no job needs any more: their job vanished or ended
        (a dead-lettered job keeps its selfie for a retry until the selfie's TTL). Runs with
        the periodic upkeep, so a crash between a job's end and its cleanup never leaves a
        selfie behind for longer than one upkeep interval. Returns how many were deleted."""
        prefix = self.selfie_key("")
        deleted = 0
        async for key in self.redis.scan_iter(match=f"{prefix}*", count=500):
            name = key.decode() if isinstance(key, bytes) else str(key)
            job_id = name[len(prefix) :]
            status = await self.redis.hget(self.job_key(job_id), "status")
            if status is not None:
                state = JobStatus(status.decode() if isinstance(status, bytes) else status)
                if not state.final or state is JobStatus.DEAD:
                    continue
            deleted += await self.redis.delete(name)
        if deleted:
            log.warning("deleted %d orphaned selfie(s): their jobs had ended", deleted)
        return deleted

    # --- bots: delivering ----------------------------------------------------------------

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
        stream = self.results_stream(bot)
        if stream not in self._groups_ready:
            await self._create_group(stream, lua.DELIVERY_GROUP)
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
        if not seen and idle_key not in self._idle:
            seen, out = await self._fetch_outcomes(bot, consumer, lease, "read", count, ">")
        if not seen:
            entries = await self._xreadgroup(stream, consumer, ">", count, block_ms)
            if entries:
                self._idle.discard(idle_key)
                given: list[str | bytes] = []
                for eid, fields in entries:
                    outcome = Outcome.from_fields(fields)
                    failure = outcome.failure.value if outcome.failure else ""
                    given += [eid, outcome.job_id, outcome.status.value, failure]
                _seen, out = await self._fetch_outcomes(bot, consumer, lease, "given", *given)
            else:
                self._idle.add(idle_key)
        return out

    def holds_lease(self, delivery: Delivery) -> bool:
        """True when `delivery` was read with a lease (`read_outcomes(lease=True)`) that
        has at least two thirds of its length left: time enough to start sending before
        a sender's first renewal (`DeliveryPump` renews every third), so `claim_delivery`
        can be skipped."""
        if delivery.lease_until is None:
            return False
        left = delivery.lease_until - self._clock()
        return left > self.config.delivery_lease_s * 2 / 3

    async def _fetch_outcomes(
        self, bot: str, consumer: str, lease: bool, mode: str, *args: str | bytes | int
    ) -> tuple[int, list[Delivery]]:
        """Run READ_OUTCOMES; returns (entries seen, deliveries)."""
        now = self._clock()
        lease_s = self.config.delivery_lease_s
        try:
            reply = await self._read_outcomes(
                keys=[],
                args=[
                    self._p,
                    bot,
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
            await self._create_group(self.results_stream(bot), lua.DELIVERY_GROUP)
            return 0, []
        if mode == "claim":
            self._outcome_cursors[bot] = _text(reply[0])
        out: list[Delivery] = []
        stale: list[str] = []
        i = 2
        while i < len(reply):
            entry_id, outcome_fields, job_fields, names = json.loads(reply[i])
            values = reply[i + 1 : i + 1 + len(names)]
            i += 1 + len(names)
            outcome = Outcome.from_fields(outcome_fields)
            job = _job_or_none(job_fields)
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
                    lease_until=now + lease_s if lease else None,
                )
            )
        if stale:  # malformed job records: nothing can be delivered from them
            stream = self.results_stream(bot)
            await self.redis.xack(stream, lua.DELIVERY_GROUP, *stale)
            await self.redis.xdel(stream, *stale)
        return int(reply[1]), out

    def _outcome_reclaim_due(self, bot: str) -> bool:
        """Entries of dead bot consumers are looked for at most every reclaim_idle_s / 2
        (and once per full pass of the cursor), not on every read."""
        now = self._clock()
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
                lua.DELIVERY_GROUP, consumer, {stream: since}, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._create_group(stream, lua.DELIVERY_GROUP)
            return []
        out: list[tuple[bytes, dict[bytes, bytes]]] = []
        for _name, items in reply or []:
            for eid, fields in items:
                if fields:
                    out.append((eid, fields))
                else:  # a pending entry deleted meanwhile: drop it from our pending list
                    await self.redis.xack(stream, lua.DELIVERY_GROUP, eid)
        return out

    async def _outcome_upkeep(self, bot: str) -> None:
        now = self._clock()
        if now - self._last_outcome_upkeep.get(bot, float("-inf")) < 60.0:
            return
        self._last_outcome_upkeep[bot] = now
        min_id = f"{int((now - self.config.job_ttl_s) * 1000)}-0"
        await self.redis.xtrim(self.results_stream(bot), minid=min_id)

    async def claim_delivery(self, bot: str, delivery: Delivery, consumer: str) -> DeliveryClaim:
        """Take (or renew) the lease to deliver `delivery` as `consumer`, for
        `delivery_lease_s`. OK: send it, then `confirm_delivery`. HELD: another bot process
        is delivering it right now; leave it. DONE: nothing to deliver (already delivered,
        the job vanished or moved on); the entry was acknowledged and deleted."""
        reply = await self._claim_delivery(
            keys=[],
            args=[
                *self._delivery_args(bot, delivery),
                consumer,
                repr(self._clock()),
                repr(self.config.delivery_lease_s),
            ],
        )
        return DeliveryClaim(_text(reply))

    async def confirm_delivery(self, bot: str, delivery: Delivery, *, sent: bool = True) -> bool:
        """End a delivery claimed with `claim_delivery`: acknowledge and delete the entry,
        drop the lease and (when `sent`) mark the job delivered. `sent=False` gives the
        delivery up (the user cannot be reached); the result stays until `result_ttl_s`.
        True when this call marked the job delivered; False when it already was (a
        duplicate send happened), vanished, moved on, or was given up."""
        reply = await self._confirm_delivery(
            keys=[], args=[*self._delivery_args(bot, delivery), "1" if sent else "0"]
        )
        return bool(int(reply))

    async def mark_delivered(self, bot: str, delivery: Delivery, consumer: str = "") -> bool:
        """Claim and confirm in one step, for one-shot readers (`avatarbot submit --wait`,
        tests): True exactly once per job outcome. The price is at most once (a reader
        that dies right after this call loses that message; the result stays in Redis for
        `result_ttl_s`), so long-running bots use `claim_delivery` + `confirm_delivery`.
        A live lease held by another consumer wins: False, and the entry is left to it."""
        reply = await self._mark(
            keys=[],
            args=[*self._delivery_args(bot, delivery), consumer, repr(self._clock())],
        )
        return bool(int(reply))

    def _delivery_args(self, bot: str, delivery: Delivery) -> list[str]:
        return [
            self._p,
            bot,
            delivery.entry_id,
            delivery.outcome.job_id,
            delivery.outcome.status.value,
        ]

    async def already_delivered(self, job_id: str) -> bool:
        return await self.redis.hget(self.job_key(job_id), "delivered") == b"1"

    async def get_result(self, job_id: str) -> JobResult | None:
        raw: Any = await self.redis.hgetall(self.result_key(job_id))
        return JobResult.from_fields(raw) if raw else None

    async def drop_results_stream(self, bot: str) -> None:
        """Delete a bot's results stream and group (one-off bots such as `avatarbot submit`)."""
        stream = self.results_stream(bot)
        await self.redis.delete(stream)
        self._groups_ready.discard(stream)
        self._pending_read = {k for k in self._pending_read if k[0] != bot}

    # --- operators -----------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        now = self._clock()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self._jobs)
            pipe.xpending(self._jobs, lua.JOBS_GROUP)
            pipe.xrange(self._jobs, "-", "+", count=1)
            pipe.xlen(self._dead)
            pipe.zcount(self._workers, now, "+inf")
            pipe.hget(self._stats, "avg_job_s")
            length, pending, first, dead, workers, avg = await pipe.execute()
        running = int(pending["pending"])
        per_consumer = {_text(c["name"]): int(c["pending"]) for c in pending["consumers"] or []}
        oldest = None
        if first:
            oldest = max(0.0, now - int(_text(first[0][0]).split("-")[0]) / 1000)
        return QueueStats(
            depth=max(0, int(length) - running),
            running=running,
            pending=per_consumer,
            oldest_age_s=oldest,
            dead_letters=int(dead),
            live_workers=int(workers),
            avg_job_s=float(avg) if avg is not None else None,
        )

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        entries: Any = await self.redis.xrange(self._dead, "-", "+", count=limit)
        out = []
        for eid, fields in entries:
            job_id = _text(fields[b"job_id"])
            out.append(
                DeadLetter(
                    entry_id=_text(eid),
                    job_id=job_id,
                    deliveries=int(fields.get(b"deliveries", b"0")),
                    dead_at=float(fields.get(b"dead_at", b"0")),
                    job=await self.get_job(job_id),
                )
            )
        return out

    async def retry_dead(self, entry_id: str | None = None) -> int:
        """Requeue one dead letter (or all, with None). A job whose hash or selfie expired
        cannot be retried; its dead letter is dropped. Returns how many were requeued."""
        if entry_id is None:
            everything: Any = await self.redis.xrange(self._dead, "-", "+")
            ids = [_text(e[0]) for e in everything]
        else:
            ids = [entry_id]
        if not ids:
            return 0
        requeued, dropped = await self._retry(
            keys=[], args=[self._p, repr(self._clock()), self.config.job_ttl_s, *ids]
        )
        if dropped:
            log.warning("%d dead letter(s) could not be retried (job or selfie expired)", dropped)
        return int(requeued)

    async def purge_dead(self) -> int:
        """Delete every dead letter (and the selfies kept for retrying them)."""
        return int(await self._purge(keys=[], args=[self._p]))

    # --- privacy -------------------------------------------------------------------------

    async def user_job_ids(self, owner: Owner) -> list[str]:
        """The ids of `owner`'s jobs still known (from the per-user index)."""
        members = await self.redis.smembers(f"{self._p}user:{owner.key}")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def forget_user(self, owner: Owner) -> ForgetReceipt:
        """Delete every key about `owner`: jobs, selfies, results, outcomes waiting for
        delivery, dead letters, the active slot and the index. A queued job is cancelled
        (never generated); a running one finishes into the void (its worker finds the job
        gone and discards the result). The daily-quota counter stays: it is keyed by a
        hash, holds no identifier in clear and expires within a day, and keeping it means
        forgetting yourself cannot reset your quota."""
        now = self._clock()
        counts = await self._forget(keys=[], args=[self._p, owner.key])
        jobs, selfies, results, queued, running, outcomes, dead = (int(c) for c in counts)
        log.info("forgot a user: %d jobs, %d selfies, %d results", jobs, selfies, results)
        return ForgetReceipt(
            jobs=jobs,
            selfies=selfies,
            results=results,
            queued_cancelled=queued,
            running_discarded=running,
            outcomes=outcomes,
            dead_letters=dead,
            forgotten_at=now,
        )


class _Script:
    """A Lua script run with EVALSHA, falling back to EVAL (which also caches it again)
    when the server lost its script cache (a restart). Calls EVALSHA directly rather than
    through redis-py's `Script` object: one script call per job makes the client's
    per-call work count."""

    def __init__(self, redis: aioredis.Redis, source: str) -> None:
        self._redis = redis
        self._source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, *, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self._redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._redis.eval(self._source, len(keys), *keys, *args)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _job_or_none(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> Job | None:
    if not raw:
        return None
    try:
        return Job.from_fields(raw)
    except ValueError:
        log.warning("ignoring a malformed job record")
        return None
