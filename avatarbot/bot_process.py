"""The bot process, wired in one place: Redis, queue, conversation, adapters, delivery.

One event loop runs everything (CONVENTIONS §9): the HTTP server (web chat and/or
/healthz, /metrics, the Telegram webhook), the Telegram and Discord adapters when their
tokens are set, one `DeliveryPump` and one `StatusTracker` shared by all adapters.
SIGTERM/SIGINT stop taking updates, let the pump hand over what is ready, then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

import redis.asyncio as aioredis
from aiohttp import web

from bot.chat_adapter import register
from bot.config import ConfigError, Settings
from bot.conversation import Conversation
from bot.delivery import DeliveryPump, StatusTracker
from bot.faces import DlibHogDetector
from bot.metrics import BotMetrics
from bot.queue import JobQueue, QueueConfig
from bot.redis_connection import connect
from bot.selfie import IntakeLimits, SelfieIntake
from bot.styles import StyleCatalog
from provenance.labelling import ImageVerifier, load_labeller
from provenance.marks import MarkRegistry

log = logging.getLogger(__name__)

_DRAIN_S = 5.0
"""After a stop signal, how long the pump may keep delivering results that are ready."""


class ChatAdapter(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def consumer_name(kind: str) -> str:
    host = socket.gethostname().split(".")[0] or "host"
    return f"{kind}-{host}-{os.getpid()}-{secrets.token_hex(3)}"


async def run_bot(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run the configured adapters until SIGTERM/SIGINT (or `stop`). Returns an exit code."""
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set (the bot needs a Redis to queue jobs on)")
    telegram = settings.telegram_bot_token is not None
    discord = settings.discord_bot_token is not None
    if not (settings.web_enabled or telegram or discord):
        raise ConfigError(
            "no chat surface enabled: set TELEGRAM_BOT_TOKEN or DISCORD_BOT_TOKEN, "
            "or AVATARBOT_WEB_ENABLED=true"
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    redis = await connect(settings.redis_url)
    try:
        await _serve(settings, redis, stop)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await redis.aclose()
    return 0


async def _serve(settings: Settings, redis: aioredis.Redis, stop: asyncio.Event) -> None:
    queue = JobQueue(redis, QueueConfig.from_settings(settings))
    await queue.ensure_groups(settings.bot_name)
    catalog = StyleCatalog.load(settings.styles_file)
    intake = SelfieIntake(DlibHogDetector(), IntakeLimits(max_bytes=settings.max_upload_bytes))
    labeller = await asyncio.to_thread(load_labeller, settings)
    registry = MarkRegistry(redis, settings.key_prefix, ttl_s=settings.mark_ttl_s)
    verifier = ImageVerifier(labeller, registry=registry, loop=asyncio.get_running_loop())
    conversation = Conversation.create(redis, queue, intake, catalog, settings, verifier=verifier)
    metrics = BotMetrics()
    pump = DeliveryPump(
        queue, conversation, settings.bot_name, consumer_name("bot"), metrics=metrics
    )
    tracker = StatusTracker(queue, conversation, conversation.waiting, redis, settings.key_prefix)

    adapters, routes = _adapters(settings, conversation, redis, pump, tracker)

    from adapters.web.chat import serve_web_chat  # noqa: PLC0415

    def configure(app: web.Application) -> None:
        for add in routes:
            add(app)

    server_stop = asyncio.Event()
    server = asyncio.create_task(
        serve_web_chat(
            settings, redis, queue, conversation, server_stop,
            pump=pump, tracker=tracker, metrics=metrics,
            chat_ui=settings.web_enabled, configure=configure,
        ),
        name="http",
    )  # fmt: skip
    pump_stop = asyncio.Event()
    background = [
        asyncio.create_task(pump.run(pump_stop), name="delivery"),
        asyncio.create_task(tracker.run(pump_stop), name="status"),
    ]
    started: list[ChatAdapter] = []
    try:
        for adapter in adapters:
            await _until_stopped(adapter.start(), stop)
            started.append(adapter)
        log.info("bot %s running: %s", settings.bot_name, _surfaces(settings))
        waiter = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({waiter, server, *background}, return_when="FIRST_COMPLETED")
        waiter.cancel()
        for task in done:
            if task is not waiter and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]  # checked not None just above
    finally:
        log.info("stopping: delivering what is ready, then closing the adapters")
        pump_stop.set()
        for task in background:  # the pump's loop ends after its current read
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        await _drain(pump)  # adapters still hold their HTTP sessions here
        for adapter in reversed(started):
            with contextlib.suppress(Exception):
                await adapter.stop()
        server_stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(server, 10)


def _adapters(
    settings: Settings,
    conversation: Conversation,
    redis: aioredis.Redis,
    pump: DeliveryPump,
    tracker: StatusTracker,
) -> tuple[list[ChatAdapter], list[Callable[[web.Application], None]]]:
    """The platform adapters whose tokens are set, registered for delivery and status."""
    adapters: list[ChatAdapter] = []
    routes: list[Callable[[web.Application], None]] = []
    if settings.telegram_bot_token is not None:
        from adapters.telegram import TelegramAdapter  # noqa: PLC0415  # only when used

        tg = TelegramAdapter(settings, conversation, redis)
        register(tg, pump, tracker)
        if settings.telegram_webhook_url:
            routes.append(tg.add_routes)
        adapters.append(tg)
    if settings.discord_bot_token is not None:
        from adapters.discord import DiscordAdapter  # noqa: PLC0415  # only when used

        dc = DiscordAdapter(settings, conversation, redis)
        register(dc, pump, tracker)
        adapters.append(dc)
    return adapters, routes


async def _until_stopped(call: Awaitable[None], stop: asyncio.Event) -> None:
    """Await an adapter's start, unless a stop signal comes first."""
    task = asyncio.ensure_future(call)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when="FIRST_COMPLETED")
    waiter.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return
    task.result()


async def _drain(pump: DeliveryPump) -> None:
    """Deliver results already waiting on the stream, for a bounded time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _DRAIN_S
    with contextlib.suppress(Exception):
        while loop.time() < deadline:
            if await pump.pump_once(block_ms=1) == 0 and pump.retrying == 0:
                return


def _surfaces(settings: Settings) -> str:
    names = []
    if settings.web_enabled:
        names.append("web chat")
    if settings.telegram_bot_token is not None:
        names.append("Telegram (webhook)" if settings.telegram_webhook_url else "Telegram")
    if settings.discord_bot_token is not None:
        names.append("Discord")
    return ", ".join(names)
