"""The bot process: Redis, the core, the chat adapters, delivery, one HTTP server.

Everything runs on one event loop, so the adapters, the delivery pump, the status tracker
and the HTTP server share it (no framework's own `run()` owns the loop): the HTTP server
(`/healthz`, `/metrics`, plus the web chat and/or the Telegram webhook), the Telegram and
Discord adapters when their tokens are set, one `DeliveryPump` and one `StatusTracker`
shared by all adapters. SIGTERM/SIGINT stop taking updates, let the pump hand over what
is ready, then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from avatarbot.bot_stack import BotStack, build_bot_stack
from avatarbot.http_policy import HttpPolicy
from avatarbot.http_server import MAIN, HttpServer
from avatarbot.platforms import Backoff, Platforms
from avatarbot.signals import stop_on_signals
from avatarbot.wiring import Core, build_core, load_verifier, redis_client
from bot.chat_adapter import ChatAdapter
from bot.config import ConfigError, Settings
from bot.health import queue_probe
from bot.queue import QueueAdmin

if TYPE_CHECKING:
    from adapters.web.chat import WebChat

log = logging.getLogger(__name__)


async def run_bot(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run the configured adapters until SIGTERM/SIGINT (or `stop`). Returns an exit code."""
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set (the bot needs a Redis to queue jobs on)")
    if not (settings.web_enabled or _surfaces(settings)):
        raise ConfigError(
            "no chat surface enabled: set TELEGRAM_BOT_TOKEN or DISCORD_BOT_TOKEN, "
            "or AVATARBOT_WEB_ENABLED=true"
        )
    with stop_on_signals(stop or asyncio.Event()) as stopping:
        async with redis_client(settings.redis_url) as redis:
            core = await build_core(settings, redis, verifier=await load_verifier(settings, redis))
            stack = build_bot_stack(core)
            server = http_server(core, stack)
            adapters = await build_adapters(core, stack, server)
            await serve_bot(stack, server, adapters, stopping)
    return 0


def http_server(core: Core, stack: BotStack) -> HttpServer:
    """The bot process's server on AVATARBOT_WEB_HOST:AVATARBOT_WEB_PORT (and /metrics on
    AVATARBOT_METRICS_PORT when that is set): healthy while a worker is alive; the stack's
    delivery metrics; request bodies capped at the upload limit; the exposure settings
    (allowed hosts, trusted proxies, timeouts) applied to every request."""
    settings = core.settings
    stats = QueueAdmin.sharing(core.queue).stats
    metrics_at = (settings.metrics_host, settings.metrics_port) if settings.metrics_port else None
    server = HttpServer(
        settings.web_host,
        settings.web_port,
        redis=core.redis,
        stats=stats,
        probe=queue_probe(stats),
        client_max_size=settings.max_upload_bytes,
        policy=HttpPolicy.from_settings(settings),
        metrics_at=metrics_at,
    )
    server.add_metrics(stack.metrics.render)
    return server


async def add_web_chat(core: Core, stack: BotStack, server: HttpServer) -> WebChat:
    """The web chat: registered for delivery and status, its routes on the server."""
    from adapters.web.chat import WebChat  # noqa: PLC0415  # only when enabled

    chat = await WebChat.create(core.settings, core.redis, core.queue, core.conversation)
    stack.register(chat)
    server.add_routes(chat.add_routes)
    server.add_metrics(chat.metrics)
    return chat


async def serve_bot(
    stack: BotStack,
    server: HttpServer,
    adapters: Sequence[ChatAdapter],
    stop: asyncio.Event,
    *,
    ready: Callable[[str], None] | None = None,
    backoff: Backoff | None = None,
) -> None:
    """Serve until `stop` is set: the HTTP server, the pump and tracker, the adapters
    (`avatarbot.platforms`: each started on its own and retried while its platform cannot
    be reached). Then deliver what is ready while the adapters can still send, close them,
    close the server. `ready(url)` is called once the server listens."""
    settings = stack.core.settings
    platforms = Platforms(adapters, backoff=backoff)
    if adapters:
        server.add_health("platforms", platforms.health)
        server.add_metrics(platforms.metrics)
    url = await server.start()
    try:
        what = "web chat" if settings.web_enabled else "health and metrics"
        log.info("%s at %s", what, url)
        print(f"avatarbot {what}: {url}", flush=True)  # the one line a user needs
        for name, listener in server.listeners.items():
            if name != MAIN:
                log.info("%s alone at %s", name, listener.url)
        if ready is not None:
            ready(url)
        stack.start()
        running = asyncio.create_task(platforms.run(stop), name="platforms")
        announce = asyncio.create_task(_announce(platforms, settings), name="announce")
        try:
            await _until_stopped_or_failed(stop, [*stack.tasks, running])
        finally:
            announce.cancel()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
            log.info("stopping: delivering what is ready, then closing the adapters")
            await stack.stop()  # adapters still hold their HTTP sessions here
            await platforms.stop()
    finally:
        await server.stop()


async def _announce(platforms: Platforms, settings: Settings) -> None:
    """Say once that the bot runs, when every platform has started."""
    await platforms.all_up()
    log.info("bot %s running: %s", settings.bot_name, _describe(settings))


async def build_adapters(core: Core, stack: BotStack, server: HttpServer) -> list[ChatAdapter]:
    """The enabled chat surfaces, registered for delivery and status; their routes added
    to the server. Each adapter package is imported only when it is used."""
    settings = core.settings
    adapters: list[ChatAdapter] = []
    if settings.web_enabled:
        await add_web_chat(core, stack, server)
    if settings.telegram_bot_token is not None:
        from adapters.telegram import TelegramAdapter  # noqa: PLC0415  # only when used

        tg = TelegramAdapter(settings, core.conversation, core.redis)
        stack.register(tg)
        if settings.telegram_webhook_url:
            server.add_routes(tg.add_routes, to=_webhook_listener(settings, server))
        adapters.append(tg)
    if settings.discord_bot_token is not None:
        from adapters.discord import DiscordAdapter  # noqa: PLC0415  # only when used

        dc = DiscordAdapter(settings, core.conversation, core.redis)
        stack.register(dc)
        adapters.append(dc)
    return adapters


def _webhook_listener(settings: Settings, server: HttpServer) -> str:
    """Where the Telegram webhook is served: AVATARBOT_WEBHOOK_PORT alone when set."""
    if not settings.webhook_port:
        return MAIN
    host = settings.webhook_host or settings.web_host
    return server.listen_apart("webhook", host, settings.webhook_port).name


async def _until_stopped_or_failed(
    stop: asyncio.Event, loops: Sequence[asyncio.Task[None]]
) -> None:
    """Wait for `stop`; a loop that ended on its own (it should not) ends the wait and
    its error is raised."""
    waiter = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait({waiter, *loops}, return_when="FIRST_COMPLETED")
    waiter.cancel()
    for task in done:
        if task is not waiter and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # checked not None just above


def _surfaces(settings: Settings) -> list[str]:
    """The platform adapters whose tokens are set."""
    names = []
    if settings.telegram_bot_token is not None:
        names.append("Telegram (webhook)" if settings.telegram_webhook_url else "Telegram")
    if settings.discord_bot_token is not None:
        names.append("Discord")
    return names


def _describe(settings: Settings) -> str:
    return ", ".join((["web chat"] if settings.web_enabled else []) + _surfaces(settings))
