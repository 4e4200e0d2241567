"""Webhook mode: Telegram posts updates to a route on the process's aiohttp server.

Each request must carry the secret token Telegram was given with `setWebhook`; anything
else is refused before it is parsed. Accepted updates join the application's queue.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.ext import Application

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105  # a header name, not a secret


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
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("telegram webhook: request without the right secret token refused")
            return web.Response(status=403)
        if not self.application.running:
            return web.Response(status=503)  # Telegram retries later
        try:
            data = await request.json()
            update = Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError):
            log.warning("telegram webhook: malformed update refused")
            return web.Response(status=400)
        await self.application.update_queue.put(update)
        return web.Response()
