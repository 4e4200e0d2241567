"""Real `avatarbot bot` and worker processes for tests that need a process to kill, signal
or weigh: the bot serves the web chat on a free port; the worker runs the FakeBackend."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def process_env(redis_url: str, prefix: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVATARBOT_", "REDIS_URL"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "AVATARBOT_KEY_PREFIX": prefix,
            "AVATARBOT_DATA_DIR": str(data_dir),
            "AVATARBOT_RECLAIM_IDLE_S": "2",
            "AVATARBOT_RECLAIM_INTERVAL_S": "0.5",
            # One test client sends what many users would: rate limits are for attackers.
            "AVATARBOT_WEB_UPLOADS_PER_MINUTE": "10000",
            "AVATARBOT_WEB_UPLOADS_PER_IP_MINUTE": "10000",
            "AVATARBOT_WEB_IDENTITIES_PER_IP_DAY": "10000",
            "HF_HUB_OFFLINE": "1",
            **extra,
        }
    )
    return env


@dataclass
class BotProcess:
    proc: subprocess.Popen[bytes]
    url: str
    output: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def memory_kb(self) -> dict[str, int]:
        """VmRSS (resident now) and VmHWM (peak resident) from /proc, in kB."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
        return out

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def start_bot(env: dict[str, str], output: Path) -> BotProcess:
    port = free_port()
    env = {**env, "AVATARBOT_WEB_ENABLED": "true", "AVATARBOT_WEB_PORT": str(port)}
    with output.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "avatarbot.cli", "bot"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return BotProcess(proc, f"http://127.0.0.1:{port}", output)


def start_worker(env: dict[str, str], output: Path, **fake: str) -> subprocess.Popen[bytes]:
    with output.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.worker_process"],
            env={**env, **fake},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_cli_worker(env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """`avatarbot worker` as an operator runs it (CPU engine, labelled avatars)."""
    with output.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "avatarbot.cli", "worker"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> int:
    """SIGTERM, wait; SIGKILL if it will not go. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise


@contextlib.contextmanager
def stopped_at_exit(*procs: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def session() -> aiohttp.ClientSession:
    """One browser-like user: keeps the web chat's cookie (set for 127.0.0.1, an IP)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def wait_healthy(http: aiohttp.ClientSession, bot: BotProcess, timeout_s: float = 60) -> None:
    """Until /healthz says ok (Redis answers and a worker is registered)."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert bot.proc.poll() is None, bot.log()
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(bot.url + "/healthz") as response:
                if response.status == 200:
                    return
        assert time.monotonic() < deadline, "bot never became healthy:\n" + bot.log()
        await asyncio.sleep(0.2)


async def send_selfie(
    http: aiohttp.ClientSession, bot: BotProcess, data: bytes
) -> tuple[int, list[dict[str, Any]]]:
    async with http.post(
        bot.url + "/api/selfie",
        data=io.BytesIO(data),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
    ) as response:
        body = await response.json()
        return response.status, body["messages"]


async def choose(
    http: aiohttp.ClientSession, bot: BotProcess, style_id: str
) -> list[dict[str, Any]]:
    async with http.post(
        bot.url + "/api/choose", json={"style_id": style_id, "variants": 1}
    ) as response:
        assert response.status == 200
        body = await response.json()
        messages: list[dict[str, Any]] = body["messages"]
        return messages


async def wait_for_kind(
    http: aiohttp.ClientSession,
    bot: BotProcess,
    kind: str,
    *,
    after: int = 0,
    timeout_s: float = 60,
) -> dict[str, Any]:
    """Poll the history until a message of `kind` appears beyond the first `after`."""
    deadline = time.monotonic() + timeout_s
    while True:
        async with http.get(bot.url + "/api/history") as response:
            messages = (await response.json())["messages"]
        for message in messages[after:]:
            if message["kind"] == kind:
                return dict(message)
        assert time.monotonic() < deadline, f"no {kind} message: {messages[-3:]}\n{bot.log()}"
        await asyncio.sleep(0.2)
