"""The bot process's HTTP surfaces under attack (issue #19): slow clients are cut, odd
input is answered 400 in one line, no credential reaches the log, every error carries the
security headers, the Host header must name the server, and an operator can expose the
Telegram webhook alone. Served in-process as `avatarbot bot` wires them, against a real
Redis and the fake Bot API."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from bot.config import Settings, load_settings
from tests.conftest import free_port
from tests.exposure_harness import (
    RawResponse,
    captured_logs,
    closed_within,
    connect,
    host_of,
    one_line,
    raw_request,
    read_response,
    request_bytes,
    serving,
)
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import telegram_env

WEBHOOK_URL = "https://bot.example.org/telegram/hook"
WEBHOOK_SECRET = "hook-secret-for-exposure-tests"  # noqa: S105  # a test secret
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105  # a header name
JOB = "0123456789abcdef"
SECURITY = {
    "content-security-policy": "default-src 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def web_settings(settings_factory: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**extra: str) -> Settings:
        return settings_factory(AVATARBOT_WEB_ENABLED="true", AVATARBOT_WEB_PORT="0", **extra)

    return make


def webhook_env(fake: FakeTelegram) -> dict[str, str]:
    return {
        **telegram_env(fake),
        "AVATARBOT_TELEGRAM_WEBHOOK_URL": WEBHOOK_URL,
        "AVATARBOT_TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


async def a_cookie(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url + "/") as page:
        assert page.status == 200
        return page.cookies["avatarbot_uid"].value


def assert_secured(headers: dict[str, str] | object) -> None:
    got = {k.lower(): v for k, v in dict(headers).items()}  # type: ignore[call-overload]
    for name, value in SECURITY.items():
        assert value in got.get(name, ""), (name, got)
    assert got.get("server") == "avatarbot", got


# --------------------------------------------------------------------------- 3. slow clients


async def test_idle_slow_header_and_slow_body_connections_are_cut(
    web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    settings = web_settings(AVATARBOT_HTTP_IDLE_TIMEOUT_S="1", AVATARBOT_HTTP_BODY_TIMEOUT_S="1")
    async with serving(settings, redis_client) as served:
        host = host_of(served.url)
        # A connection that never sends anything.
        idle_reader, idle_writer = await connect(served.url)
        # Headers one byte at a time, slower than the timeout allows in total.
        slow_reader, slow_writer = await connect(served.url)
        # A keep-alive connection left idle after its first answer.
        kept_reader, kept_writer = await connect(served.url)
        kept_writer.write(request_bytes("GET", "/healthz", host))
        assert (await read_response(kept_reader)).status in (200, 503)

        async def dribble() -> None:
            for byte in request_bytes("GET", "/", host, headers={"X-Pad": "x" * 60}):
                slow_writer.write(bytes([byte]))
                await asyncio.sleep(0.1)

        dribbling = asyncio.create_task(dribble())
        try:
            idle, slow, kept = await asyncio.gather(
                closed_within(idle_reader, 4),
                closed_within(slow_reader, 4),
                closed_within(kept_reader, 4),
            )
        finally:
            dribbling.cancel()
            for writer in (idle_writer, slow_writer, kept_writer):
                writer.close()
        assert (idle, slow, kept) == (True, True, True)

        # A body that does not arrive: 408 once its deadline passes, then the connection goes.
        reader, writer = await connect(served.url)
        try:
            head = request_bytes(
                "POST", "/api/message", host, headers={"Content-Type": "application/json"}
            )
            writer.write(head.replace(b"Content-Length: 0", b"Content-Length: 100") + b'{"te')
            answer = await asyncio.wait_for(read_response(reader), 5)
            assert answer.status == 408
            assert one_line(answer)
            assert_secured(answer.headers)
            assert await closed_within(reader, 2)
        finally:
            writer.close()


async def test_a_websocket_outlives_the_idle_timeout(
    web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    settings = web_settings(
        AVATARBOT_HTTP_IDLE_TIMEOUT_S="1", AVATARBOT_TRUSTED_PROXIES="127.0.0.1"
    )
    forwarded = {"X-Forwarded-For": "203.0.113.9"}  # and through a trusted proxy
    async with (
        serving(settings, redis_client) as served,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        async with http.get(served.url + "/", headers=forwarded) as page:
            assert page.status == 200
        async with http.ws_connect(served.url + "/api/ws", headers=forwarded) as ws:
            await asyncio.sleep(2.5)
            assert not ws.closed


# --------------------------------------------------------------------------- 4. odd input


async def test_odd_input_is_answered_400_in_one_line_never_a_traceback(
    fake: FakeTelegram, web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    settings = web_settings(**webhook_env(fake))
    assert settings.web_enabled  # asked for, beside the webhook
    with captured_logs() as logs:
        async with serving(settings, redis_client) as served:
            await served.until_up()
            host = host_of(served.url)
            cookie = await a_cookie(served.url)
            jar = {"Cookie": f"avatarbot_uid={cookie}"}

            def webhook(body: bytes, secret: bytes = WEBHOOK_SECRET.encode()) -> bytes:
                head = request_bytes(
                    "POST",
                    "/telegram/hook",
                    host,
                    headers={"Content-Type": "application/json"},
                    body=body,
                )
                return head.replace(
                    b"Host:", SECRET_HEADER.encode() + b": " + secret + b"\r\nHost:"
                )

            def choose(body: bytes) -> bytes:
                return request_bytes(
                    "POST",
                    "/api/choose",
                    host,
                    body=body,
                    headers={"Content-Type": "application/json", **jar},
                )

            cases = {
                "secret header with a non-UTF-8 byte": (webhook(b"{}", secret=b"\xff\xfeab"), 403),
                "media index ²": (
                    request_bytes("GET", f"/media/{JOB}/%C2%B2", host, headers=jar),
                    400,
                ),
                "media index of 5000 digits": (
                    request_bytes("GET", f"/media/{JOB}/{'9' * 5000}", host, headers=jar),
                    400,
                ),
                "variants Infinity": (choose(b'{"style_id": "oil", "variants": Infinity}'), 400),
                "variants NaN": (choose(b'{"style_id": "oil", "variants": NaN}'), 400),
                "variants 1e999": (choose(b'{"style_id": "oil", "variants": 1e999}'), 400),
                "variants of 5000 digits": (choose(b'{"variants": ' + b"9" * 5000 + b"}"), 400),
                "JSON nested 3000 deep": (choose(b"[" * 3000 + b"]" * 3000), 400),
                "JSON nested 12 deep": (choose(b'{"a": ' + b"[" * 11 + b"]" * 11 + b"}"), 400),
                "JSON not UTF-8": (choose(b'{"style_id": "\xff"}'), 400),
                "JSON over 16 KiB": (choose(b'{"t": "' + b"x" * 20_000 + b'"}'), 413),
                **{
                    f"webhook body {body.decode()}": (webhook(body), 400)
                    for body in (b"[]", b"1", b'"x"', b"null", b"{", b'{"message": 1}')
                },
            }
            answers: dict[str, RawResponse] = {}
            for name, (data, _) in cases.items():
                answers[name] = await raw_request(served.url, data)
    for name, (_, status) in cases.items():
        answer = answers[name]
        assert answer.status == status, (name, answer.status, answer.text)
        assert one_line(answer), (name, answer.text)
        assert_secured(answer.headers)
    assert not [r for r in logs.records if r.levelno >= logging.ERROR], logs.lines(logging.ERROR)
    assert "Traceback" not in logs.everything()
    assert fake.violations == []


# --------------------------------------------------------------------------- 5. credentials


def _buggy(app: web.Application) -> None:
    async def bug(request: web.Request) -> web.StreamResponse:
        raise RuntimeError(f"a bug that quotes its request: {dict(request.headers)!r}")

    app.router.add_get("/bug", bug)


async def test_no_failure_puts_a_cookie_or_secret_in_the_log(
    fake: FakeTelegram, web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    settings = web_settings(**webhook_env(fake))
    with captured_logs(WEBHOOK_SECRET, fake.token) as logs:
        async with serving(settings, redis_client, routes=_buggy) as served:
            await served.until_up()
            host = host_of(served.url)
            cookie = await a_cookie(served.url)
            long_cookie = {"Cookie": f"avatarbot_uid={cookie}; pad={'x' * 9000}"}
            attempts = [
                (request_bytes("GET", "/", host, headers=long_cookie), 400),
                (
                    request_bytes(
                        "GET",
                        "/",
                        host,
                        headers={"Cookie": f"avatarbot_uid={cookie}", "X-Bad": "a\x00b"},
                    ),
                    400,
                ),
                (
                    request_bytes(
                        "GET",
                        "/bug",
                        host,
                        headers={
                            "Cookie": f"avatarbot_uid={cookie}",
                            SECRET_HEADER: WEBHOOK_SECRET,
                        },
                    ),
                    500,
                ),
                (
                    request_bytes(
                        "POST",
                        "/telegram/hook",
                        host,
                        headers={SECRET_HEADER: "a-guess-" + WEBHOOK_SECRET[:8]},
                    ),
                    403,
                ),
                (
                    b"GET /\x01 HTTP/1.1\r\nHost: "
                    + host.encode()
                    + b"\r\nCookie: avatarbot_uid="
                    + cookie.encode()
                    + b"\r\n\r\n",
                    400,
                ),
            ]
            for data, status in attempts:
                answer = await raw_request(served.url, data)
                assert answer.status == status, (data[:40], answer.text)
                assert cookie.encode() not in answer.body  # never echoed back either
                assert one_line(answer)
                assert_secured(answer.headers)
    production = logs.text
    for secret in (cookie, cookie.split(".")[1], WEBHOOK_SECRET, fake.token):
        assert secret not in production, secret
    assert "[REDACTED]" in production  # the bug's traceback quoted them: scrubbed
    # Outside the bug's own traceback, no record of the server's held them even before
    # redaction (python-telegram-bot's DEBUG lines quote the secret it is given: scrubbed).
    ours = [
        text
        for record, text in zip(logs.records, logs.raw, strict=True)
        if record.name.startswith(("avatarbot", "adapters", "bot", "aiohttp"))
        and "a bug that quotes" not in text
    ]
    assert not [t for t in ours if cookie in t or WEBHOOK_SECRET in t]
    assert len(logs.lines(logging.ERROR)) == 1  # the bug, and only the bug


async def test_an_aborted_upload_is_one_info_line(
    web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    with captured_logs() as logs:
        async with serving(web_settings(), redis_client) as served:
            cookie = await a_cookie(served.url)
            for _ in range(3):
                _, writer = await connect(served.url)
                head = request_bytes(
                    "POST",
                    "/api/selfie",
                    host_of(served.url),
                    headers={"Content-Type": "image/png", "Cookie": f"avatarbot_uid={cookie}"},
                )
                writer.write(head.replace(b"Content-Length: 0", b"Content-Length: 200000"))
                writer.write(b"\x89PNG" + b"\0" * 4000)
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.transport.abort()  # gone mid-upload
            await asyncio.sleep(0.5)
    gone = [r for r in logs.records if "went away" in r.getMessage()]
    assert len(gone) == 3, logs.lines(logging.INFO)
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in gone)
    http = [r for r in logs.records if r.name.startswith(("avatarbot.http", "aiohttp", "adapters"))]
    assert not [r for r in http if r.levelno >= logging.WARNING], logs.lines()
    assert "Traceback" not in logs.everything()


# --------------------------------------------------------------------------- 6. headers


async def test_every_error_carries_the_security_headers_and_no_version_banner(
    web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    async with serving(web_settings(), redis_client, routes=_buggy) as served:
        host = host_of(served.url)
        cookie = {"Cookie": f"avatarbot_uid={await a_cookie(served.url)}"}
        answers = {
            404: await raw_request(served.url, request_bytes("GET", "/nope", host)),
            405: await raw_request(served.url, request_bytes("PUT", "/api/message", host)),
            400: await raw_request(
                served.url, request_bytes("GET", "/", host, headers={"X": "y" * 9000})
            ),
            413: await raw_request(
                served.url,
                request_bytes(
                    "POST",
                    "/api/message",
                    host,
                    body=b"{}" * 10_000,
                    headers={"Content-Type": "application/json", **cookie},
                ),
            ),
            500: await raw_request(served.url, request_bytes("GET", "/bug", host)),
            200: await raw_request(served.url, request_bytes("GET", "/healthz", host)),
        }
    for status, answer in answers.items():
        if status != 200:
            assert answer.status == status, (status, answer.text)
            assert one_line(answer), answer.text
        assert_secured(answer.headers)
        assert "Python" not in answer.headers.get("server", "")


# --------------------------------------------------------------------------- 8. Host


async def test_a_foreign_host_is_refused_dns_rebinding(
    web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    settings = web_settings(AVATARBOT_ALLOWED_HOSTS="chat.example.org,.friends.example")
    async with serving(settings, redis_client) as served:
        port = host_of(served.url).split(":")[1]

        async def status(host: str, path: str = "/", method: str = "GET") -> int:
            headers = {"Origin": f"http://{host}"}
            data = request_bytes(
                method,
                path,
                host,
                headers=headers,
                body=b'{"text": "/start"}' if method == "POST" else b"",
            )
            return (await raw_request(served.url, data)).status

        attacker = f"attacker.example:{port}"
        assert await status(attacker) == 400
        assert await status(attacker, "/api/message", "POST") == 400
        assert await status(attacker, "/metrics") == 400
        assert await status(attacker, "/healthz") in (200, 503)  # probes are exempt
        for allowed in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            f"[::1]:{port}",
            "chat.example.org",
            "a.friends.example",
            "friends.example",
        ):
            assert await status(allowed) == 200, allowed
        assert await status("other.chat.example.org") == 400
        assert await status("bad host:x") == 400


# --------------------------------------------------------------------------- 9. defaults, ports


def test_the_web_chat_is_off_by_default_beside_a_webhook() -> None:
    assert load_settings({}).web_enabled is True
    webhook = {"AVATARBOT_TELEGRAM_WEBHOOK_URL": WEBHOOK_URL}
    assert load_settings(webhook).web_enabled is False
    assert load_settings({**webhook, "AVATARBOT_WEB_ENABLED": "true"}).web_enabled is True


async def test_the_webhook_and_metrics_can_each_have_a_port_of_their_own(
    fake: FakeTelegram, settings_factory: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    settings = settings_factory(
        **webhook_env(fake),
        AVATARBOT_WEB_PORT="0",
        AVATARBOT_WEBHOOK_PORT=str(free_port()),
        AVATARBOT_METRICS_PORT=str(free_port()),
    )
    assert not settings.web_enabled
    user = fake.user(77)
    update = {
        "update_id": 7,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": fake.private_chat(user),
            "from": user,
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }
    async with serving(settings, redis_client) as served, aiohttp.ClientSession() as http:
        main, hook, metrics = (served.urls[n] for n in ("main", "webhook", "metrics"))
        await served.until_up()

        async def get(url: str) -> int:
            async with http.get(url) as response:
                return response.status

        async def post_update(url: str, secret: str = WEBHOOK_SECRET) -> int:
            async with http.post(url, json=update, headers={SECRET_HEADER: secret}) as response:
                return response.status

        assert await post_update(main + "/telegram/hook") == 404  # not on the main port
        assert await post_update(hook + "/telegram/hook", "wrong") == 403
        assert await post_update(hook + "/telegram/hook") == 200
        await fake.wait_for("sendMessage", chat_id=77)
        assert [await get(hook + p) for p in ("/", "/metrics", "/api/history")] == [404] * 3
        assert await get(hook + "/healthz") in (200, 503)
        assert await get(main + "/metrics") == 404
        assert await get(metrics + "/metrics") == 200
        assert await get(main + "/") == 404  # the web chat is off beside a webhook
    assert fake.violations == []


@pytest.mark.parametrize(
    ("trusted", "secure"), [("127.0.0.1", True), ("10.0.0.0/8", False), ("", False)]
)
async def test_cookies_are_secure_behind_a_trusted_tls_proxy(
    web_settings: Callable[..., Settings],
    redis_client: aioredis.Redis,
    trusted: str,
    secure: bool,
) -> None:
    async with serving(web_settings(AVATARBOT_TRUSTED_PROXIES=trusted), redis_client) as served:
        answer = await raw_request(
            served.url,
            request_bytes("GET", "/", host_of(served.url), headers={"X-Forwarded-Proto": "https"}),
        )
    assert answer.status == 200
    assert ("Secure" in answer.headers["set-cookie"]) is secure


async def test_metrics_count_what_was_refused(
    web_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    async with serving(web_settings(), redis_client) as served:
        await raw_request(served.url, request_bytes("GET", "/", "attacker.example"))
        async with aiohttp.ClientSession() as http, http.get(served.url + "/metrics") as response:
            text = await response.text()
    assert 'avatarbot_http_refused_total{reason="host"} 1' in text
    assert json.dumps  # the module stays importable for helpers above
