from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import pytest

from bot.redis_connection import (
    RedisUnavailableError,
    connect,
    parse_version,
    redact_url,
)
from tests.conftest import RedisServer, free_port


async def test_connects_and_checks_version(redis_url: str) -> None:
    client = await connect(redis_url, wait_s=2)
    assert await client.ping()
    await client.aclose()


async def test_unreachable_redis_fails_with_a_clear_error_after_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:hunter2pass@127.0.0.1:{free_port()}/0"
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(RedisUnavailableError, match="did not answer"),
    ):
        await connect(url, wait_s=2.5, initial_delay_s=0.05)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) >= 2  # it retried, with backoff, instead of dying at once
    assert "hunter2pass" not in caplog.text


async def test_waits_for_a_redis_that_starts_late(
    redis_server_factory: Callable[[], RedisServer], tmp_path: object
) -> None:
    server = redis_server_factory()
    server.kill()
    timer = threading.Timer(0.5, server.start)
    timer.start()
    try:
        client = await connect(server.url, wait_s=10, initial_delay_s=0.05)
        assert await client.ping()
        await client.aclose()
    finally:
        timer.join()
    await asyncio.sleep(0)


def test_redact_url_hides_password() -> None:
    assert redact_url("redis://user:pw123@h:6379/0") == "redis://user:***@h:6379/0"
    assert redact_url("redis://:pw123@h/0") == "redis://:***@h/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_parse_version() -> None:
    assert parse_version("7.0.15") == (7, 0, 15)
    assert parse_version("6.2") == (6, 2, 0)
    assert parse_version("8.4.0-rc1") >= (8, 4, 0) or parse_version("8.4.0-rc1")[:2] == (8, 4)
