"""Graceful shutdown of real processes: SIGTERM to a worker mid-batch finishes the batch
and exits 0; SIGTERM to a bot stops it and delivers the results that are ready."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.jobs import JobStatus
from bot.queue import QueueConfig
from tests.bot_process import (
    choose,
    process_env,
    send_selfie,
    session,
    start_bot,
    start_worker,
    stopped_at_exit,
)
from tests.hostile import GOOD_FILES
from tests.queue_helpers import JobQueue, request, result_for


async def _until(predicate: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_sigterm_to_a_worker_mid_batch_finishes_the_batch_and_exits_0(
    redis_url: str, redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    queue = JobQueue(redis_client, QueueConfig(prefix=key_prefix))
    await queue.ensure_groups("testbot")
    receipts = [await queue.enqueue(request(n), GOOD_FILES["jpeg"]()) for n in range(3)]
    env = process_env(redis_url, key_prefix, tmp_path / "data", AVATARBOT_BATCH_SIZE="2")
    worker = start_worker(env, tmp_path / "worker.log", FAKE_DELAY_S="2")
    with stopped_at_exit(worker):

        async def generating() -> bool:
            job = await queue.get_job(receipts[0].job.id)
            return job is not None and job.progress > 0

        await _until(generating)  # the first batch (two jobs) is in the backend
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, (tmp_path / "worker.log").read_text()
    states = [await queue.get_job(r.job.id) for r in receipts]
    assert [j.status if j else None for j in states] == [
        JobStatus.DONE,
        JobStatus.DONE,
        JobStatus.QUEUED,  # never started: it waits for the next worker
    ]
    stats = await queue.stats()
    assert (stats.running, stats.live_workers) == (0, 0)


@pytest.mark.slow
async def test_sigterm_to_a_bot_stops_it_and_delivers_what_is_ready(
    redis_url: str, redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    queue = JobQueue(redis_client, QueueConfig(prefix=key_prefix))
    env = process_env(redis_url, key_prefix, tmp_path / "data")
    bot = start_bot(env, tmp_path / "bot.log")
    with stopped_at_exit(bot.proc):
        async with session() as http:
            deadline = time.monotonic() + 60
            while True:  # up once the page answers (no worker runs: not "healthy")
                assert bot.proc.poll() is None, bot.log()
                try:
                    async with http.get(bot.url + "/api/history") as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, bot.log()
                await asyncio.sleep(0.2)
            status, messages = await send_selfie(http, bot, GOOD_FILES["jpeg"]())
            assert (status, messages[-1]["kind"]) == (200, "picker")
            await choose(http, bot, "sketch")
        [claimed] = await queue.claim("test-worker", 1, 5000)  # we are the worker

        bot.proc.send_signal(signal.SIGTERM)  # and the result is ready just as it stops
        assert await queue.complete(claimed, result_for(claimed))
        assert bot.proc.wait(30) == 0, bot.log()

    job = await queue.get_job(claimed.job.id)
    assert job is not None
    assert job.delivered
    assert "stopping: delivering what is ready" in bot.log()
    assert "Traceback" not in bot.log()
    assert await redis_client.xlen(queue.results_stream("main")) == 0
