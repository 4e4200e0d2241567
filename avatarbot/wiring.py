"""How the parts are built from the settings: the one place every process and command
(bot, worker, `run`, the CLI commands, the test stacks, the benches) gets them from.

- `Core`: what every bot-side process shares: the Redis client, the job queue (its
  consumer groups created), the style catalog, the selfie intake and the conversation.
- `BotStack`: what a bot process runs on top of it: one `DeliveryPump` and one
  `StatusTracker` that every chat adapter registers with, and the process's metrics.
- Provenance: `load_verifier` (the bot's /verify) and `load_encoder` (the worker labels
  every avatar), each with the mark registry in the same Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

import redis.asyncio as aioredis

from avatarbot.malloc import return_large_frees
from bot.admin_commands import AdminCommands
from bot.config import Settings
from bot.consumers import consumer_name
from bot.conversation import Conversation
from bot.conversation_limits import ConversationLimits
from bot.decode_budget import BudgetedIntake, DecodeBudget, pixel_budget
from bot.faces import DlibHogDetector
from bot.gate import Gatekeeper
from bot.i18n import LanguagePreferences
from bot.queue import JobProducer, QueueClient, QueueConfig
from bot.redis_connection import connect
from bot.selfie import IntakeLimits, SelfieIntake
from bot.selfie_store import SelfieStore
from bot.sessions import SessionStore
from bot.styles import StyleCatalog
from bot.verdicts import Verifier
from bot.waiting import WaitingJobs
from generation.likeness_check import LikenessCheck
from provenance.labeller import Labeller
from provenance.labelling import ImageVerifier, ResultEncoder, load_labeller
from provenance.marks import MarkRegistry

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def redis_client(url: str, *, wait_s: float = 60.0) -> AsyncIterator[aioredis.Redis]:
    """A connected client (waiting up to `wait_s` for Redis to answer), closed at the end."""
    redis = await connect(url, wait_s=wait_s)
    try:
        yield redis
    finally:
        await redis.aclose()


View = TypeVar("View", bound=QueueClient)


def build_queue(settings: Settings, redis: aioredis.Redis, view: type[View]) -> View:
    """One audience's view of the queue: `JobProducer` (a bot), `WorkerQueue`,
    `DeliveryQueue` or `QueueAdmin` (or derive one from another with `.sharing`)."""
    return view(redis, QueueConfig.from_settings(settings))


def build_intake(settings: Settings, *, preload: bool = True) -> SelfieIntake:
    """Intake whose decodes share the process's memory budget (`bot.decode_budget`), with
    the pixel limit lowered to fit it, and decode memory handed back to the system once
    freed (`avatarbot.malloc`), which the budget counts on. A one-shot command passes
    `preload=False`: the face detector is then made only for a photo that decodes."""
    return_large_frees()
    memory = settings.intake_memory_mb * 1024 * 1024
    limits = IntakeLimits(
        max_bytes=settings.max_upload_bytes,
        max_pixels=pixel_budget(memory, IntakeLimits.max_pixels),
    )
    return BudgetedIntake(DlibHogDetector(preload=preload), limits, DecodeBudget(memory))


@dataclass(frozen=True)
class Core:
    """The platform-free parts a bot process (or a test, or a bench) talks through."""

    settings: Settings
    redis: aioredis.Redis
    queue: JobProducer
    catalog: StyleCatalog
    intake: SelfieIntake
    conversation: Conversation

    @classmethod
    def create(
        cls,
        settings: Settings,
        redis: aioredis.Redis,
        *,
        verifier: Verifier | None = None,
        intake: SelfieIntake | None = None,
        catalog: StyleCatalog | None = None,
    ) -> Core:
        """The parts for `settings.bot_name`, without touching Redis (see `build_core`)."""
        queue = build_queue(settings, redis, JobProducer)
        catalog = catalog or StyleCatalog.load(settings.styles_file)
        intake = intake or build_intake(settings)
        conversation = build_conversation(
            redis, queue, intake, catalog, settings, verifier=verifier
        )
        return cls(settings, redis, queue, catalog, intake, conversation)


async def build_core(
    settings: Settings,
    redis: aioredis.Redis,
    *,
    verifier: Verifier | None = None,
    intake: SelfieIntake | None = None,
) -> Core:
    """`Core.create`, with the queue's consumer groups (jobs, this bot's results) created."""
    core = Core.create(settings, redis, verifier=verifier, intake=intake)
    await core.queue.ensure_groups(settings.bot_name)
    return core


# --- provenance ---------------------------------------------------------------------------


def build_verifier(
    settings: Settings, redis: aioredis.Redis | None, labeller: Labeller | None = None
) -> ImageVerifier:
    """/verify as the bot answers it: the image's labels, and its watermark looked up in
    the mark registry when a Redis is at hand. Call it inside the event loop."""
    registry = (
        MarkRegistry(redis, settings.key_prefix, ttl_s=settings.mark_ttl_s) if redis else None
    )
    return ImageVerifier(
        labeller or load_labeller(settings), registry=registry, loop=asyncio.get_running_loop()
    )


def build_encoder(
    settings: Settings, redis: aioredis.Redis, labeller: Labeller | None = None
) -> ResultEncoder:
    """What workers do to every avatar: label it as AI-made (C2PA + XMP + watermark) and
    record its watermark id, so a stripped copy can still be traced to its style and
    date. Call it inside the event loop."""
    registry = MarkRegistry(redis, settings.key_prefix, ttl_s=settings.mark_ttl_s)
    return ResultEncoder(
        labeller or load_labeller(settings), registry=registry, loop=asyncio.get_running_loop()
    )


async def load_verifier(settings: Settings, redis: aioredis.Redis | None) -> ImageVerifier:
    """`build_verifier`, loading the signing keys in a thread (it may create them)."""
    labeller = await asyncio.to_thread(load_labeller, settings)
    return build_verifier(settings, redis, labeller)


def build_likeness(settings: Settings) -> LikenessCheck:
    """Every avatar scored against its selfie; re-rolled on diffusion below the style's
    minimum. Loads the face models (once per process)."""
    from generation.face_identity import DlibFaceIdentity  # noqa: PLC0415  # dlib models
    from generation.likeness_check import RerollPolicy  # noqa: PLC0415  # with the models

    policy = RerollPolicy(settings.likeness_max_tries, settings.likeness_reroll_budget_s)
    return LikenessCheck(DlibFaceIdentity(), policy)


async def load_likeness(settings: Settings) -> LikenessCheck | None:
    """`build_likeness` off the event loop, or None when AVATARBOT_LIKENESS is off."""
    if not settings.likeness:
        return None
    return await asyncio.to_thread(build_likeness, settings)


async def load_encoder(settings: Settings, redis: aioredis.Redis) -> ResultEncoder:
    """`build_encoder`, loading the signing keys in a thread (it may create them)."""
    labeller = await asyncio.to_thread(load_labeller, settings)
    return build_encoder(settings, redis, labeller)


__all__ = [
    "Core",
    "build_core",
    "build_encoder",
    "build_intake",
    "build_queue",
    "build_verifier",
    "consumer_name",
    "load_encoder",
    "load_verifier",
    "redis_client",
]


def build_conversation(
    redis: aioredis.Redis,
    queue: JobProducer,
    intake: SelfieIntake,
    catalog: StyleCatalog,
    settings: Settings,
    *,
    verifier: Verifier | None = None,
    cls: type[Conversation] = Conversation,
) -> Conversation:
    """A conversation (`cls`: it or a subclass) with its Redis-backed stores, its gate and
    admin commands."""
    limits = ConversationLimits.from_settings(settings)
    prefix = settings.key_prefix
    selfies = SelfieStore(redis, prefix, limits.selfie_ttl_s)
    return cls(
        queue,
        intake,
        catalog,
        limits,
        sessions=SessionStore(redis, prefix, limits.session_ttl_s),
        selfies=selfies,
        waiting=WaitingJobs(redis, prefix, limits.bot_name),
        languages=LanguagePreferences(redis, prefix),
        verifier=verifier,
        gate=Gatekeeper.from_settings(redis, settings),
        admin=AdminCommands.create(redis, queue, selfies, settings),
    )
