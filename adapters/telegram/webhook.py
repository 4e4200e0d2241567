"""Webhook mode: Telegram posts updates to a route on the process's aiohttp server.

Each request must carry the secret token Telegram was given with `setWebhook`; anything
else is refused before it is parsed. Accepted updates join the application's queue.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.ext import Application

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105  # a header name, not a secret
#: An update is a few KB; a bigger body is not one.
MAX_UPDATE_BYTES = 1024 * 1024


class TelegramWebhook:
    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        url: str | None,
        secret: str | None,
    ) -> None:
        self.application = application
        self.url = url
        self.secret = secret

    @property
    def path(self) -> str:
        """The path Telegram posts updates to (from AVATARBOT_TELEGRAM_WEBHOOK_URL)."""
        path = urlsplit(self.url or "").path
        return path if path and path != "/" else "/telegram/webhook"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        """One update from Telegram: checked against the secret token, then queued."""
        if self.secret is None:
            return web.Response(status=404)
        given = request.headers.get(SECRET_HEADER, "")  # any bytes: compared, never decoded
        if not hmac.compare_digest(given.encode(errors="surrogateescape"), self.secret.encode()):
            log.warning("telegram webhook: request without the right secret token refused")
            return web.Response(status=403)
        if not self.application.running:
            return web.Response(status=503)  # Telegram retries later
        if (request.content_length or 0) > MAX_UPDATE_BYTES:
            return web.Response(status=413)
        body = await request.read()
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise TypeError(f"an update is a JSON object, not {type(data).__name__}")
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:  # whatever the body: one line, 400
            log.warning("telegram webhook: malformed update refused (%s)", type(exc).__name__)
            return web.Response(status=400)
        await self.application.update_queue.put(update)
        return web.Response()
