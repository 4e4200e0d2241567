"""The local web chat: avatarbot in a browser, no chat platform or token needed.

An aiohttp server with a small static page (adapters/web/static: no build step, no CDN). It
is an adapter like Telegram's and Discord's: it turns HTTP requests into calls on the
`Conversation` and its replies into JSON messages, and receives results through the
`DeliveryPump` and queue updates through the `StatusTracker`, pushed to the browser over
a websocket.

Security and privacy:
- Each browser gets an anonymous user id in a signed, HttpOnly, SameSite=Strict cookie
  (`adapters.web.identity`). Result images are served only to the job's owner; any other
  user gets 404, whether the job exists or not.
- State-changing requests and the websocket must come from this origin (an `Origin`
  header naming another site is refused), on top of SameSite=Strict.
- Uploads are refused from their Content-Length before the body is read, and the app's
  `client_max_size` caps any body read anyway.
- A strict Content-Security-Policy: scripts, styles and images from this origin only.

The same server answers `/healthz` (200 when Redis answers and a worker is alive, else
503 with a JSON reason) and `/metrics` (Prometheus text).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from aiohttp import WSMsgType, web

from adapters.web import messages as wm
from adapters.web import page
from adapters.web.history import ChatHistory
from adapters.web.identity import COOKIE_MAX_AGE_S, COOKIE_NAME, Identities
from adapters.web.language import language_middleware
from bot import metrics as prom
from bot import texts
from bot.chat_adapter import register
from bot.config import Settings
from bot.conversation import Conversation
from bot.delivery import DeliveryPump, StatusTracker
from bot.errors import AvatarbotError
from bot.jobs import Job, Owner
from bot.queue import Delivery, JobQueue
from bot.replies import Avatar, Failure, Queued, Reply, bind, error_reply, owner_tag
from bot.selfie import FileTooLarge
from bot.sent_parts import Part, SentParts
from bot.styles import preview_path

log = logging.getLogger(__name__)

PLATFORM = "web"
MAX_TEXT = 2000
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
UID_KEY = web.RequestKey("uid", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebChat:
    """The web chat adapter: an aiohttp app plus the delivery and status callbacks."""

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        queue: JobQueue,
        conversation: Conversation,
        *,
        identities: Identities,
        history: ChatHistory,
        metrics: prom.BotMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.queue = queue
        self.conversation = conversation
        self.identities = identities
        self.history = history
        self.metrics = metrics or prom.BotMetrics()
        self.max_upload_bytes = settings.max_upload_bytes
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._static = resources.files("adapters.web").joinpath("static")
        self.sent_parts = SentParts(redis, settings.key_prefix, settings.job_ttl_s)
        conversation.on_forget(self.sent_parts.forget)

    @classmethod
    async def create(
        cls,
        settings: Settings,
        redis: aioredis.Redis,
        queue: JobQueue,
        conversation: Conversation,
        *,
        metrics: prom.BotMetrics | None = None,
    ) -> WebChat:
        identities = await Identities.load(redis, settings.key_prefix)
        history = ChatHistory(redis, settings.key_prefix, ttl_s=settings.result_ttl_s)
        return cls(
            settings,
            redis,
            queue,
            conversation,
            identities=identities,
            history=history,
            metrics=metrics,
        )

    # ------------------------------------------------------------------ the app

    def app(self, *, chat_ui: bool = True) -> web.Application:
        """The aiohttp app. Without `chat_ui` it serves only `/healthz` and `/metrics` (a
        production bot on Telegram/Discord that still wants health checks and webhooks)."""
        app = web.Application(
            client_max_size=self.max_upload_bytes,
            middlewares=[
                self._security_middleware,
                language_middleware(self.conversation, PLATFORM, UID_KEY),
            ],
        )
        app.on_shutdown.append(self._close_sockets)
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/metrics", self.metrics_text)
        if not chat_ui:
            return app
        r.add_get("/", self.index)
        r.add_get("/static/{name}", self.static)
        r.add_get("/previews/{style_id}.jpg", self.preview)
        r.add_get("/media/{job_id}/{index}", self.media)
        r.add_get("/api/history", self.api_history)
        r.add_post("/api/message", self.api_message)
        r.add_post("/api/selfie", self.api_selfie)
        r.add_post("/api/button", self.api_button)
        r.add_post("/api/choose", self.api_choose)
        r.add_get("/api/ws", self.api_ws)
        return app

    @web.middleware
    async def _security_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        websocket = request.path == "/api/ws"
        if (request.method not in ("GET", "HEAD") or websocket) and not _same_origin(request):
            return _json({"error": "cross-origin request refused"}, status=403)
        uid = self.identities.check(request.cookies.get(COOKIE_NAME))
        new_cookie = None
        if uid is None:
            if websocket:  # the page that opens it has its cookie already
                return _json({"error": "no session"}, status=403)
            uid, new_cookie = self.identities.issue()
        request[UID_KEY] = uid
        try:
            response = await handler(request)
        except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
            # Redis is gone for now: one friendly line, and the next request simply
            # works again once it is back (the client reconnects on its own).
            log.warning("web chat: Redis unavailable (%s)", type(exc).__name__)
            message = wm.render(error_reply(exc))
            response = _json({"messages": [message]}, status=503)
        if not response.prepared:
            if new_cookie is not None:
                response.set_cookie(
                    COOKIE_NAME,
                    new_cookie,
                    max_age=COOKIE_MAX_AGE_S,
                    httponly=True,
                    samesite="Strict",
                    path="/",
                    secure=request.secure,
                )
            response.headers.setdefault("Content-Security-Policy", _CSP)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    def _owner(self, request: web.Request) -> Owner:
        uid = request[UID_KEY]
        return Owner(platform=PLATFORM, user_id=uid, chat_id=uid)

    # ------------------------------------------------------------------ pages and files

    async def index(self, request: web.Request) -> web.StreamResponse:
        body = page.render(self._static, self.max_upload_bytes)  # in the user's language
        return web.Response(
            body=body,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        body = self._static.joinpath(name).read_bytes()
        return web.Response(
            body=body,
            content_type=_STATIC[name],
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def preview(self, request: web.Request) -> web.StreamResponse:
        style_id = request.match_info["style_id"]
        if style_id not in self.conversation.catalog:
            raise web.HTTPNotFound()
        path = preview_path(style_id)
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    async def media(self, request: web.Request) -> web.StreamResponse:
        """A result image, only for its owner (404 for everyone else)."""
        job_id, index_text = request.match_info["job_id"], request.match_info["index"]
        if not _JOB_ID.match(job_id) or not index_text.isdigit():
            raise web.HTTPNotFound()
        job = await self.queue.get_job(job_id)
        uid = request[UID_KEY]
        if job is None or job.owner.platform != PLATFORM or job.owner.user_id != uid:
            raise web.HTTPNotFound()
        result = await self.queue.get_result(job_id)
        index = int(index_text)
        if result is None or index >= len(result.images):
            raise web.HTTPNotFound()
        image = result.images[index]
        headers = {"Cache-Control": "private, max-age=3600"}
        if request.query.get("download"):
            ext = {"image/png": "png", "image/jpeg": "jpg"}.get(image.mime, "bin")
            filename = f"avatar-{job.style_id}-{job.id}-{index + 1}.{ext}"
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return web.Response(body=image.data, content_type=image.mime, headers=headers)

    # ------------------------------------------------------------------ the chat API

    async def api_history(self, request: web.Request) -> web.StreamResponse:
        messages = await self.history.all(request[UID_KEY])
        return _json(
            {
                "messages": messages,
                "max_upload_bytes": self.max_upload_bytes,
                "bot_name": self.settings.bot_name,
            }
        )

    async def api_message(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        text = str(body.get("text", "")).strip()[:MAX_TEXT]
        if not text:
            raise web.HTTPBadRequest(text="empty message")
        owner = self._owner(request)
        uid = request[UID_KEY]
        user_message = wm.user_text(text)
        replies = await self._safely(self.conversation.text(owner, text))
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
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return await self._too_large(uid)
        name = unquote(request.headers.get("X-Filename", "photo"))
        user_message = wm.user_image(name, len(data))
        replies = await self._safely(self.conversation.image(self._owner(request), data))
        return await self._post(uid, replies, before=[user_message])

    async def api_button(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        data = str(body.get("data", ""))[:100]
        replies = await self._safely(self.conversation.button(self._owner(request), data))
        return await self._post(request[UID_KEY], replies)

    async def api_choose(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        style_id = str(body.get("style_id", ""))[:40]
        try:
            variants = int(body.get("variants", 1))
        except (TypeError, ValueError):
            raise web.HTTPBadRequest(text="variants must be a number") from None
        owner = self._owner(request)
        style = self.conversation.catalog
        label = style.get(style_id).label if style_id in style else style_id
        user_message = wm.user_text(f"{label} × {variants}" if variants > 1 else label)
        replies = await self._safely(self.conversation.choose(owner, style_id, variants))
        return await self._post(request[UID_KEY], replies, before=[user_message])

    async def api_ws(self, request: web.Request) -> web.StreamResponse:
        """Server -> browser pushes: {"type": "message", "message": {...}}."""
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
        await ws.prepare(request)
        uid = request[UID_KEY]
        self._sockets.setdefault(uid, set()).add(ws)
        try:
            async for msg in ws:  # the browser only listens; anything it sends is ignored
                if msg.type is WSMsgType.ERROR:
                    break
        finally:
            sockets = self._sockets.get(uid)
            if sockets is not None:
                sockets.discard(ws)
                if not sockets:
                    del self._sockets[uid]
        return ws

    async def _close_sockets(self, app: web.Application) -> None:
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close(code=1001, message=b"server shutdown")

    # ------------------------------------------------------------------ helpers

    async def _safely(self, call: Awaitable[list[Reply]]) -> list[Reply]:
        try:
            return await call
        except (AvatarbotError, aioredis.ConnectionError, aioredis.TimeoutError) as exc:
            log.warning("web chat: %s: %s", type(exc).__name__, exc)
            return [error_reply(exc)]

    async def _post(
        self, uid: str, replies: Sequence[Reply], *, before: Sequence[wm.Message] = ()
    ) -> web.StreamResponse:
        owned = bind(replies, Owner(platform=PLATFORM, user_id=uid, chat_id=uid))
        messages = [*before, *(wm.render(reply) for reply in owned)]
        for message in messages:
            await self.history.add(uid, message)
            await self._push(uid, message)
        return _json({"messages": messages})

    async def _too_large(self, uid: str) -> web.StreamResponse:
        limit = self.max_upload_bytes
        message = wm.render(Failure(FileTooLarge(limit + 1, limit).user_message))
        await self.history.add(uid, message)
        await self._push(uid, message)
        response = _json({"messages": [message]}, status=413)
        response.force_close()
        return response

    async def _push(self, uid: str, message: wm.Message) -> None:
        for ws in list(self._sockets.get(uid, ())):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps({"type": "message", "message": message}))

    # ------------------------------------------------------------------ pump callbacks

    async def deliver(self, delivery: Delivery, replies: Sequence[Reply]) -> None:
        """DeliveryPump callback for platform "web": store and push the outcome, each
        message once (`SentParts`), even when a failed try is retried."""
        job = delivery.job
        if job is None:
            return
        uid = job.owner.user_id
        done = any(isinstance(r, Avatar) for r in replies)
        finished = wm.finished_status(
            job.id, texts.finished_done() if done else texts.finished_not_done()
        )

        async def replace() -> None:
            if await self.history.replace(uid, finished):
                await self._push(uid, finished)

        async def add(message: wm.Message) -> None:
            await self.history.add(uid, message)
            await self._push(uid, message)

        parts = [Part("status", replace)]
        for i, reply in enumerate(bind(replies, job.owner)):
            parts.append(Part(str(i), functools.partial(add, wm.render(reply))))
        await self.sent_parts.send_once(job.id, parts)

    async def update_status(self, job: Job, reply: Queued) -> None:
        """StatusTracker callback for platform "web": replace the queue message."""
        uid = job.owner.user_id
        message = wm.render_status(reply.bound_to(owner_tag(job.owner)))
        if await self.history.replace(uid, message):
            await self._push(uid, message)

    def register(self, pump: DeliveryPump, tracker: StatusTracker) -> None:
        register(self, pump, tracker)

    # ------------------------------------------------------------------ operations

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.wait_for(self.redis.ping(), 2.0)
            stats = await asyncio.wait_for(self.queue.stats(), 2.0)
        except (TimeoutError, aioredis.ConnectionError, aioredis.TimeoutError) as exc:
            return _json({"status": "unavailable", "reason": f"redis: {type(exc).__name__}"}, 503)
        body = {
            "queued": stats.depth,
            "running": stats.running,
            "workers": stats.live_workers,
        }
        if stats.live_workers < 1:
            return _json({"status": "unavailable", "reason": "no live worker", **body}, 503)
        return _json({"status": "ok", **body})

    async def metrics_text(self, request: web.Request) -> web.StreamResponse:
        try:
            stats = await asyncio.wait_for(self.queue.stats(), 2.0)
        except (TimeoutError, aioredis.ConnectionError, aioredis.TimeoutError):
            stats = None
        families: list[list[str]] = []
        if stats is not None:
            families += [
                prom.family(
                    "avatarbot_jobs",
                    "gauge",
                    "Jobs in the queue by state (queued: waiting for a worker).",
                    [({"state": "queued"}, stats.depth), ({"state": "running"}, stats.running)],
                ),
                prom.family(
                    "avatarbot_queue_depth",
                    "gauge",
                    "Jobs waiting for a worker.",
                    [({}, stats.depth)],
                ),
                prom.family(
                    "avatarbot_dead_letters",
                    "gauge",
                    "Jobs that failed on every delivery (operator inbox).",
                    [({}, stats.dead_letters)],
                ),
                prom.family(
                    "avatarbot_workers_alive",
                    "gauge",
                    "Workers with a fresh heartbeat.",
                    [({}, stats.live_workers)],
                ),
            ]
        families.append(
            prom.family(
                "avatarbot_up",
                "gauge",
                "1 when Redis answered this scrape.",
                [({}, 1.0 if stats else 0.0)],
            )
        )
        families.append(self.metrics.render())
        families.append(
            prom.family(
                "avatarbot_web_sockets",
                "gauge",
                "Open web chat websockets.",
                [({}, float(sum(len(s) for s in self._sockets.values())))],
            )
        )
        return web.Response(
            text=prom.exposition(*families),
            headers={"Content-Type": prom.CONTENT_TYPE},
        )


def _command(text: str) -> str | None:
    first = text.strip().split(maxsplit=1)[0].lower() if text.strip() else ""
    return first[1:].split("@", 1)[0] if first.startswith("/") else None


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="malformed JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", charset="utf-8"
    )


# --------------------------------------------------------------------------- serving


async def serve_web_chat(
    settings: Settings,
    redis: aioredis.Redis,
    queue: JobQueue,
    conversation: Conversation,
    stop: asyncio.Event,
    *,
    pump: DeliveryPump | None = None,
    tracker: StatusTracker | None = None,
    metrics: prom.BotMetrics | None = None,
    ready: Callable[[str], None] | None = None,
    chat_ui: bool = True,
    configure: Callable[[web.Application], None] | None = None,
) -> None:
    """Serve the web chat on settings.web_host:web_port until `stop` is set.

    With `pump`/`tracker` given (a process running several adapters), the web chat
    registers its callbacks on them and the caller runs them; without, it runs its own.
    `ready(url)` is called once listening (the URL is also logged and printed). Without
    `chat_ui` only /healthz and /metrics are served; `configure(app)` may add routes (the
    Telegram webhook) to this same server.
    """
    chat = await WebChat.create(settings, redis, queue, conversation, metrics=metrics)
    own_tasks: list[asyncio.Task[None]] = []
    if pump is None:
        pump = DeliveryPump(
            queue, conversation, settings.bot_name, _consumer_name(), metrics=chat.metrics
        )
        own_tasks.append(asyncio.create_task(pump.run(stop), name="web-delivery"))
    if tracker is None:
        tracker = StatusTracker(
            queue, conversation, conversation.waiting, redis, settings.key_prefix
        )
        own_tasks.append(asyncio.create_task(tracker.run(stop), name="web-status"))
    chat.register(pump, tracker)
    app = chat.app(chat_ui=chat_ui)
    if configure is not None:
        configure(app)  # e.g. the Telegram webhook route, on this same server
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.web_host, settings.web_port)
        await site.start()
        url = _url(runner, settings)
        log.info("web chat at %s", url)
        what = "web chat" if chat_ui else "health and metrics"
        print(f"avatarbot {what}: {url}", flush=True)  # the one line a user needs
        if ready is not None:
            ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()
        for task in own_tasks:
            task.cancel()
        for task in own_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _url(runner: web.AppRunner, settings: Settings) -> str:
    port = settings.web_port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            port = int(address[1])
            break
    host = settings.web_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  # listening everywhere; show localhost
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _consumer_name() -> str:
    return f"web-{socket.gethostname().split('.')[0]}-{os.getpid()}"
