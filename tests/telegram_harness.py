"""The whole Telegram side of avatarbot on one event loop, against the fake Bot API.

Real pieces throughout: python-telegram-bot over HTTP to `FakeTelegram`, the real
`Conversation`, `JobQueue` on a real Redis, `DeliveryPump` and `StatusTracker`, and a
real `Worker` with the CPU style engine. Used by tests/test_telegram_bot.py and by
bench/telegram_load.py. `restart_bot()` replaces the bot side (adapter, pump, tracker)
with fresh instances, as a process restart would; Redis and the worker stay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from telegram.ext import BaseRateLimiter

from adapters.telegram import TelegramAdapter
from avatarbot.wiring import build_conversation
from bot.config import Settings
from bot.faces import DlibHogDetector
from bot.queue import QueueConfig
from bot.selfie import SelfieIntake
from bot.styles import StyleCatalog
from tests.bot_side import BotSide, Harness, InProcessWorker
from tests.chat_stack import production_verifier
from tests.fake_telegram import FakeTelegram
from tests.queue_helpers import JobQueue


def telegram_env(fake: FakeTelegram) -> dict[str, str]:
    """Settings that point the adapter at the fake server."""
    return {
        "TELEGRAM_BOT_TOKEN": fake.token,
        "AVATARBOT_TELEGRAM_API_URL": fake.base_url,
        "AVATARBOT_TELEGRAM_FILE_URL": fake.base_file_url,
    }


class TelegramHarness(Harness[TelegramAdapter]):
    def __init__(
        self,
        fake: FakeTelegram,
        settings: Settings,
        redis: aioredis.Redis,
        *,
        catalog: StyleCatalog | None = None,
        intake: SelfieIntake | None = None,
        rate_limiter_factory: Callable[[], BaseRateLimiter[int] | None] = lambda: None,
        tracker_interval_s: float = 0.05,
        pump_block_ms: int = 50,
        worker_batch: int = 4,
    ) -> None:
        self.fake = fake
        self.settings = settings
        self.redis = redis
        self.catalog = catalog or StyleCatalog.load(settings.styles_file)
        self.intake = intake or SelfieIntake(DlibHogDetector())
        self.queue = JobQueue(redis, QueueConfig.from_settings(settings))
        self.conversation = build_conversation(
            redis,
            self.queue,
            self.intake,
            self.catalog,
            settings,
            verifier=production_verifier(settings, redis),
        )
        self.rate_limiter_factory = rate_limiter_factory
        self.tracker_interval_s = tracker_interval_s
        self.pump_block_ms = pump_block_ms
        self.worker_batch = worker_batch
        self.bot: BotSide[TelegramAdapter] | None = None
        self._worker = InProcessWorker(self.queue, self.catalog, settings, redis)
        self._generations = 0

    # --- bot side --------------------------------------------------------------------
    async def start_bot(self) -> BotSide[TelegramAdapter]:
        self._generations += 1
        adapter = TelegramAdapter(
            self.settings,
            self.conversation,
            self.redis,
            rate_limiter=self.rate_limiter_factory(),
            poll_timeout_s=5,
        )
        side = BotSide.create(
            adapter,
            self.conversation,
            self.queue,
            self.redis,
            self.settings,
            consumer=f"test-bot-{self._generations}",
            pump_block_ms=self.pump_block_ms,
            retry_base_s=0.2,
            tracker_interval_s=self.tracker_interval_s,
        )

        async def record(update: object, context: Any) -> None:
            side.errors.append(context.error)

        adapter.application.add_error_handler(record)
        await side.start()
        self.bot = side
        return side


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Poll an async condition until it holds (for state outside the fake server)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110  # polls Redis state; no event to wait on
            await asyncio.sleep(0.02)
