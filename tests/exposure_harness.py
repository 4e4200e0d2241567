"""A bot process's HTTP surfaces served in-process the way `avatarbot bot` wires them (the
core, the delivery stack, `http_server`, `build_adapters`, `serve_bot`), for tests that
attack them; and a raw HTTP/1.1 client that sends exactly the bytes it is given."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import redis.asyncio as aioredis

from avatarbot.bot_process import build_adapters, http_server, serve_bot
from avatarbot.bot_stack import build_bot_stack
from avatarbot.http_server import HttpServer, RouteAdder
from avatarbot.platforms import Backoff
from avatarbot.wiring import build_core
from bot.config import Settings
from bot.logs import RedactingFilter


@dataclass
class Served:
    url: str
    """The main listener, `http://127.0.0.1:port` (no trailing slash)."""
    server: HttpServer
    urls: dict[str, str] = field(default_factory=dict)
    """Every listener's URL by name (main, webhook, metrics), without trailing slash."""

    async def platforms(self) -> dict[str, Any]:
        """`/healthz`'s `platforms` (each chat platform's state)."""
        async with aiohttp.ClientSession() as http, http.get(self.url + "/healthz") as response:
            body: dict[str, Any] = await response.json()
        return dict(body.get("platforms", {}))

    async def until_up(self, within: float = 20) -> None:
        """Until every chat platform has started."""
        async with asyncio.timeout(within):
            while not all(p["state"] == "up" for p in (await self.platforms()).values()):  # noqa: ASYNC110  # polls the server
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, redis: aioredis.Redis, *, routes: RouteAdder | None = None
) -> AsyncIterator[Served]:
    """The configured surfaces on their ports until the block ends (`routes`: more routes
    on the main listener, e.g. one with a bug)."""
    core = await build_core(settings, redis)
    stack = build_bot_stack(core, pump_block_ms=50, tracker_interval_s=0.1)
    server = http_server(core, stack)
    adapters = await build_adapters(core, stack, server)
    if routes is not None:
        server.add_routes(routes)
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_bot(stack, server, adapters, stop, ready=ready.set_result, backoff=Backoff(0.2, 1))
    )
    try:
        await asyncio.wait({ready, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        urls = {name: li.url.rstrip("/") for name, li in server.listeners.items()}
        yield Served(url=urls["main"], server=server, urls=urls)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


async def raw_request(url: str, data: bytes, *, timeout_s: float = 10) -> RawResponse:
    """Send `data` as is on a fresh connection to `url`'s host and port; read one answer."""
    reader, writer = await connect(url)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(read_response(reader), timeout_s)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return RawResponse(status, headers, body)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def request_bytes(
    method: str, path: str, host: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def host_of(url: str) -> str:
    return urlsplit(url).netloc


class Captured(logging.Handler):
    """Every record (DEBUG and up) kept raw, and the same records formatted as production
    formats them: through `RedactingFilter`, told the secrets as the CLI tells it."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.raw: list[str] = []
        self.output = io.StringIO()
        self._production = logging.StreamHandler(self.output)
        self._production.addFilter(RedactingFilter(secrets))
        self._production.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.raw.append(text)
        self.records.append(record)
        self._production.handle(logging.makeLogRecord(record.__dict__))

    def lines(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]

    @property
    def text(self) -> str:
        """What production would have written."""
        return self.output.getvalue()

    def everything(self) -> str:
        """Both: the raw records (with tracebacks) and the production output."""
        return "\n".join(self.raw) + "\n" + self.text


@contextlib.contextmanager
def captured_logs(*secrets: str) -> Iterator[Captured]:
    handler = Captured(secrets)
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    root.handlers.insert(0, handler)  # first: before any filter rewrites the records
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def one_line(response: RawResponse | Any) -> bool:
    body = response.body if isinstance(response, RawResponse) else response
    return body.count(b"\n") <= 1 and b"Traceback" not in body
