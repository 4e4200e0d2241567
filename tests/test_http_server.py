"""The process's own HTTP server: /healthz and /metrics whatever the chat surfaces, so a
deployment without the web chat (Telegram or Discord only) serves them too, with none of
the web chat's routes, cookies or keys."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import redis.asyncio as aioredis

from avatarbot.bot_process import http_server
from avatarbot.bot_stack import build_bot_stack
from avatarbot.wiring import build_core
from bot.config import Settings
from bot.metrics import queue_families
from tests.conftest import RedisServer


async def test_health_and_metrics_without_the_web_chat(
    settings_factory: Callable[..., Settings], redis_client: aioredis.Redis, key_prefix: str
) -> None:
    settings = settings_factory(AVATARBOT_WEB_ENABLED="false", AVATARBOT_WEB_PORT="0")
    core = await build_core(settings, redis_client)
    stack = build_bot_stack(core)
    server = http_server(core, stack)
    url = (await server.start()).rstrip("/")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/healthz") as response:
                assert response.status == 503  # no worker alive
                health = await response.json()
            async with http.get(url + "/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await response.text()
            async with http.get(url + "/") as page, http.get(url + "/api/history") as api:
                assert (page.status, api.status) == (404, 404)
                assert "Set-Cookie" not in page.headers
    finally:
        await server.stop()
    assert health == {
        "status": "unavailable",
        "reason": "no live worker",
        "queued": 0,
        "running": 0,
        "workers": 0,
    }
    lines = set(text.splitlines())
    assert {
        "avatarbot_up 1",
        'avatarbot_jobs{state="queued"} 0',
        "avatarbot_workers_alive 0",
    } <= lines
    assert "# TYPE avatarbot_outcomes_delivered_total counter" in lines  # the bot's own
    assert "avatarbot_web_sockets" not in text
    assert await redis_client.exists(f"{key_prefix}:web:cookie-secret") == 0


async def test_healthz_and_metrics_when_redis_is_gone(
    settings_factory: Callable[..., Settings],
    redis_server_factory: Callable[[], RedisServer],
) -> None:
    server = redis_server_factory()
    settings = settings_factory(REDIS_URL=server.url, AVATARBOT_WEB_PORT="0")
    redis = aioredis.Redis.from_url(server.url, socket_connect_timeout=0.5)
    core = await build_core(settings, redis)
    http_app = http_server(core, build_bot_stack(core))
    url = await http_app.start()
    server.kill()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "healthz") as response:
                assert response.status == 503
                body = await response.json()
            async with http.get(url + "metrics") as response:
                assert response.status == 200
                text = await response.text()
    finally:
        await http_app.stop()
        await redis.aclose()
    assert body["status"] == "unavailable"
    assert body["reason"].startswith("redis: ")
    assert "avatarbot_up 0" in text.splitlines()
    assert "avatarbot_jobs" not in text


def test_both_processes_share_the_queue_families() -> None:
    class Stats:
        depth, running, dead_letters, live_workers, oldest_age_s = 3, 1, 2, 1, 4.5

    text = "\n".join(line for family in queue_families(Stats()) for line in family)
    assert 'avatarbot_jobs{state="queued"} 3' in text
    assert "avatarbot_dead_letters 2" in text
    assert "avatarbot_queue_lag_seconds 4.5" in text
    assert text.count("# HELP avatarbot_dead_letters ") == 1
    down = [line for family in queue_families(None) for line in family]
    assert down == [
        "# HELP avatarbot_up 1 when Redis answered this scrape.",
        "# TYPE avatarbot_up gauge",
        "avatarbot_up 0",
    ]
