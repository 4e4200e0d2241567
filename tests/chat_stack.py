"""The real bot stack for conversation and adapter tests: the core as a bot process wires it
(`avatarbot.wiring`: queue, intake, conversation) and an in-process CPU worker on the
same event loop. Everything talks to a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from avatarbot.wiring import Core, build_core, build_encoder, build_verifier
from bot.config import Settings
from bot.conversation import Conversation
from bot.jobs import Owner
from bot.queue import JobProducer, WorkerQueue
from bot.styles import StyleCatalog
from bot.verdicts import Verifier
from generation.backends import load_backend
from generation.face_identity import DlibFaceIdentity
from generation.likeness_check import LikenessCheck
from generation.worker import Worker
from provenance.labelling import ImageVerifier, ResultEncoder


@dataclass
class ChatStack:
    core: Core
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def redis(self) -> aioredis.Redis:
        return self.core.redis

    @property
    def queue(self) -> JobProducer:
        return self.core.queue

    @property
    def catalog(self) -> StyleCatalog:
        return self.core.catalog

    @property
    def conversation(self) -> Conversation:
        return self.core.conversation

    def start_worker(self) -> Worker:
        """A real worker with the CPU style engine, running on this event loop."""
        worker = Worker(
            WorkerQueue.sharing(self.queue),
            load_backend("cpu"),
            self.catalog,
            batch_size=4,
            output_size=self.settings.output_size,
            reclaim_interval_s=1.0,
            block_ms=100,
            progress_interval_s=0.1,
            encode=self.encoder(),
            likeness=production_likeness(),
        )
        self.workers.append(worker)
        self._tasks.append(asyncio.create_task(worker.run(self._stop), name="worker"))
        return worker

    def encoder(self) -> ResultEncoder:
        return production_encoder(self.settings, self.redis)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
        self._tasks.clear()


def production_encoder(settings: Settings, redis: aioredis.Redis) -> ResultEncoder:
    """What production workers use: every avatar labelled (C2PA, XMP, watermark) and its
    mark recorded, so tests see exactly what users get. Call it inside the event loop."""
    return build_encoder(settings, redis)


@functools.cache
def production_likeness() -> LikenessCheck:
    """What production workers score likeness with; loaded once for the test process
    (thread-safe), as a worker process loads it once."""
    return LikenessCheck(DlibFaceIdentity())


def production_verifier(settings: Settings, redis: aioredis.Redis) -> ImageVerifier:
    """What production bots use for /verify. Call it inside the event loop."""
    return build_verifier(settings, redis)


def owner(name: str) -> Owner:
    return Owner(platform="test", user_id=name, chat_id=f"chat-{name}")


@contextlib.asynccontextmanager
async def chat_stack(
    settings: Settings, redis: aioredis.Redis, *, verifier: Verifier | None = None
) -> AsyncIterator[ChatStack]:
    stack = ChatStack(await build_core(settings, redis, verifier=verifier))
    try:
        yield stack
    finally:
        await stack.stop()
