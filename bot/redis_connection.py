"""Connecting to Redis: one client per process, retried with backoff, version-checked.

Redis may be slow to come up (a container starting beside us) or briefly gone; we
retry with capped exponential backoff and say clearly what we are waiting for, instead
of crash-looping. Streams commands we rely on (XAUTOCLAIM) need Redis >= 6.2.
"""

from __future__ import annotations

import asyncio
import logging
import random
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.errors import AvatarbotError
from bot.i18n import N_

log = logging.getLogger(__name__)

MIN_VERSION = (6, 2, 0)


class RedisUnavailableError(AvatarbotError):
    """Redis could not be reached within the allowed time."""

    user_text = N_("I'm having trouble reaching my queue. Please try again shortly.")


class RedisTooOldError(AvatarbotError):
    """The server is older than the Streams features avatarbot needs."""


def redact_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def make_client(url: str) -> aioredis.Redis:
    """A client that retries individual commands on transient connection errors."""
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3)
    errors: list[type[Exception]] = [RedisConnectionError, RedisTimeoutError]
    if url.startswith("unix://"):  # unix sockets reject the TCP keepalive option
        return aioredis.Redis.from_url(
            url, socket_connect_timeout=5, health_check_interval=15, retry=retry,
            retry_on_error=errors,
        )  # fmt: skip
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=5, health_check_interval=15, retry=retry,
        retry_on_error=errors, socket_keepalive=True,
    )  # fmt: skip


def parse_version(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split(".")[:3] if p.isdigit()]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


async def server_version(client: aioredis.Redis) -> tuple[int, int, int]:
    info = await client.info("server")
    return parse_version(str(info.get("redis_version", "0")))


async def connect(
    url: str,
    *,
    wait_s: float = 60.0,
    initial_delay_s: float = 0.2,
    max_delay_s: float = 5.0,
) -> aioredis.Redis:
    """Connect to `url`, waiting up to `wait_s` with backoff; check the server version.

    Raises RedisUnavailableError when the server never answered, RedisTooOldError when it
    is older than 6.2.
    """
    client = make_client(url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = initial_delay_s
    attempt = 0
    while True:
        attempt += 1
        try:
            await client.ping()
            break
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            remaining = deadline - loop.time()
            if remaining <= 0:
                await client.aclose()
                raise RedisUnavailableError(
                    f"Redis at {redact_url(url)} did not answer after {attempt} attempts "
                    f"over {wait_s:.0f}s: {exc}"
                ) from None
            sleep_for = min(delay, remaining) * (0.8 + 0.4 * random.random())
            log.warning(
                "Redis at %s not reachable (%s); retrying in %.1fs",
                redact_url(url),
                exc.__class__.__name__,
                sleep_for,
            )
            await asyncio.sleep(sleep_for)
            delay = min(delay * 2, max_delay_s)
    version = await server_version(client)
    if version < MIN_VERSION:
        await client.aclose()
        raise RedisTooOldError(
            f"Redis {'.'.join(map(str, version))} at {redact_url(url)} is too old: "
            f"avatarbot needs >= {'.'.join(map(str, MIN_VERSION))} (XAUTOCLAIM)"
        )
    log.info("connected to Redis %s at %s", ".".join(map(str, version)), redact_url(url))
    return client
