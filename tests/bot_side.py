"""One bot process's moving parts for adapter tests, and an in-process worker.

`BotSide` is what a bot process runs for one adapter: the adapter itself plus the
`DeliveryPump` and `StatusTracker` it registers with, started and stopped together (a
harness's `restart_bot()` replaces the whole side, as a process restart would).
`InProcessWorker` is a real `Worker` with the CPU style engine on the test's event loop,
labelling every avatar as production workers do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, Self, TypeVar

import redis.asyncio as aioredis

from avatarbot.bot_stack import BotStack, build_bot_stack
from avatarbot.wiring import Core
from bot.config import Settings
from bot.conversation import Conversation
from bot.jobs import Job
from bot.queue import Delivery, DeliveryPump
from bot.replies import Queued, Reply
from bot.status_tracker import StatusTracker
from bot.styles import StyleCatalog
from generation.backends import load_backend
from generation.worker import Worker
from tests.chat_stack import production_encoder, production_likeness
from tests.queue_helpers import JobQueue


class Adapter(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def deliver(self, delivery: Delivery, replies: Sequence[Reply]) -> None: ...

    async def update_status(self, job: Job, reply: Queued) -> None: ...


A = TypeVar("A", bound=Adapter)


@dataclass
class BotSide(Generic[A]):
    """What one bot process runs: the adapter and the delivery/status loops (`BotStack`)."""

    adapter: A
    stack: BotStack
    errors: list[BaseException] = field(default_factory=list)

    @property
    def pump(self) -> DeliveryPump:
        return self.stack.pump

    @property
    def tracker(self) -> StatusTracker:
        return self.stack.tracker

    @classmethod
    def create(
        cls,
        adapter: A,
        conversation: Conversation,
        queue: JobQueue,
        redis: aioredis.Redis,
        settings: Settings,
        *,
        consumer: str,
        pump_block_ms: int,
        retry_base_s: float,
        tracker_interval_s: float,
        throttle_s: float = 3.0,
    ) -> BotSide[A]:
        core = Core(settings, redis, queue, conversation.catalog, conversation.intake, conversation)
        stack = build_bot_stack(
            core,
            consumer=consumer,
            pump_block_ms=pump_block_ms,
            retry_base_s=retry_base_s,
            tracker_interval_s=tracker_interval_s,
            throttle_s=throttle_s,
        )
        return cls(adapter=adapter, stack=stack)

    async def start(self) -> None:
        self.stack.register(self.adapter)
        await self.adapter.start()
        self.stack.start()

    async def close(self) -> None:
        """As a restart does: the loops end, nothing more is delivered, the adapter closes."""
        await self.stack.stop(drain_s=0)
        await self.adapter.stop()


class InProcessWorker:
    """A real worker (CPU style engine, labelled output) on the test's event loop."""

    def __init__(
        self, queue: JobQueue, catalog: StyleCatalog, settings: Settings, redis: aioredis.Redis
    ) -> None:
        self.queue = queue
        self.catalog = catalog
        self.settings = settings
        self.redis = redis
        self.worker: Worker | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, batch_size: int = 4) -> Worker:
        self.worker = Worker(
            self.queue,
            load_backend("cpu"),
            self.catalog,
            batch_size=batch_size,
            output_size=self.settings.output_size,
            block_ms=50,
            reclaim_interval_s=0.5,
            encode=production_encoder(self.settings, self.redis),
            likeness=production_likeness(),
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.worker.run(self._stop))
        return self.worker

    async def stop(self) -> None:
        if self._stop is None or self._task is None:
            return
        self._stop.set()
        await self._task
        self._stop = self._task = None


class Harness(Generic[A]):
    """The lifecycle both adapter harnesses share: a bot side that can be stopped and
    restarted (as a process restart would), an in-process worker, and closing both.
    Subclasses set `bot`, `_worker` (and `worker_batch`) and implement `start_bot`."""

    bot: BotSide[A] | None
    _worker: InProcessWorker
    worker_batch: int = 4

    async def start_bot(self) -> BotSide[A]:
        raise NotImplementedError

    async def stop_bot(self) -> None:
        side, self.bot = self.bot, None
        if side is not None:
            await side.close()

    async def restart_bot(self) -> BotSide[A]:
        await self.stop_bot()
        return await self.start_bot()

    @property
    def worker(self) -> Worker | None:
        return self._worker.worker

    async def start_worker(self) -> Worker:
        return await self._worker.start(batch_size=self.worker_batch)

    async def stop_worker(self) -> None:
        await self._worker.stop()

    async def close(self) -> None:
        await self.stop_bot()
        await self.stop_worker()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
