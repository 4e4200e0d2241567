"""The local web chat: avatarbot in a browser, no chat platform or token needed.

A small static page (adapters/web/static: no build step, no CDN) and a JSON API, added
to the process's HTTP server. It is an adapter like Telegram's and Discord's: it turns
HTTP requests into calls on the `Conversation` and its replies into JSON messages, and
receives results through the `DeliveryPump` and queue updates through the
`StatusTracker`, pushed to the browser over a websocket (`adapters.web.sockets`).

Security and privacy (`adapters.web.guard` for the checks on every request):
- Each browser gets an anonymous user id in a signed, HttpOnly, SameSite=Strict cookie
  (`adapters.web.identity`). Result images are served only to the job's owner.
- State-changing requests and the websocket must come from this origin.
- Uploads are refused from their Content-Length before the body is read, and the
  server's `client_max_size` caps any body read anyway; uploads and new identities are
  rate-limited per identity and per client address (`adapters.web.limits`).
- Request JSON is bounded in size and depth (`adapters.web.http`).
- A strict Content-Security-Policy: scripts, styles and images from this origin only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Sequence
from urllib.parse import unquote

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import OutOfMemoryError

from adapters.web import messages as wm
from adapters.web.files import PLATFORM, Files
from adapters.web.guard import UID_KEY, WEBSOCKET_PATH, Guard, refusal
from adapters.web.history import ChatHistory
from adapters.web.http import json_body, json_response
from adapters.web.identity import Identities
from adapters.web.language import Handler, speaking
from adapters.web.limits import WebLimits, network
from adapters.web.sockets import Sockets
from bot import metrics as prom
from bot import texts
from bot.config import Settings
from bot.conversation import Conversation
from bot.errors import AvatarbotError
from bot.jobs import Job, Owner
from bot.queue import Delivery, JobProducer
from bot.rate_limits import RateLimited, RateLimiter
from bot.replies import Avatar, Failure, Queued, Reply, bind, error_reply, owner_tag
from bot.selfie import FileTooLarge
from bot.sent_parts import Part, SentParts

log = logging.getLogger(__name__)

MAX_TEXT = 2000


class WebChat:
    """The web chat adapter: its routes, and the delivery and status callbacks."""

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        queue: JobProducer,
        conversation: Conversation,
        *,
        identities: Identities,
        history: ChatHistory,
        sent_parts: SentParts,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.conversation = conversation
        self.history = history
        self.sent_parts = sent_parts
        self.max_upload_bytes = settings.max_upload_bytes
        self.sockets = Sockets()
        self.limits = WebLimits.from_settings(settings)
        self._limiter = limiter
        self._identities = identities
        self._guard = Guard(identities, limiter, self.limits.identities_per_address)
        self._files = Files(queue, conversation.catalog, settings.max_upload_bytes)

    @classmethod
    async def create(
        cls,
        settings: Settings,
        redis: aioredis.Redis,
        queue: JobProducer,
        conversation: Conversation,
    ) -> WebChat:
        identities = await Identities.load(redis, settings.key_prefix)
        history = ChatHistory(redis, settings.key_prefix, ttl_s=settings.result_ttl_s)
        sent_parts = SentParts(redis, settings.key_prefix, settings.job_ttl_s)
        conversation.on_forget(sent_parts.forget)
        return cls(
            settings,
            queue,
            conversation,
            identities=identities,
            history=history,
            sent_parts=sent_parts,
            limiter=RateLimiter(redis, settings.key_prefix),
        )

    def add_routes(self, app: web.Application) -> None:
        """The page, its files and the chat API, each behind the guard."""
        app.on_shutdown.append(self.sockets.close_all)
        r, files = app.router, self._files
        speak = speaking(self.conversation, PLATFORM, UID_KEY)

        def guard(handler: Handler) -> Handler:  # the guard sets the user; then their language
            return self._guard(speak(handler))

        r.add_get("/", guard(files.index))
        r.add_get("/static/{name}", self._guard(files.static))
        r.add_get("/previews/{style_id}.jpg", self._guard(files.preview))
        r.add_get("/media/{job_id}/{index}", self._guard(files.media))
        r.add_get("/api/history", guard(self.api_history))
        r.add_post("/api/message", guard(self.api_message))
        r.add_post("/api/selfie", guard(self.api_selfie))
        r.add_post("/api/button", guard(self.api_button))
        r.add_post("/api/choose", guard(self.api_choose))
        r.add_get(WEBSOCKET_PATH, self._guard(self.sockets.handle))

    def metrics(self) -> list[str]:
        return prom.family(
            "avatarbot_web_sockets",
            "gauge",
            "Open web chat websockets.",
            [({}, float(len(self.sockets)))],
        )

    def _owner(self, request: web.Request) -> Owner:
        uid = request[UID_KEY]
        return Owner(platform=PLATFORM, user_id=uid, chat_id=uid)

    # ------------------------------------------------------------------ the chat API

    async def api_history(self, request: web.Request) -> web.StreamResponse:
        messages = await self.history.all(request[UID_KEY])
        return json_response(
            {
                "messages": messages,
                "max_upload_bytes": self.max_upload_bytes,
                "bot_name": self.settings.bot_name,
            }
        )

    async def api_message(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        text = str(body.get("text", "")).strip()[:MAX_TEXT]
        if not text:
            raise web.HTTPBadRequest(text="empty message")
        uid = request[UID_KEY]
        user_message = wm.user_text(text)
        replies = await self._safely(self.conversation.text(self._owner(request), text))
        if _command(text) == "forgetme":  # everything about the user is gone: history too
            await self.history.clear(uid)
            return await self._post(uid, replies)
        return await self._post(uid, replies, before=[user_message])

    async def api_selfie(self, request: web.Request) -> web.StreamResponse:
        uid = request[UID_KEY]
        length = request.content_length
        if length is not None and length > self.max_upload_bytes:
            return await self._too_large(uid)
        try:
            await self._count_upload(request)
        except RateLimited as exc:
            response = refusal(texts.too_many_uploads(exc.retry_after_s), exc.retry_after_s)
            response.force_close()  # its body is not read
            return response
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return await self._too_large(uid)
        name = unquote(request.headers.get("X-Filename", "photo"))
        user_message = wm.user_image(name, len(data))
        replies = await self._safely(self.conversation.image(self._owner(request), data))
        return await self._post(uid, replies, before=[user_message])

    async def api_button(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        data = str(body.get("data", ""))[:100]
        replies = await self._safely(self.conversation.button(self._owner(request), data))
        return await self._post(request[UID_KEY], replies)

    async def api_choose(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        style_id = str(body.get("style_id", ""))[:40]
        variants = _small_number(body.get("variants", 1))
        if variants is None:
            raise web.HTTPBadRequest(text="variants must be a small whole number")
        catalog = self.conversation.catalog
        label = catalog.get(style_id).label if style_id in catalog else style_id
        user_message = wm.user_text(f"{label} × {variants}" if variants > 1 else label)
        owner = self._owner(request)
        replies = await self._safely(self.conversation.choose(owner, style_id, variants))
        return await self._post(request[UID_KEY], replies, before=[user_message])

    # ------------------------------------------------------------------ helpers

    async def _count_upload(self, request: web.Request) -> None:
        """One more upload for this identity and for its address (`adapters.web.limits`);
        raises `RateLimited` past either allowance."""
        if self._limiter is None:
            return
        tag = self._identities.address_tag(network(request.remote))
        await self._limiter.hit(self.limits.uploads_per_address, tag)
        await self._limiter.hit(self.limits.uploads, request[UID_KEY])

    async def _safely(self, call: Awaitable[list[Reply]]) -> list[Reply]:
        try:
            return await call
        except (
            AvatarbotError,
            aioredis.ConnectionError,
            aioredis.TimeoutError,
            OutOfMemoryError,
        ) as exc:
            log.warning("web chat: %s: %s", type(exc).__name__, exc)
            return [error_reply(exc)]

    async def _post(
        self, uid: str, replies: Sequence[Reply], *, before: Sequence[wm.Message] = ()
    ) -> web.StreamResponse:
        owned = bind(replies, Owner(platform=PLATFORM, user_id=uid, chat_id=uid))
        messages = [*before, *(wm.render(reply) for reply in owned)]
        for message in messages:
            await self._add(uid, message)
        return json_response({"messages": messages})

    async def _add(self, uid: str, message: wm.Message) -> None:
        await self.history.add(uid, message)
        await self.sockets.push(uid, message)

    async def _replace(self, uid: str, message: wm.Message) -> None:
        if await self.history.replace(uid, message):
            await self.sockets.push(uid, message)

    async def _too_large(self, uid: str) -> web.StreamResponse:
        limit = self.max_upload_bytes
        message = wm.render(Failure(FileTooLarge(limit + 1, limit).user_message))
        await self._add(uid, message)
        response = json_response({"messages": [message]}, status=413)
        response.force_close()
        return response

    # ------------------------------------------------------------------ pump callbacks

    async def deliver(self, delivery: Delivery, replies: Sequence[Reply]) -> None:
        """DeliveryPump callback for platform "web": store and push the outcome, each
        message once (`SentParts`), even when a failed try is retried."""
        job = delivery.job
        if job is None:
            return
        uid = job.owner.user_id
        done = any(isinstance(r, Avatar) for r in replies)
        status = texts.finished_done() if done else texts.finished_not_done()
        finished = wm.finished_status(job.id, status)
        parts = [Part("status", functools.partial(self._replace, uid, finished))]
        for i, reply in enumerate(bind(replies, job.owner)):
            parts.append(Part(str(i), functools.partial(self._add, uid, wm.render(reply))))
        await self.sent_parts.send_once(job.id, parts)

    async def update_status(self, job: Job, reply: Queued) -> None:
        """StatusTracker callback for platform "web": replace the queue message."""
        message = wm.render_status(reply.bound_to(owner_tag(job.owner)))
        await self._replace(job.owner.user_id, message)


def _small_number(value: object) -> int | None:
    """A JSON number or numeric string of at most 3 digits (not a bool, not 1e999)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -1000 < value < 1000:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3:
        return int(value)
    return None


def _command(text: str) -> str | None:
    first = text.strip().split(maxsplit=1)[0].lower() if text.strip() else ""
    return first[1:].split("@", 1)[0] if first.startswith("/") else None
