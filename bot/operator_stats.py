"""What `/stats` and `avatarbot admin stats` report: the queue now, and today's work.

"Today" is the UTC day. Today's numbers come from the job records themselves (a SCAN over
`{prefix}:job:*`, pipelined reads), so every job counts whoever enqueued it (a chat, the
web, `avatarbot submit`) and nothing extra is written per job. Two limits follow: a job
forgotten with /forgetme no longer counts, and jobs older than `AVATARBOT_JOB_TTL_S` are
gone (the default, a day, covers today). The scan reads every job record still kept: it is
for an operator's occasional look, not for a dashboard polling every second.

- avatars: jobs DONE today; failures: jobs FAILED or DEAD today (cancellations are
  neither);
- time to avatar: p50 of (finished - created) over today's avatars;
- likeness: the median score of today's avatars where the worker measured likeness
  (`likeness_median`); None when no result carries a likeness.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from bot.jobs import JobStatus
from bot.queue import DAY_S, QueueAdmin

BATCH = 500


@dataclass(frozen=True)
class DayStats:
    avatars: int
    failures: int
    p50_time_to_avatar_s: float | None
    likeness_median: float | None


@dataclass(frozen=True)
class StatsReport:
    queued: int
    running: int
    workers: int
    today: DayStats


async def collect(queue: QueueAdmin, *, now: float | None = None) -> StatsReport:
    """The queue's numbers now and today's totals."""
    at = time.time() if now is None else now
    try:
        current = await queue.stats()
    except ResponseError as exc:  # no jobs stream yet (nothing ever ran on this Redis)
        if "NOGROUP" not in str(exc):
            raise
        await queue.ensure_groups()
        current = await queue.stats()
    return StatsReport(
        queued=current.depth,
        running=current.running,
        workers=current.live_workers,
        today=await day_stats(queue, since=at - at % DAY_S),
    )


async def day_stats(queue: QueueAdmin, *, since: float) -> DayStats:
    """Totals over the jobs that finished at or after `since` (epoch seconds)."""
    avatars: list[tuple[str, float]] = []
    failures = 0
    prefix = queue.keys.job("")
    keys: list[bytes | str] = []
    async for key in queue.redis.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
        keys.append(key)
        if len(keys) >= BATCH:
            failures += await _tally(queue, keys, prefix, since, avatars)
            keys = []
    failures += await _tally(queue, keys, prefix, since, avatars)
    durations = [seconds for _job_id, seconds in avatars]
    return DayStats(
        avatars=len(avatars),
        failures=failures,
        p50_time_to_avatar_s=statistics.median(durations) if durations else None,
        likeness_median=await _likeness(queue, [job_id for job_id, _s in avatars]),
    )


async def _tally(
    queue: QueueAdmin,
    keys: Sequence[bytes | str],
    prefix: str,
    since: float,
    avatars: list[tuple[str, float]],
) -> int:
    """Add this batch's avatars (job id, seconds) to `avatars`; return its failures."""
    if not keys:
        return 0
    async with queue.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, ["status", "created_at", "finished_at"])
        rows = await pipe.execute()
    failures = 0
    for key, (status, created, finished) in zip(keys, rows, strict=True):
        if status is None or finished is None or float(finished) < since:
            continue
        state = _text(status)
        if state == JobStatus.DONE.value and created is not None:
            job_id = _text(key)[len(prefix) :]
            avatars.append((job_id, max(0.0, float(finished) - float(created))))
        elif state in (JobStatus.FAILED.value, JobStatus.DEAD.value):
            failures += 1
    return failures


async def _likeness(queue: QueueAdmin, job_ids: Sequence[str]) -> float | None:
    headers: list[Mapping[str, Any]] = []
    for i in range(0, len(job_ids), BATCH):
        async with queue.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids[i : i + BATCH]:
                pipe.hget(queue.keys.result(job_id), "header")
            for raw in await pipe.execute():
                if raw is not None:
                    headers.append(json.loads(raw))
    return likeness_median(headers)


def likeness_median(headers: Iterable[Mapping[str, Any]]) -> float | None:
    """The hook for likeness in /stats: the median likeness score (0..1) of the images in
    these result headers, read from `images[i].likeness.score` where a worker that
    measures likeness wrote it. None when no image carries a score (likeness not measured
    on this deployment, or no avatar today)."""
    scores = []
    for header in headers:
        for image in header.get("images", []):
            likeness = image.get("likeness") if isinstance(image, Mapping) else None
            score = likeness.get("score") if isinstance(likeness, Mapping) else None
            if isinstance(score, int | float):
                scores.append(float(score))
    return statistics.median(scores) if scores else None


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
