"""A worker process's own /healthz and /metrics (AVATARBOT_WORKER_HEALTH_PORT)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.queue import QueueConfig
from tests.bot_process import process_env, start_worker, stop, stopped_at_exit
from tests.conftest import free_port
from tests.queue_helpers import BOT, JobQueue, collect, request

SELFIE = (Path(__file__).parent / "data" / "astronaut.jpg").read_bytes()


@pytest.mark.slow
async def test_worker_serves_health_and_metrics_on_its_own_port(
    redis_url: str, redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    queue = JobQueue(redis_client, QueueConfig(prefix=key_prefix))
    await queue.ensure_groups(BOT)
    port = free_port()
    env = process_env(
        redis_url, key_prefix, tmp_path / "data", AVATARBOT_WORKER_HEALTH_PORT=str(port)
    )
    worker = start_worker(env, tmp_path / "worker.log")
    url = f"http://127.0.0.1:{port}"
    with stopped_at_exit(worker):
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            while True:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                try:
                    async with http.get(url + "/healthz") as response:
                        if response.status == 200:
                            health = await response.json()
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            assert health["status"] == "ok"
            assert health["backend"] == "fake"

            for n, style in enumerate(["sketch", "sketch", "oil", "no-such-style"]):
                await queue.enqueue(request(n, style=style), SELFIE)
            assert len(await collect(queue, 4)) == 4
            async with http.get(url + "/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await response.text()
        assert stop(worker) == 0
    lines = set(text.splitlines())
    assert "avatarbot_up 1" in lines
    assert 'avatarbot_worker_failures_total{reason="unknown_style"} 1' in lines
    assert 'avatarbot_worker_jobs_done_total{style="sketch"} 2' in lines
    assert 'avatarbot_worker_jobs_done_total{style="oil"} 1' in lines
    sketch_batches = next(
        line
        for line in lines
        if line.startswith('avatarbot_worker_generation_seconds_count{style="sketch"}')
    )
    assert int(sketch_batches.rsplit(" ", 1)[1]) >= 1
    assert "avatarbot_worker_batch_size_count" in text
    assert any(line.startswith("avatarbot_queue_lag_seconds ") for line in lines)
    assert 'avatarbot_jobs{state="queued"} 0' in lines
    assert "avatarbot_gpu_memory_bytes" not in text  # no torch in this process
    # Likeness is on by default: the fake's flat images have no face, counted as such.
    assert 'avatarbot_worker_likeness_no_face_total{style="sketch"} 2' in lines
    assert 'avatarbot_worker_likeness_tries_count{style="oil"} 1' in lines
