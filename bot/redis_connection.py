"""Connecting to Redis: one client per process, retried with backoff, version-checked.

Redis may be slow to come up (a container starting beside us) or briefly gone; we
retry with capped exponential backoff and say clearly what we are waiting for, instead
of crash-looping. Streams commands we rely on (XAUTOCLAIM) need Redis >= 6.2.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, InvalidResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.errors import AvatarbotError
from bot.i18n import N_

log = logging.getLogger(__name__)

MIN_VERSION = (6, 2, 0)


#: What went wrong, in an operator's words, per errno of the OS error underneath.
_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ENOENT: "no such socket file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timed out",
}
#: Errors that mean "no usable Redis there" (retried while waiting for one to come up).
CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, InvalidResponse, OSError)


class RedisUnavailableError(AvatarbotError):
    """Redis could not be reached within the allowed time.

    Chat users get `user_message`; operators (the command line, logs) get
    `operator_message`: the URL, password redacted, and the reason in a few words.
    """

    user_text = N_("I'm having trouble reaching my queue. Please try again shortly.")

    def __init__(self, url: str = "", reason: str = "", detail: str = "") -> None:
        self.url = redact_url(url) if url else ""
        self.reason = reason
        super().__init__(detail or self.operator_message)

    @property
    def operator_message(self) -> str:
        where = f" at {self.url}" if self.url else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"cannot reach Redis{where}{why}"


class RedisTooOldError(AvatarbotError):
    """The server is older than the Streams features avatarbot needs."""

    @property
    def operator_message(self) -> str:
        return str(self)


def connection_problem(exc: BaseException) -> str:
    """Why a connection to Redis failed, in a few words ("connection refused")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AuthenticationError):
            return "authentication failed"
        if isinstance(seen, InvalidResponse):
            return "not a Redis server"
        if isinstance(seen, socket.gaierror):
            return "unknown host"
        if isinstance(seen, TimeoutError | RedisTimeoutError):
            return "timed out"
        if isinstance(seen, OSError) and seen.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[seen.errno]
        seen = seen.__cause__ or seen.__context__
    return exc.__class__.__name__


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
    retry_log_level: int = logging.WARNING,
) -> aioredis.Redis:
    """Connect to `url`, waiting up to `wait_s` with backoff; check the server version.

    Raises RedisUnavailableError when the server never answered, RedisTooOldError when it
    is older than 6.2. Each retry is logged at `retry_log_level` (one-shot commands pass
    INFO: their terminal shows only the final error).
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
        except CONNECTION_ERRORS as exc:
            remaining = deadline - loop.time()
            reason = connection_problem(exc)
            if remaining <= 0:
                await client.aclose()
                raise RedisUnavailableError(
                    url,
                    reason,
                    f"Redis at {redact_url(url)} did not answer after {attempt} attempts "
                    f"over {wait_s:.0f}s: {reason}",
                ) from None
            sleep_for = min(delay, remaining) * (0.8 + 0.4 * random.random())
            log.log(
                retry_log_level,
                "Redis at %s not reachable (%s); retrying in %.1fs",
                redact_url(url),
                reason,
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
