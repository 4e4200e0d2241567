"""A chat platform that cannot be reached (issue #19, defect 7): with the Bot API down at
start, `avatarbot bot` used to exit 1 within seconds and take the web chat with it. Now
it retries with backoff, says so in /healthz and /metrics, keeps the other surfaces
serving, and takes Telegram up when the Bot API comes back; an outage later is seen by
the platform check."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from adapters.telegram import TelegramAdapter
from avatarbot.platforms import DOWN, UP, Backoff, Platforms
from avatarbot.wiring import build_conversation
from bot.chat_adapter import PlatformUnreachable
from bot.config import ConfigError, Settings
from bot.queue import QueueConfig
from bot.selfie import SelfieIntake
from bot.styles import StyleCatalog
from tests.bot_process import BotProcess, process_env, start_bot, stop, stopped_at_exit
from tests.conftest import free_port
from tests.fake_telegram import FakeTelegram
from tests.queue_helpers import JobQueue
from tests.telegram_harness import telegram_env


async def health(http: aiohttp.ClientSession, bot: BotProcess) -> dict[str, Any]:
    async with http.get(bot.url + "/healthz") as response:
        body: dict[str, Any] = await response.json()
        return body


async def until_state(
    http: aiohttp.ClientSession, bot: BotProcess, state: str, *, attempts: int = 1
) -> dict[str, Any]:
    """Until /healthz shows Telegram in `state` after at least `attempts` starts."""
    deadline = time.monotonic() + 60
    while True:
        assert bot.proc.poll() is None, bot.log()  # the process never stops for it
        with contextlib.suppress(aiohttp.ClientError):
            telegram = (await health(http, bot)).get("platforms", {}).get("telegram", {})
            if telegram.get("state") == state and telegram["start_attempts"] >= attempts:
                return dict(telegram)
        assert time.monotonic() < deadline, bot.log()
        await asyncio.sleep(0.2)


async def metric(http: aiohttp.ClientSession, bot: BotProcess, line_start: str) -> str:
    async with http.get(bot.url + "/metrics") as response:
        text = await response.text()
    return next(line for line in text.splitlines() if line.startswith(line_start))


@pytest.mark.slow
async def test_telegram_down_at_start_then_up_while_the_web_chat_serves(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    fake = FakeTelegram()
    fake.port = free_port()  # the Bot API's address; nothing listens there yet
    env = process_env(redis_url, key_prefix, tmp_path / "data", **telegram_env(fake))
    bot = start_bot(env, tmp_path / "bot.log")  # with the web chat on
    up_metric = 'avatarbot_platform_up{platform="telegram"}'
    try:
        with stopped_at_exit(bot.proc):
            async with aiohttp.ClientSession() as http:
                down = await until_state(http, bot, DOWN, attempts=2)
                assert down["error"] in ("NetworkError", "TimedOut")
                async with http.get(bot.url + "/") as page:
                    assert page.status == 200  # the web chat serves meanwhile
                assert await metric(http, bot, up_metric) == f"{up_metric} 0"

                await fake.start()  # the Bot API comes back
                await until_state(http, bot, UP)
                assert await metric(http, bot, up_metric) == f"{up_metric} 1"
                user = fake.user(4711)
                fake.send_text(fake.private_chat(user), user, "/help")
                await fake.wait_for("sendMessage", chat_id=4711, within=20)
            # The fake answers the last getUpdates on this loop: wait for the exit aside.
            assert await asyncio.to_thread(stop, bot.proc) == 0
    finally:
        await fake.close()
    log = bot.log()
    assert "telegram: not reachable at start (NetworkError); trying again in 1 s" in log
    assert "Traceback" not in log
    assert fake.token not in log
    assert fake.violations == []


# --------------------------------------------------------------------------- supervision


class FlakyAdapter:
    """A chat adapter whose platform is unreachable for its first `failures` starts, and
    whose `check` answers what `reachable` says."""

    platform = "flaky"

    def __init__(self, failures: int, *, fatal: Exception | None = None) -> None:
        self.failures = failures
        self.fatal = fatal
        self.starts = 0
        self.stops = 0
        self.reachable = True

    async def start(self) -> None:
        self.starts += 1
        if self.fatal is not None:
            raise self.fatal
        if self.starts <= self.failures:
            raise PlatformUnreachable("flaky: down") from ConnectionRefusedError()

    async def stop(self) -> None:
        self.stops += 1

    async def check(self) -> None:
        if not self.reachable:
            raise PlatformUnreachable("flaky: down") from TimeoutError()

    async def deliver(self, delivery: object, replies: object) -> None:
        """Nothing to deliver in these tests."""

    async def update_status(self, job: object, reply: object) -> None:
        """Nothing to show in these tests."""


@contextlib.asynccontextmanager
async def supervising(adapter: FlakyAdapter) -> AsyncIterator[Platforms]:
    platforms = Platforms([adapter], backoff=Backoff(0.05, 0.2), check_interval_s=0.05)  # type: ignore[list-item]
    stop = asyncio.Event()
    task = asyncio.create_task(platforms.run(stop))
    try:
        yield platforms
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await platforms.stop()


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110  # the supervisor's state, no event to await
            await asyncio.sleep(0.01)


async def test_an_unreachable_platform_is_retried_then_watched() -> None:
    adapter = FlakyAdapter(failures=3)
    async with supervising(adapter) as platforms:
        await asyncio.wait_for(platforms.all_up(), 5)
        assert adapter.starts == 4
        assert platforms.health()["flaky"]["state"] == UP  # type: ignore[index]
        adapter.reachable = False
        await until(lambda: platforms.status["flaky"].state == DOWN)
        assert platforms.status["flaky"].error == "TimeoutError"
        adapter.reachable = True
        await until(lambda: platforms.status["flaky"].state == UP)
    assert adapter.stops == 1
    assert 'avatarbot_platform_start_attempts_total{platform="flaky"} 4' in platforms.metrics()


async def test_a_setting_to_fix_still_stops_the_process() -> None:
    adapter = FlakyAdapter(failures=0, fatal=ConfigError("TELEGRAM_BOT_TOKEN was rejected"))
    platforms = Platforms([adapter])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="rejected"):
        await asyncio.wait_for(platforms.run(asyncio.Event()), 5)
    assert adapter.starts == 1


async def test_the_telegram_check_sees_the_bot_api_go_and_come_back(
    settings_factory: Callable[..., Settings], redis_client: aioredis.Redis, key_prefix: str
) -> None:
    fake = await FakeTelegram().start()
    settings = settings_factory(**telegram_env(fake))
    queue = JobQueue(redis_client, QueueConfig.from_settings(settings))
    conversation = build_conversation(
        redis_client,
        queue,
        SelfieIntake(None),
        StyleCatalog.load(None),
        settings,  # type: ignore[arg-type]
    )
    adapter = TelegramAdapter(settings, conversation, redis_client, poll_timeout_s=1)
    await adapter.start()
    try:
        await adapter.check()
        port = fake.port
        await fake.close()
        with pytest.raises(PlatformUnreachable):
            await adapter.check()
        fake = FakeTelegram()
        fake.port = port
        await fake.start()
        await adapter.check()
    finally:
        await adapter.stop()
        await fake.close()
