from __future__ import annotations

import stat
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
