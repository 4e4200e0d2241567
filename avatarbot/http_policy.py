"""What every request to a process's HTTP server passes through, whatever its route.

- **Host check** (DNS rebinding): the `Host` header must name this server: localhost, an
  IP address (a rebinding attack always sends its own domain name), the bind host, the
  Telegram webhook URL's host, or one of AVATARBOT_ALLOWED_HOSTS. Anything else gets
  400. `/healthz` is exempt (probes address the server however they reach it).
- **Trusted proxies**: only when the peer is one of AVATARBOT_TRUSTED_PROXIES are its
  `X-Forwarded-For` (the client's address: the nearest one that is not a trusted proxy)
  and `X-Forwarded-Proto` (https: cookies get `Secure`) believed.
- **Slow bodies**: a request body that has not fully arrived after
  AVATARBOT_HTTP_BODY_TIMEOUT_S is cut: 408, connection closed. (Slow or missing request
  headers and idle keep-alive connections are cut by the server itself after
  AVATARBOT_HTTP_IDLE_TIMEOUT_S; see `avatarbot.http_protocol`.)
- **Errors in one line**: every error is a short `text/plain` line with the status;
  a client that went away mid-request is one INFO line; odd input never reaches the log as
  a traceback. Only a bug (an unexpected exception) logs one, at ERROR.
- **Security headers on every response**, errors included: a Content-Security-Policy
  (routes may set a looser one of their own), nosniff, `X-Frame-Options: DENY`,
  no referrer, and a `Server` header without versions.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_exceptions import HTTPException

from bot import metrics as prom
from bot.config import Settings
from bot.overload import redis_full

log = logging.getLogger("avatarbot.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = IPv4Network | IPv6Network

SERVER_NAME = "avatarbot"
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
SECURITY_HEADERS = {
    "Content-Security-Policy": DEFAULT_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
EXEMPT_FROM_HOST_CHECK = frozenset({"/healthz"})
LOCAL_NAMES = frozenset({"localhost"})
_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104  # names, not a bind


class BodyTimeout(Exception):
    """The request body did not arrive in time (set on the body's stream)."""


class _RedisFull(Exception):
    """Redis refused a write: `maxmemory` reached (`bot.overload`)."""


_ErrorTypes = type[BaseException] | tuple[type[BaseException], ...]
_KNOWN_ERRORS: tuple[tuple[_ErrorTypes, int, str, str], ...] = (
    (BodyTimeout, 408, "body_timeout", "request body too slow"),
    (ConnectionError, 400, "client_gone", "the client went away"),
    ((HttpProcessingError, UnicodeError), 400, "malformed", "malformed request"),
    (_RedisFull, 503, "redis_full", "busy, try again later"),
    ((aioredis.ConnectionError, aioredis.TimeoutError), 503, "redis_down", "try again shortly"),
)
"""(exception types, status, refusal reason, what the answer and the log line say)."""


@dataclass(frozen=True)
class HttpPolicy:
    """The checks above, read once from the settings (`from_settings`)."""

    allowed_hosts: frozenset[str] = LOCAL_NAMES
    trusted_proxies: tuple[Network, ...] = ()
    idle_timeout_s: float = 15.0
    body_timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpPolicy:
        names = set(LOCAL_NAMES) | set(settings.allowed_hosts)
        for host in (settings.web_host, settings.webhook_host):
            if host and host not in _ANY_ADDRESS:
                names.add(host.lower())
        if settings.telegram_webhook_url:
            webhook_host = urlsplit(settings.telegram_webhook_url).hostname
            if webhook_host:
                names.add(webhook_host.rstrip("."))
        return cls(
            allowed_hosts=frozenset(names),
            trusted_proxies=tuple(settings.trusted_proxies),
            idle_timeout_s=settings.http_idle_timeout_s,
            body_timeout_s=settings.http_body_timeout_s,
        )

    def host_allowed(self, host: str | None) -> bool:
        """Whether a `Host` header names this server (see the module docstring)."""
        if host is None or "*" in self.allowed_hosts:
            return True  # no Host at all: not a browser, so not a rebinding attack
        name = hostname(host)
        if name is None:
            return False
        if _is_ip(name) or name in self.allowed_hosts:
            return True
        return any(
            entry.startswith(".") and (name.endswith(entry) or name == entry[1:])
            for entry in self.allowed_hosts
        )

    def trusted(self, address: str | None) -> bool:
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)

    def forwarded(self, request: web.Request) -> tuple[str | None, str | None]:
        """(client address, scheme) a trusted proxy forwarded; (None, None) otherwise."""
        if not self.trusted(request.remote):
            return None, None
        client = None
        chain = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
        for hop in reversed([h.strip() for h in chain if h.strip()]):
            if not _is_ip(hop):
                break
            client = hop
            if not self.trusted(hop):
                break
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return client, proto if proto in ("http", "https") else None


def hostname(host: str) -> str | None:
    """The lower-case name in a `Host` header (no port, no brackets); None if malformed."""
    try:
        parts = urlsplit(f"//{host}")
        name = parts.hostname
        parts.port  # noqa: B018  # raises on a malformed port
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def secure_headers(headers: MutableMapping[str, str]) -> None:
    """The security headers (keeping a route's own CSP) and a `Server` without versions."""
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    headers["Server"] = SERVER_NAME


def error_response(
    status: int, detail: str = "", headers: Iterable[tuple[str, str]] = ()
) -> web.Response:
    """A one-line `text/plain` error: `400 Bad Request: detail`."""
    reason = web.Response(status=status).reason
    line = " ".join(f"{status} {reason}: {detail}".split()) if detail else f"{status} {reason}"
    response = web.Response(status=status, text=line + "\n", content_type="text/plain")
    for name, value in headers:
        response.headers[name] = value
    secure_headers(response.headers)
    return response


class Checkpoint:
    """The middleware and the response hook of one listener, with what they refused."""

    def __init__(self, policy: HttpPolicy) -> None:
        self.policy = policy
        self.refused: Counter[str] = Counter()
        """Requests refused or cut, by reason (host, body_timeout, client_gone, ...)."""

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        app.on_response_prepare.append(self.on_prepare)

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        secure_headers(response.headers)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in EXEMPT_FROM_HOST_CHECK and not self.policy.host_allowed(
            request.headers.get("Host")
        ):
            self.refused["host"] += 1
            log.info("request for an unknown host refused (see AVATARBOT_ALLOWED_HOSTS)")
            return error_response(400, "unknown host")
        client, scheme = self.policy.forwarded(request)
        if client is not None or scheme is not None:
            request = request.clone(
                remote=client or request.remote or "", scheme=scheme or request.scheme
            )
        deadline = self._body_deadline(request)
        try:
            return await handler(request)
        except Exception as exc:
            answer = self._answer(request, exc)
            if answer is None:  # a bug: the server logs it (`avatarbot.http_protocol`)
                raise
            return answer
        finally:
            if deadline is not None:
                deadline.cancel()

    def _answer(self, request: web.Request, exc: Exception) -> web.Response | None:
        """The one-line answer to an error a handler raised; None for a bug."""
        if isinstance(exc, HTTPException):
            return self._http_error(exc) if exc.status >= 400 else None
        if redis_full(exc):
            exc = _RedisFull()
        for kinds, status, reason, what in _KNOWN_ERRORS:
            if isinstance(exc, kinds):
                self.refused[reason] += 1
                level = logging.WARNING if status >= 500 else logging.INFO
                log.log(level, "%s %s from %s: %s (%s)", request.method, _route(request),
                        request.remote, what, _name(exc))  # fmt: skip
                response = error_response(status, what)
                response.force_close()
                return response
        return None

    def _body_deadline(self, request: web.Request) -> asyncio.TimerHandle | None:
        if not request.body_exists or request.headers.get("Upgrade"):
            return None
        content = request.content

        def cut() -> None:
            if not content.is_eof():
                content.set_exception(BodyTimeout())

        return asyncio.get_running_loop().call_later(self.policy.body_timeout_s, cut)

    def _http_error(self, exc: HTTPException) -> web.Response:
        detail = exc.text or ""
        if detail.startswith(f"{exc.status}: "):  # aiohttp's default text repeats the status
            detail = ""
        kept = [(k, v) for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")]
        response = error_response(exc.status, detail, kept)
        if exc.status == 413:
            response.force_close()  # the rest of an oversized body is not read
        return response


def refusal_family(refused: Counter[str]) -> list[str]:
    """`avatarbot_http_refused_total{reason}` for `/metrics`."""
    return prom.family(
        "avatarbot_http_refused_total",
        "counter",
        "HTTP requests refused or cut before a route answered, by reason.",
        [({"reason": reason}, float(n)) for reason, n in sorted(refused.items())],
    )


def _route(request: web.Request) -> str:
    """The matched route's pattern (never the raw path, which the client chose)."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "(no route)"


def _name(exc: BaseException) -> str:
    return type(exc).__name__
