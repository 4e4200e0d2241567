from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from avatarbot.embedded_redis import EmbeddedRedis, EmbeddedRedisError


def _client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(server.socket_path))


def test_starts_with_aof_on_private_socket_and_keeps_data_across_restarts(
    tmp_path: Path,
) -> None:
    data = tmp_path / "d"
    with EmbeddedRedis(data) as server:
        assert server.owned
        client = _client(server)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("port")["port"] == "0"  # no TCP listener
        mode = stat.S_IMODE(server.directory.stat().st_mode)
        assert mode == 0o700
        client.xadd("jobs", {"k": "v"})
        client.close()
    assert not server.socket_path.exists() or not server.owned

    with EmbeddedRedis(data) as again:
        client = _client(again)
        assert client.xlen("jobs") == 1  # replayed from the AOF
        client.close()


def test_second_instance_attaches_and_does_not_stop_the_owner(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as owner:
        other = EmbeddedRedis(tmp_path)
        assert other.start() == owner.url
        assert not other.owned
        other.stop()
        client = _client(owner)
        assert client.ping()
        client.close()


def test_version_is_new_enough_for_xautoclaim(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        client = _client(server)
        major, minor = (int(p) for p in str(client.info()["redis_version"]).split(".")[:2])
        assert (major, minor) >= (6, 2)
        client.close()


def test_bad_executable_fails_clearly(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, executable="/bin/false")
    with pytest.raises(EmbeddedRedisError, match="exited"):
        server.start()


def test_too_long_data_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="too long"):
        EmbeddedRedis(tmp_path / ("x" * 120))


async def test_connect_reaches_the_embedded_server_over_its_socket(tmp_path: Path) -> None:
    from bot.redis_connection import connect  # noqa: PLC0415

    with EmbeddedRedis(tmp_path) as server:
        client = await connect(server.url, wait_s=5)
        assert await client.ping()
        await client.aclose()


def test_server_left_by_a_killed_owner_is_adopted_and_stopped(tmp_path: Path) -> None:
    """An owner killed with SIGKILL cannot stop its server; the next one to find it owns
    it from then on and stops it like one it started."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    with owner:
        assert owner.stdout is not None
        server_pid = int(owner.stdout.readline())
        owner.kill()
        owner.wait(10)
    try:
        assert EmbeddedRedis(tmp_path).is_running()  # left behind
        heir = EmbeddedRedis(tmp_path)
        heir.start()
        assert heir.owned
        assert heir.owner_path.read_text().split()[0] == str(os.getpid())
        heir.stop()
        assert not EmbeddedRedis(tmp_path).is_running()
        assert not heir.owner_path.exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server_pid, signal.SIGKILL)


def test_server_of_a_living_owner_is_never_adopted(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as owner:
        owner.owner_path.unlink()  # no record at all: attach, never adopt
        guest = EmbeddedRedis(tmp_path)
        guest.start()
        assert not guest.owned
        guest.stop()
        assert owner.is_running()


#: Starts an embedded Redis in the data dir given, prints its pid, waits to be killed.
OWNER = """
import sys, time
from pathlib import Path
import redis
from avatarbot.embedded_redis import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1]))
server.start()
client = redis.Redis(unix_socket_path=str(server.socket_path))
print(client.info("server")["process_id"], flush=True)
time.sleep(600)
"""
