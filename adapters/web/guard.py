"""What stands in front of every web chat route (not the process's /healthz or /metrics).

- State-changing requests and the websocket must come from this origin (an `Origin`
  header naming another site is refused), on top of the SameSite=Strict cookie.
- Each browser gets an anonymous user id in a signed, HttpOnly, SameSite=Strict cookie
  (`adapters.web.identity`); handlers find it under `UID_KEY`.
- A strict Content-Security-Policy: scripts, styles and images from this origin only.
- Redis unreachable or full: one friendly line (503); the next request works again once it
  is back (the page reconnects on its own).
- New identities are counted per client address (`adapters.web.limits`): past the day's
  allowance a cookieless request gets 429 with one line instead of a fresh cookie.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import OutOfMemoryError

from adapters.web import messages as wm
from adapters.web.http import json_response, same_origin
from adapters.web.identity import COOKIE_MAX_AGE_S, COOKIE_NAME, Identities
from adapters.web.limits import network
from bot import texts
from bot.rate_limits import RateLimit, RateLimited, RateLimiter
from bot.replies import Failure, error_reply

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UID_KEY = web.RequestKey("uid", str)
WEBSOCKET_PATH = "/api/ws"

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class Guard:
    """Wraps the web chat's handlers with the checks above."""

    def __init__(
        self,
        identities: Identities,
        limiter: RateLimiter | None = None,
        new_identities: RateLimit | None = None,
    ) -> None:
        self.identities = identities
        self.limiter = limiter
        self.new_identities = new_identities

    def __call__(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, handler)

        return guarded

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        websocket = request.path == WEBSOCKET_PATH
        if (request.method not in ("GET", "HEAD") or websocket) and not same_origin(request):
            return json_response({"error": "cross-origin request refused"}, status=403)
        uid = self.identities.check(request.cookies.get(COOKIE_NAME))
        new_cookie = None
        try:
            if uid is None:
                if websocket:  # the page that opens it has its cookie already
                    return json_response({"error": "no session"}, status=403)
                try:
                    await self._count_new_identity(request)
                except RateLimited as exc:
                    return self._secured(refusal(texts.too_many_new_visitors(), exc.retry_after_s))
                uid, new_cookie = self.identities.issue()
            request[UID_KEY] = uid
            response = await handler(request)
        except (aioredis.ConnectionError, aioredis.TimeoutError, OutOfMemoryError) as exc:
            log.warning("web chat: Redis unavailable or full (%s)", type(exc).__name__)
            message = wm.render(error_reply(exc))
            response = json_response({"messages": [message]}, status=503)
        if new_cookie is not None and not response.prepared:
            response.set_cookie(
                COOKIE_NAME,
                new_cookie,
                max_age=COOKIE_MAX_AGE_S,
                httponly=True,
                samesite="Strict",
                path="/",
                secure=request.secure,  # https, or a trusted proxy's X-Forwarded-Proto
            )
        return self._secured(response)

    @staticmethod
    def _secured(response: web.StreamResponse) -> web.StreamResponse:
        if not response.prepared:
            for name, value in _HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    async def _count_new_identity(self, request: web.Request) -> None:
        """One more new identity for the client's address; raises `RateLimited` when its
        day's allowance is used up (a fresh cookie is no way round a daily quota)."""
        if self.limiter is None or self.new_identities is None:
            return
        tag = self.identities.address_tag(network(request.remote))
        await self.limiter.hit(self.new_identities, tag)


def refusal(text: str, retry_after_s: int) -> web.Response:
    """429 with the chat message that says why (shown, not kept in the history)."""
    message = wm.render(Failure(text))
    response = json_response({"messages": [message]}, status=429)
    response.headers["Retry-After"] = str(retry_after_s)
    return response
