"""Every hostile file through a real `avatarbot bot` process (the web chat's HTTP API):
each gets its friendly one-line answer, the process stays up and within its memory bound,
and the next good request goes all the way to an avatar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from bot.config import Settings
from bot.faces import DlibHogDetector
from bot.selfie import FileTooLarge, IntakeError, IntakeLimits, SelfieIntake
from tests import hostile
from tests.bot_process import (
    choose,
    process_env,
    send_selfie,
    session,
    start_bot,
    start_worker,
    stop,
    stopped_at_exit,
    wait_for_kind,
    wait_healthy,
)

PEAK_GROWTH_BOUND_MB = 256
"""Peak resident memory (VmHWM) may grow at most this much over the warmed-up process
while the whole sweep runs. The largest legitimate decode is large_4000 (4000 x 4000 RGB,
48 MB, plus a working copy or two); everything bigger is refused from its header."""
RESIDENT_GROWTH_BOUND_MB = 96
"""Resident memory (VmRSS) after the sweep vs before it: nothing the sweep did stays
behind (no leak per request beyond allocator slack)."""


def expected_answer(data: bytes) -> str:
    """The one line intake gives for these bytes (what the adapter must pass on)."""
    try:
        SelfieIntake(DlibHogDetector(), IntakeLimits()).process(data)
    except IntakeError as exc:
        return exc.user_message
    raise AssertionError("expected a rejection")


@pytest.mark.slow
async def test_hostile_files_get_one_line_answers_memory_stays_bounded_next_request_works(
    settings_factory: Callable[..., Settings], redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    assert len(hostile.BAD_FILES) >= 30
    env = process_env(redis_url, key_prefix, tmp_path / "data")
    worker = start_worker(env, tmp_path / "worker.log")
    bot = start_bot(env, tmp_path / "bot.log")
    good = hostile.GOOD_FILES["jpeg"]()
    with stopped_at_exit(bot.proc, worker):
        async with session() as http:
            await wait_healthy(http, bot)
            # Warm up: one good request end to end (intake, labeller, delivery all loaded).
            status, messages = await send_selfie(http, bot, good)
            assert status == 200
            assert messages[-1]["kind"] == "picker"
            await choose(http, bot, "sketch")
            await wait_for_kind(http, bot, "avatar")
            before = bot.memory_kb()

            answered = 0
            for name, case in hostile.BAD_FILES.items():
                data = case.make()
                status, messages = await send_selfie(http, bot, data)
                answer = messages[-1]
                assert answer["kind"] == "failure", (name, answer)
                assert "\n" not in answer["text"], name
                if case.error is FileTooLarge:  # refused from Content-Length, never read
                    assert status == 413
                    assert "too big" in answer["text"]
                else:
                    assert status == 200, name
                    assert answer["text"] == expected_answer(data), name
                assert bot.proc.poll() is None, f"bot died on {name}:\n{bot.log()}"
                answered += 1
            for name, make in hostile.GOOD_FILES.items():  # awkward but valid
                status, messages = await send_selfie(http, bot, make())
                assert (status, messages[-1]["kind"]) == (200, "picker"), (name, messages[-1])
            after = bot.memory_kb()

            # The next good request after all that is served end to end.
            history = await _history_length(http, bot.url)
            status, messages = await send_selfie(http, bot, good)
            assert messages[-1]["kind"] == "picker"
            await choose(http, bot, "oil")
            avatar = await wait_for_kind(http, bot, "avatar", after=history)
            assert avatar["style_id"] == "oil"
            await wait_healthy(http, bot)
        assert stop(bot.proc) == 0, bot.log()
        assert stop(worker) == 0
    assert answered == len(hostile.BAD_FILES)
    peak_growth_mb = (after["VmHWM"] - before["VmHWM"]) / 1024
    resident_growth_mb = (after["VmRSS"] - before["VmRSS"]) / 1024
    print(
        f"bot memory: before sweep RSS {before['VmRSS'] / 1024:.0f} MB peak "
        f"{before['VmHWM'] / 1024:.0f} MB; after RSS {after['VmRSS'] / 1024:.0f} MB peak "
        f"{after['VmHWM'] / 1024:.0f} MB; {answered} hostile + {len(hostile.GOOD_FILES)} good"
    )
    assert peak_growth_mb < PEAK_GROWTH_BOUND_MB
    assert resident_growth_mb < RESIDENT_GROWTH_BOUND_MB
    assert "Traceback" not in bot.log()


async def _history_length(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url + "/api/history") as response:
        return len((await response.json())["messages"])
