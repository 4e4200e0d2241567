"""A running web chat for tests and the bench, served as a bot process serves it: the core,
the delivery pump and status tracker, the process's HTTP server with the web chat's
routes on a free port, and in-process CPU workers, all on one event loop with a real
Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from avatarbot.bot_process import add_web_chat, http_server, serve_bot
from avatarbot.bot_stack import build_bot_stack
from bot.config import Settings
from tests.chat_stack import ChatStack, chat_stack, production_verifier

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class RunningWebChat:
    url: str
    stack: ChatStack


@contextlib.asynccontextmanager
async def running_web_chat(
    settings: Settings, redis: aioredis.Redis, *, workers: int = 1
) -> AsyncIterator[RunningWebChat]:
    """Serve the web chat (with its process's pump and tracker) until the block ends."""
    async with chat_stack(settings, redis, verifier=production_verifier(settings, redis)) as stack:
        for _ in range(workers):
            stack.start_worker()
        bot = build_bot_stack(stack.core)
        server = http_server(stack.core, bot)
        await add_web_chat(stack.core, bot, server)
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(serve_bot(bot, server, [], stop, ready=ready.set_result))
        try:
            waiting: set[asyncio.Future[Any]] = {ready, serving}
            await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if serving.done():
                serving.result()  # raises what stopped it
            url = ready.result()
            yield RunningWebChat(url=url.rstrip("/"), stack=stack)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 30)
