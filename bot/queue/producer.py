"""The bot's side of the queue before delivery: submit a job, follow it, cancel it, and
forget a user."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from bot.jobs import Job, JobRequest, JobResult, Owner
from bot.queue.client import Clock, QueueClient, job_or_none, text
from bot.queue.config import QueueConfig
from bot.queue.errors import QueueFullError, QuotaExceededError, UserBusyError
from bot.queue.keys import DAY_S

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """Where a job stands: `position` counts it and the jobs ahead (0 once it ended)."""

    job: Job
    position: int
    eta_s: float


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


class JobProducer(QueueClient):
    """Jobs in: what a bot (the conversation, the status tracker, `avatarbot submit`) asks
    of the queue about the jobs it submits."""

    def __init__(
        self, redis: aioredis.Redis, config: QueueConfig, *, clock: Clock = time.time
    ) -> None:
        super().__init__(redis, config, clock=clock)
        self._enqueue = self._script("enqueue")
        self._cancel = self._script("cancel")
        self._forget = self._script("forget")

    async def enqueue(
        self, request: JobRequest, selfie_jpeg: bytes, *, quota: int | None = None
    ) -> Receipt:
        """Queue a job. Raises UserBusyError, QueueFullError or QuotaExceededError; all
        checks and writes happen in one atomic script. `quota`: the user's daily quota
        when an admin set one (`bot.quotas`), else `daily_quota`."""
        now = self.clock()
        job = Job.from_request(request, created_at=now)
        cfg, keys, owner = self.config, self.keys, request.owner
        limit = cfg.daily_quota if quota is None else quota
        meta = {
            "id": job.id,
            "now": repr(now),
            "cap": str(cfg.queue_cap),
            "quota": str(limit),
            "quota_ttl": str(int(DAY_S - now % DAY_S) + 60),
            "selfie_ttl": str(cfg.selfie_ttl_s),
            "job_ttl": str(cfg.job_ttl_s),
            "index_ttl": str(max(cfg.job_ttl_s, cfg.result_ttl_s, cfg.selfie_ttl_s)),
            "owner_key": owner.key,
            "bot": request.route.bot,
            "fields": [x for pair in job.to_fields().items() for x in pair],
        }
        reply = json.loads(
            await self._enqueue(
                keys=[
                    keys.jobs,
                    keys.active_jobs,
                    keys.job(job.id),
                    keys.selfie(job.id),
                    keys.slot(owner),
                    keys.user_jobs(owner),
                    keys.quota(owner, now),
                    keys.stats,
                    keys.workers,
                ],
                args=[keys.prefix, json.dumps(meta), selfie_jpeg],
            )
        )
        verdict = reply[0]
        if verdict == "busy":
            raise UserBusyError(str(reply[1]))
        if verdict == "full":
            raise QueueFullError(cfg.queue_cap)
        if verdict == "quota":
            raise QuotaExceededError(limit, DAY_S - now % DAY_S)
        position = int(reply[2]) + 1
        log.info("job %s queued (style %s, position %d)", job.id, job.style_id, position)
        avg = float(reply[3]) if reply[3] else None
        return Receipt(job=job, position=position, eta_s=self._eta_from(position, avg, reply[4]))

    async def status(self, job_id: str) -> Receipt | None:
        """The job with a fresh position and ETA (position 0 and ETA 0 once it ended)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.job(job_id))
            pipe.zrank(self.keys.active_jobs, job_id)
            raw, rank = await pipe.execute()
        job = job_or_none(raw)
        if job is None:
            return None
        if job.status.final or rank is None:
            return Receipt(job=job, position=0, eta_s=0.0)
        position = int(rank) + 1
        return Receipt(job=job, position=position, eta_s=await self._eta(position))

    async def _eta(self, position: int) -> float:
        now = self.clock()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.stats, "avg_job_s")
            pipe.zcount(self.keys.workers, now, "+inf")
            avg_raw, workers = await pipe.execute()
        return self._eta_from(position, float(avg_raw) if avg_raw is not None else None, workers)

    def _eta_from(self, position: int, avg_job_s: float | None, workers: object) -> float:
        """Jobs ahead (this one included) times the average job time, shared by the live
        workers; before any job was timed, `default_job_s` stands in."""
        avg = avg_job_s if avg_job_s is not None else self.config.default_job_s
        return position * avg / max(1, int(str(workers)))

    async def active_job(self, owner: Owner) -> Job | None:
        job_id = await self.redis.get(self.keys.slot(owner))
        if job_id is None:
            return None
        job = await self.get_job(text(job_id))
        return None if job is None or job.status.final else job

    async def get_result(self, job_id: str) -> JobResult | None:
        raw: Any = await self.redis.hgetall(self.keys.result(job_id))
        return JobResult.from_fields(raw) if raw else None

    async def cancel(self, job_id: str, owner: Owner) -> bool:
        """Cancel the owner's job. A queued job is removed at once and never generated; a
        running one is marked, its result discarded when the worker finishes. Either way
        the user's slot is freed and the selfie deleted now. False when the job is unknown,
        not the owner's, or already ended."""
        keys = self.keys
        reply = text(
            await self._cancel(
                keys=[keys.jobs, keys.active_jobs, keys.job(job_id), keys.selfie(job_id)],
                args=[keys.prefix, job_id, owner.key, repr(self.clock())],
            )
        )
        if reply.startswith("cancelled"):
            log.info("job %s cancelled by its owner (%s)", job_id, reply)
            return True
        return False

    async def user_job_ids(self, owner: Owner) -> list[str]:
        """The ids of `owner`'s jobs still known (from the per-user index)."""
        members = await self.redis.smembers(self.keys.user_jobs(owner))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def forget_user(self, owner: Owner) -> ForgetReceipt:
        """Delete every key about `owner`: jobs, selfies, results, outcomes waiting for
        delivery, dead letters, the active slot and the index. A queued job is cancelled
        (never generated); a running one finishes into the void (its worker finds the job
        gone and discards the result). The daily-quota counter stays: it is keyed by a
        hash, holds no identifier in clear and expires within a day, and keeping it means
        forgetting yourself cannot reset your quota."""
        now = self.clock()
        keys = self.keys
        counts = await self._forget(
            keys=[keys.user_jobs(owner), keys.slot(owner), keys.jobs, keys.active_jobs, keys.dead],
            args=[keys.prefix],
        )
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
