"""The queue's housekeeping: every worker runs it on its reclaim timer (at most every
`maintenance_interval_s`), and an operator may run it at will (`QueueAdmin.maintain`)."""

from __future__ import annotations

import logging

from bot.jobs import JobStatus
from bot.queue.client import QueueClient, text
from bot.queue.keys import JOBS_GROUP
from bot.queue.scripts import Script

log = logging.getLogger(__name__)


async def maintain(client: QueueClient) -> tuple[int, int, int, int]:
    """Trim dead letters older than `job_ttl_s`, prune the active index and the worker
    registry, drop worker consumers with nothing pending that are dead (no liveness record)
    or idle for `consumer_idle_s`, sweep orphaned selfies.
    Returns (dead letters trimmed, index entries pruned, workers expired, consumers
    removed)."""
    redis, keys, config = client.redis, client.keys, client.config
    now = client.clock()
    min_id = f"{int((now - config.job_ttl_s) * 1000)}-0"
    trimmed, pruned, workers = await Script(redis, "maintain")(
        keys=[keys.dead, keys.active_jobs, keys.workers],
        args=[keys.prefix, repr(now), min_id, 10_000],
    )
    consumers = 0
    lapsed_ms = 4 * config.liveness_ttl_s * 1000
    for info in await redis.xinfo_consumers(keys.jobs, JOBS_GROUP):
        idle_ms = int(info.get("idle", 0))
        if int(info.get("pending", 0)) != 0:
            continue  # a dead worker's are taken over first (WorkerQueue.reclaim)
        name = info["name"]
        dead = idle_ms > lapsed_ms and not await redis.exists(keys.alive(text(name)))
        if dead or idle_ms > config.consumer_idle_s * 1000:
            await redis.xgroup_delconsumer(keys.jobs, JOBS_GROUP, name)
            consumers += 1
    orphans = await sweep_orphaned_selfies(client)
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


async def sweep_orphaned_selfies(client: QueueClient) -> int:
    """Delete selfie copies that no job needs any more: their job vanished or ended (a
    dead-lettered job keeps its selfie for a retry until the selfie's TTL). Runs with the
    periodic upkeep, so a crash between a job's end and its cleanup never leaves a selfie
    behind for longer than one upkeep interval. Returns how many were deleted."""
    redis, keys = client.redis, client.keys
    prefix = keys.selfie("")
    deleted = 0
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        job_id = name[len(prefix) :]
        status = await redis.hget(keys.job(job_id), "status")
        if status is not None:
            state = JobStatus(status.decode() if isinstance(status, bytes) else status)
            if not state.final or state is JobStatus.DEAD:
                continue
        deleted += await redis.delete(name)
    if deleted:
        log.warning("deleted %d orphaned selfie(s): their jobs had ended", deleted)
    return deleted
