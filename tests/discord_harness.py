"""The whole Discord side of avatarbot on one event loop, against the fake Discord.

Real pieces throughout: discord.py over HTTP and a websocket to `FakeDiscord`, the real
`Conversation`, `JobQueue` on a real Redis, `DeliveryPump` and `StatusTracker`, and a
real `Worker` with the CPU style engine. `restart_bot()` replaces the bot side (adapter
with a new discord.py client, pump, tracker) as a process restart would; Redis, the fake
and the worker stay. `clock` lets a test move the adapter's notion of "now" (to step past
the interaction token's 15 minutes without waiting them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from adapters.discord_bot import PLATFORM, DiscordAdapter
from bot.config import Settings
from bot.conversation import Conversation, Verifier
from bot.delivery import DeliveryPump, StatusTracker
from bot.faces import DlibHogDetector
from bot.queue import JobQueue, QueueConfig
from bot.selfie import SelfieIntake
from bot.styles import StyleCatalog
from generation.backends import load_backend
from generation.worker import Worker
from tests.fake_discord import FakeDiscord


@dataclass
class Clock:
    """Wall time plus an offset the test controls."""

    offset_s: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


@dataclass
class BotSide:
    adapter: DiscordAdapter
    pump: DeliveryPump
    tracker: StatusTracker
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class DiscordHarness:
    def __init__(
        self,
        fake: FakeDiscord,
        settings: Settings,
        redis: aioredis.Redis,
        *,
        verifier: Verifier | None = None,
        intake: SelfieIntake | None = None,
        tracker_interval_s: float = 0.05,
        throttle_s: float = 0.05,
        pump_block_ms: int = 50,
    ) -> None:
        self.fake = fake
        self.settings = settings
        self.redis = redis
        self.catalog = StyleCatalog.load(settings.styles_file)
        self.intake = intake or SelfieIntake(DlibHogDetector())
        self.queue = JobQueue(redis, QueueConfig.from_settings(settings))
        self.conversation = Conversation.create(
            redis, self.queue, self.intake, self.catalog, settings, verifier=verifier
        )
        self.clock = Clock()
        self.tracker_interval_s = tracker_interval_s
        self.throttle_s = throttle_s
        self.pump_block_ms = pump_block_ms
        self.bot: BotSide | None = None
        self.worker: Worker | None = None
        self._worker_stop: asyncio.Event | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._generations = 0

    # --- bot side --------------------------------------------------------------------

    async def start_bot(self) -> BotSide:
        self._generations += 1
        adapter = DiscordAdapter(
            self.settings,
            self.conversation,
            clock=self.clock,
            ready_timeout_s=10,
            client_options={"guild_ready_timeout": 0},
        )
        side = BotSide(
            adapter=adapter,
            pump=DeliveryPump(
                self.queue,
                self.conversation,
                self.settings.bot_name,
                f"test-discord-{self._generations}",
                block_ms=self.pump_block_ms,
                retry_base_s=0.1,
            ),
            tracker=StatusTracker(
                self.queue,
                self.conversation,
                self.conversation.waiting,
                self.redis,
                self.settings.key_prefix,
                interval_s=self.tracker_interval_s,
                throttle_s=self.throttle_s,
            ),
        )
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
        side, self.bot = self.bot, None
        if side is None:
            return
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
            output_size=self.settings.output_size,
            block_ms=50,
            reclaim_interval_s=0.5,
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
