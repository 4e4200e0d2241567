"""The whole Discord side of avatarbot on one event loop, against the fake Discord.

Real pieces throughout: discord.py over HTTP and a websocket to `FakeDiscord`, the real
`Conversation`, `JobQueue` on a real Redis, `DeliveryPump` and `StatusTracker`, and a
real `Worker` with the CPU style engine. `restart_bot()` replaces the bot side (adapter
with a new discord.py client, pump, tracker) as a process restart would; Redis, the fake
and the worker stay. `clock` lets a test move the adapter's notion of "now" (to step past
the interaction token's 15 minutes without waiting them). `conversation` may be a
subclass of the real one (say, one that adds a reply to each outcome).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from adapters.discord import DiscordAdapter
from avatarbot.wiring import build_conversation
from bot.config import Settings
from bot.conversation import Conversation, Verifier
from bot.faces import DlibHogDetector
from bot.queue import QueueConfig
from bot.selfie import SelfieIntake
from bot.styles import StyleCatalog
from tests.bot_side import BotSide, Harness, InProcessWorker
from tests.fake_discord import FakeDiscord
from tests.queue_helpers import JobQueue


@dataclass
class Clock:
    """Wall time plus an offset the test controls."""

    offset_s: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


class DiscordHarness(Harness[DiscordAdapter]):
    def __init__(
        self,
        fake: FakeDiscord,
        settings: Settings,
        redis: aioredis.Redis,
        *,
        verifier: Verifier | None = None,
        intake: SelfieIntake | None = None,
        conversation: type[Conversation] = Conversation,
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
        self.conversation = build_conversation(
            redis,
            self.queue,
            self.intake,
            self.catalog,
            settings,
            verifier=verifier,
            cls=conversation,
        )
        self.clock = Clock()
        self.tracker_interval_s = tracker_interval_s
        self.throttle_s = throttle_s
        self.pump_block_ms = pump_block_ms
        self.bot: BotSide[DiscordAdapter] | None = None
        self._worker = InProcessWorker(self.queue, self.catalog, settings, redis)
        self._generations = 0

    # --- bot side --------------------------------------------------------------------

    async def start_bot(self) -> BotSide[DiscordAdapter]:
        self._generations += 1
        adapter = DiscordAdapter(
            self.settings,
            self.conversation,
            self.redis,
            clock=self.clock,
            ready_timeout_s=10,
            client_options={"guild_ready_timeout": 0},
        )
        side = BotSide.create(
            adapter,
            self.conversation,
            self.queue,
            self.redis,
            self.settings,
            consumer=f"test-discord-{self._generations}",
            pump_block_ms=self.pump_block_ms,
            retry_base_s=0.1,
            tracker_interval_s=self.tracker_interval_s,
            throttle_s=self.throttle_s,
        )
        await side.start()
        self.bot = side
        return side
