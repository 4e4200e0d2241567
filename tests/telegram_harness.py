"""The whole Telegram side of avatarbot on one event loop, against the fake Bot API.

Real pieces throughout: python-telegram-bot over HTTP to `FakeTelegram`, the real
`Conversation`, `JobQueue` on a real Redis, `DeliveryPump` and `StatusTracker`, and a
real `Worker` with the CPU style engine. Used by tests/test_telegram_bot.py and by
bench/telegram_load.py. `restart_bot()` replaces the bot side (adapter, pump, tracker)
with fresh instances, as a process restart would; Redis and the worker stay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from telegram.ext import BaseRateLimiter

from adapters.telegram_bot import PLATFORM, TelegramAdapter
from bot.config import Settings
from bot.conversation import Conversation
from bot.delivery import DeliveryPump, StatusTracker
from bot.faces import DlibHogDetector
from bot.queue import JobQueue, QueueConfig
from bot.selfie import SelfieIntake
from bot.styles import StyleCatalog
from generation.backends import load_backend
from generation.worker import Worker
from tests.chat_stack import production_encoder, production_verifier
from tests.fake_telegram import FakeTelegram


def telegram_env(fake: FakeTelegram) -> dict[str, str]:
    """Settings that point the adapter at the fake server."""
    return {
        "TELEGRAM_BOT_TOKEN": fake.token,
        "AVATARBOT_TELEGRAM_API_URL": fake.base_url,
        "AVATARBOT_TELEGRAM_FILE_URL": fake.base_file_url,
    }


@dataclass
class BotSide:
    """What one bot process runs: the adapter and the delivery/status loops."""

    adapter: TelegramAdapter
    pump: DeliveryPump
    tracker: StatusTracker
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


class TelegramHarness:
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
        self.conversation = Conversation.create(
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
        self.bot: BotSide | None = None
        self._worker_stop: asyncio.Event | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self.worker: Worker | None = None
        self._generations = 0

    # --- bot side --------------------------------------------------------------------
    async def start_bot(self) -> BotSide:
        self._generations += 1
        adapter = TelegramAdapter(
            self.settings,
            self.conversation,
            self.redis,
            rate_limiter=self.rate_limiter_factory(),
            poll_timeout_s=5,
        )
        side = BotSide(
            adapter=adapter,
            pump=DeliveryPump(
                self.queue,
                self.conversation,
                self.settings.bot_name,
                f"test-bot-{self._generations}",
                block_ms=self.pump_block_ms,
                retry_base_s=0.2,
            ),
            tracker=StatusTracker(
                self.queue,
                self.conversation,
                self.conversation.waiting,
                self.redis,
                self.settings.key_prefix,
                interval_s=self.tracker_interval_s,
            ),
        )

        async def record(update: object, context: Any) -> None:
            side.errors.append(context.error)

        adapter.application.add_error_handler(record)
        side.pump.register(PLATFORM, adapter.deliver)
        side.tracker.register(PLATFORM, adapter.update_status)
        await adapter.start()
        side.tasks = [
            asyncio.create_task(side.pump.run(side.stop)),
            asyncio.create_task(side.tracker.run(side.stop)),
        ]
        self.bot = side
        return side

    async def stop_bot(self) -> None:
        side = self.bot
        if side is None:
            return
        self.bot = None
        side.stop.set()
        for task in side.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await side.adapter.stop()

    async def restart_bot(self) -> BotSide:
        await self.stop_bot()
        return await self.start_bot()

    # --- worker ------------------------------------------------------------------------
    async def start_worker(self) -> Worker:
        self.worker = Worker(
            self.queue,
            load_backend("cpu"),
            self.catalog,
            batch_size=self.worker_batch,
            output_size=self.settings.output_size,
            block_ms=50,
            reclaim_interval_s=0.5,
            encode=production_encoder(self.settings, self.redis),
        )
        self._worker_stop = asyncio.Event()
        self._worker_task = asyncio.create_task(self.worker.run(self._worker_stop))
        return self.worker

    async def stop_worker(self) -> None:
        if self._worker_stop is None or self._worker_task is None:
            return
        self._worker_stop.set()
        await self._worker_task
        self._worker_stop = self._worker_task = None

    async def close(self) -> None:
        await self.stop_bot()
        await self.stop_worker()

    async def __aenter__(self) -> TelegramHarness:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Poll an async condition until it holds (for state outside the fake server)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110  # polls Redis state; no event to wait on
            await asyncio.sleep(0.02)
