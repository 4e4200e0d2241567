"""What an anonymous client can make the bot hold (issue #19, defect 2): uploads and new
identities are rate-limited per identity and per client address (behind a trusted proxy:
the forwarded one), a fresh cookie is no way round a used daily quota, and a full Redis
(`maxmemory`, `noeviction`: the embedded one is started so) answers "busy, try later"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis

from avatarbot.commands import redis_url_for
from avatarbot.embedded_redis import EmbeddedRedis
from bot import texts
from bot.config import Settings, load_settings
from bot.queue import QueueConfig
from bot.rate_limits import RateLimit, RateLimited, RateLimiter
from bot.styles import StyleCatalog
from tests.bot_side import InProcessWorker
from tests.conftest import DATA, RedisServer
from tests.exposure_harness import Served, serving
from tests.queue_helpers import JobQueue


@pytest.fixture
def web_settings(settings_factory: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**extra: str) -> Settings:
        return settings_factory(AVATARBOT_WEB_ENABLED="true", AVATARBOT_WEB_PORT="0", **extra)

    return make


def session() -> aiohttp.ClientSession:
    """A new browser: its own cookie jar (cookies for 127.0.0.1 kept)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def visit(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any] | None, aiohttp.ClientResponse]:
    async with http.get(url + "/api/history", headers=headers or {}) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, response


async def upload(
    http: aiohttp.ClientSession, url: str, data: bytes = b"not a photo"
) -> tuple[int, list[dict[str, Any]], str | None]:
    async with http.post(
        url + "/api/selfie", data=data, headers={"Content-Type": "image/jpeg"}
    ) as response:
        body = await response.json()
        return response.status, body["messages"], response.headers.get("Retry-After")


async def until_kind(http: aiohttp.ClientSession, url: str, kind: str) -> None:
    async with asyncio.timeout(30):
        while True:
            _, body, _ = await visit(http, url)
            if body is not None and any(m["kind"] == kind for m in body["messages"]):
                return
            await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- counters


async def test_a_rate_limit_counts_in_redis_with_a_ttl(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    limiter = RateLimiter(redis_client, key_prefix)
    limit = RateLimit("t", 2, 30)
    await limiter.hit(limit, "who")
    await limiter.hit(limit, "who")
    with pytest.raises(RateLimited) as refused:
        await limiter.hit(limit, "who")
    assert 1 <= refused.value.retry_after_s <= 30
    await limiter.hit(limit, "someone else")
    ttl = await redis_client.ttl(f"{key_prefix}:rate:t:who")
    assert 0 < ttl <= 30  # it expires with its window: nothing leaks


# --------------------------------------------------------------------------- identities


async def test_new_identities_per_address_are_limited_and_a_fresh_cookie_keeps_no_quota(
    web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    settings = web_settings(AVATARBOT_DAILY_QUOTA="1", AVATARBOT_WEB_IDENTITIES_PER_IP_DAY="2")
    queue = JobQueue(redis_client, QueueConfig.from_settings(settings))
    worker = InProcessWorker(queue, StyleCatalog.load(None), settings, redis_client)
    async with serving(settings, redis_client) as served, session() as first:
        status, _, _ = await visit(first, served.url)
        assert status == 200
        await worker.start()
        try:
            for expected in ("queued", "failure"):  # the day's one avatar, then the quota
                await upload(first, served.url, (DATA / "astronaut.jpg").read_bytes())
                async with first.post(served.url + "/api/choose", json={"style_id": "sketch"}) as r:
                    reply = (await r.json())["messages"][-1]
                assert reply["kind"] == expected, reply
                await until_kind(first, served.url, "avatar")
        finally:
            await worker.stop()
        assert "daily limit" in reply["text"]

        async with session() as second:  # a fresh cookie: the address's second identity
            assert (await visit(second, served.url))[0] == 200
        async with session() as third:  # and no more today
            status, body, response = await visit(third, served.url)
            assert status == 429
            assert body is not None
            assert body["messages"][0]["text"] == texts.too_many_new_visitors()
            assert "Set-Cookie" not in response.headers
            assert int(response.headers["Retry-After"]) > 3600
        assert (await visit(first, served.url))[0] == 200  # known browsers carry on


async def test_behind_a_trusted_proxy_the_forwarded_address_counts(
    web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    async def statuses(served: Served, addresses: list[str]) -> list[int]:
        out = []
        for address in addresses:
            async with session() as http:
                out.append((await visit(http, served.url, {"X-Forwarded-For": address}))[0])
        return out

    one_a_day = {"AVATARBOT_WEB_IDENTITIES_PER_IP_DAY": "1"}
    trusted = web_settings(AVATARBOT_TRUSTED_PROXIES="127.0.0.1", **one_a_day)
    async with serving(trusted, redis_client) as served:
        got = await statuses(
            served,
            [
                "203.0.113.5",
                "203.0.113.5",
                "203.0.113.6",
                "198.51.100.1, 203.0.113.7",
                "10.9.9.9, 203.0.113.7",  # the nearest hop counts
                "2001:db8::1",
                "2001:db8::2",
                "2001:db8:0:1::1",  # IPv6: per /64
            ],
        )
        assert got == [200, 429, 200, 200, 429, 200, 429, 200]
    untrusted = web_settings(AVATARBOT_KEY_PREFIX=trusted.key_prefix + "-b", **one_a_day)
    async with serving(untrusted, redis_client) as served:
        # Not from a trusted proxy: the header is ignored, the peer (127.0.0.1) counts.
        assert await statuses(served, ["203.0.113.5", "203.0.113.6"]) == [200, 429]
    keys = [k async for k in redis_client.scan_iter(match=f"{trusted.key_prefix}*:rate:*")]
    assert keys
    assert not [k for k in keys if b"203.0.113" in k or b"2001:db8" in k]  # never an address


# --------------------------------------------------------------------------- uploads


async def test_uploads_are_limited_per_identity_and_per_address(
    web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    settings = web_settings(
        AVATARBOT_WEB_UPLOADS_PER_MINUTE="2", AVATARBOT_WEB_UPLOADS_PER_IP_MINUTE="3"
    )
    async with serving(settings, redis_client) as served, session() as a, session() as b:
        for http in (a, b):
            await visit(http, served.url)
        assert (await upload(a, served.url))[0] == 200
        assert (await upload(a, served.url))[0] == 200
        status, messages, retry = await upload(a, served.url)  # a's third in a minute
        assert status == 429
        assert retry is not None
        assert 1 <= int(retry) <= 60
        assert messages[0]["text"].startswith("That's a lot of photos")
        # The address's allowance (3) was used by a's three tries: b is refused too.
        assert (await upload(b, served.url))[0] == 429


# --------------------------------------------------------------------------- a full Redis


@pytest.fixture
async def small_redis(
    redis_server_factory: Callable[[], RedisServer],
) -> AsyncIterator[tuple[RedisServer, aioredis.Redis]]:
    server = redis_server_factory()
    client = aioredis.Redis.from_url(server.url)
    await client.config_set("maxmemory-policy", "noeviction")
    yield server, client
    await client.aclose()


async def fill(client: aioredis.Redis) -> None:
    """Set `maxmemory` just above what is used, then write until Redis refuses."""
    used = int((await client.info("memory"))["used_memory"])
    await client.config_set("maxmemory", used + 2 * 1024 * 1024)
    for i in range(10_000):
        try:
            await client.set(f"ballast:{i}", b"x" * 4096)
        except redis.exceptions.OutOfMemoryError:
            return
    raise AssertionError("Redis took 40 MB beyond its maxmemory")


async def test_a_full_redis_answers_busy_try_later(
    web_settings: Callable[..., Settings], small_redis: tuple[RedisServer, aioredis.Redis]
) -> None:
    server, client = small_redis
    settings = web_settings(REDIS_URL=server.url)
    async with serving(settings, client) as served, session() as known, session() as new:
        await visit(known, served.url)
        await fill(client)
        async with known.post(served.url + "/api/message", json={"text": "/avatar"}) as r:
            assert r.status == 503
            assert (await r.json())["messages"][0]["text"] == texts.busy_try_later()
        status, messages, _ = await upload(known, served.url)
        assert (status, messages[0]["text"]) == (503, texts.busy_try_later())
        status, body, _ = await visit(new, served.url)  # counting a new identity writes too
        assert status == 503
        assert body is not None
        assert body["messages"][0]["text"] == texts.busy_try_later()
        await client.flushdb()  # memory back: serving again
        await client.config_set("maxmemory", 0)
        assert (await upload(known, served.url))[0] == 200


def test_the_embedded_redis_has_a_maxmemory_and_refuses_rather_than_evicts(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        {"AVATARBOT_DATA_DIR": str(tmp_path / "d"), "AVATARBOT_REDIS_MAXMEMORY_MB": "48"}
    )
    with redis_url_for(settings) as url:
        client = redis.Redis.from_url(url)
        try:
            assert client.config_get("maxmemory") == {"maxmemory": str(48 * 1024 * 1024)}
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        finally:
            client.close()
    assert EmbeddedRedis(tmp_path / "e").maxmemory_mb == load_settings({}).redis_maxmemory_mb


async def test_rate_limit_keys_never_outlive_a_day(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    limiter = RateLimiter(redis_client, key_prefix)
    await asyncio.gather(*(limiter.hit(RateLimit("d", 100, 86400), f"s{i}") for i in range(20)))
    keys = [k async for k in redis_client.scan_iter(match=f"{key_prefix}:rate:*")]
    ttls = [await redis_client.ttl(k) for k in keys]
    assert len(keys) == 20
    assert all(0 < t <= 86400 for t in ttls)
