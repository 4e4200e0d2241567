"""Slow and failing dependencies, with real processes: Redis not there at start, Redis gone
mid-run. (Giving up with one clear line after the wait is tests/test_redis_connection.py's;
a backend that fails on one style is tests/test_worker.py's
test_batch_grouped_by_style_and_failures_stay_alone: only that style's jobs fail.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.bot_process import (
    choose,
    process_env,
    send_selfie,
    session,
    start_bot,
    start_cli_worker,
    stop,
    stopped_at_exit,
    wait_for_kind,
    wait_healthy,
)
from tests.conftest import RedisServer, free_port
from tests.hostile import GOOD_FILES

TRY_AGAIN = "I'm having trouble reaching my queue. Please try again shortly."


def _retries(log: str) -> int:
    return sum(1 for line in log.splitlines() if "not reachable" in line and "retrying" in line)


@pytest.mark.slow
async def test_redis_late_at_start_then_gone_mid_run_processes_wait_and_recover(
    tmp_path: Path, key_prefix: str
) -> None:
    port = free_port()
    server = RedisServer(tmp_path / "redis", port=port)  # not started yet
    env = process_env(f"redis://127.0.0.1:{port}/0", key_prefix, tmp_path / "data")
    bot = start_bot(env, tmp_path / "bot.log")
    worker_log = tmp_path / "worker.log"
    worker = start_cli_worker(env, worker_log)
    face = GOOD_FILES["jpeg"]()
    try:
        with stopped_at_exit(bot.proc, worker):
            # 1. No Redis: both wait with backoff, saying why, and neither exits.
            deadline = time.monotonic() + 30
            while _retries(bot.log()) < 3 or _retries(worker_log.read_text()) < 3:
                assert bot.proc.poll() is None, bot.log()
                assert worker.poll() is None, worker_log.read_text()
                assert time.monotonic() < deadline, bot.log() + worker_log.read_text()
                await asyncio.sleep(0.2)
            assert f"Redis at redis://127.0.0.1:{port}/0 not reachable" in bot.log()
            assert "Traceback" not in bot.log() + worker_log.read_text()

            # 2. Redis arrives: they connect on their own and serve a request end to end.
            server.start()
            async with session() as http:
                await wait_healthy(http, bot)
                status, messages = await send_selfie(http, bot, face)
                assert (status, messages[-1]["kind"]) == (200, "picker")
                await choose(http, bot, "sketch")
                await wait_for_kind(http, bot, "avatar", timeout_s=90)

                # 3. Redis gone mid-run: the user gets "try again shortly", nothing crashes.
                server.kill()
                status, messages = await send_selfie(http, bot, face)
                assert messages[-1]["kind"] == "failure"
                assert messages[-1]["text"] == TRY_AGAIN
                async with http.get(bot.url + "/healthz") as health:
                    assert health.status == 503
                    assert (await health.json())["reason"].startswith("redis")
                assert bot.proc.poll() is None
                assert worker.poll() is None

                # 4. Redis back (AOF): the same processes recover, no restart.
                server.start()
                await wait_healthy(http, bot)
                async with http.get(bot.url + "/api/history") as response:
                    seen = len((await response.json())["messages"])
                status, messages = await send_selfie(http, bot, face)
                assert (status, messages[-1]["kind"]) == (200, "picker")
                await choose(http, bot, "oil")
                avatar = await wait_for_kind(http, bot, "avatar", after=seen, timeout_s=90)
                assert avatar["style_id"] == "oil"
            assert stop(bot.proc) == 0, bot.log()
            assert stop(worker) == 0, worker_log.read_text()
    finally:
        server.kill()
