"""A running web chat for tests and the bench: real Redis, queue, intake, conversation, an
in-process CPU worker and the aiohttp server on a free port, all on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from adapters.web.chat import serve_web_chat
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
    """Serve the web chat (own delivery pump and status tracker) until the block ends."""
    async with chat_stack(settings, redis, verifier=production_verifier(settings, redis)) as stack:
        for _ in range(workers):
            stack.start_worker()
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(
            serve_web_chat(
                settings,
                redis,
                stack.queue,
                stack.conversation,
                stop,
                ready=ready.set_result,
            )
        )
        try:
            waiting: set[asyncio.Future[Any]] = {ready, server}
            await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if server.done():
                server.result()  # raises what stopped it
            url = ready.result()
            yield RunningWebChat(url=url.rstrip("/"), stack=stack)
        finally:
            stop.set()
            await asyncio.wait_for(server, 30)
