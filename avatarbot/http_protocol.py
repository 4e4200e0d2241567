"""aiohttp's server, with its connection-level timeouts and its own error answers tamed.

- **Timeouts**: the keep-alive timer runs from the moment a connection opens and again
  after each response, and closes a connection still waiting for a complete request when
  it fires. Set to AVATARBOT_HTTP_IDLE_TIMEOUT_S it cuts idle keep-alive connections,
  connections that never send a request, and request headers that dribble in slower than
  that (slowloris). Request bodies have their own deadline (`avatarbot.http_policy`).
- **Requests the parser refuses** (a header line over 8190 bytes, bad bytes, a bad
  request line) are answered by the server before any route sees them. aiohttp's own
  answer logged the exception at ERROR with a traceback, echoed the offending line back
  in the body (an over-long `Cookie:` header: the signed cookie, in the log and the
  response), and carried no security headers. Here it is one INFO line naming the
  exception class only, and a one-line body with the security headers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from avatarbot.http_policy import error_response

log = logging.getLogger("avatarbot.http")


class _RequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The answer to a request no route handled: one line, never the request's bytes."""
        kind = type(exc).__name__ if exc is not None else "no exception"
        if status >= 500:
            log.error("HTTP %d before a route answered (%s)", status, kind, exc_info=exc)
        else:
            log.info("bad HTTP request from %s refused: %d (%s)", request.remote, status, kind)
        if request.writer.output_size > 0:  # the answer has begun: the connection is broken
            raise ConnectionError("response already started")
        response = error_response(status)
        response.force_close()
        return response


class _Server(web.Server):
    """`web.Server` (the protocol factory) making `_RequestHandler`s."""

    def __init__(self, plain: web.Server, handler_kwargs: dict[str, Any]) -> None:
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
        )
        self._handler_kwargs = handler_kwargs

    def __call__(self) -> RequestHandler:
        return _RequestHandler(self, loop=asyncio.get_running_loop(), **self._handler_kwargs)


class HardenedRunner(web.AppRunner):
    """`web.AppRunner` whose connections use the request handler above, with
    `idle_timeout_s` as their keep-alive (and header) timeout and no access log."""

    def __init__(self, app: web.Application, *, idle_timeout_s: float) -> None:
        self._handler_kwargs: dict[str, Any] = {
            "keepalive_timeout": idle_timeout_s,
            "access_log": None,
            "logger": log,
        }
        super().__init__(app, handle_signals=False, shutdown_timeout=2.0, **self._handler_kwargs)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app, as AppRunner does
        return _Server(plain, self._handler_kwargs)
