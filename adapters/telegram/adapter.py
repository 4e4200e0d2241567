"""The Telegram adapter: Telegram updates become conversation calls, replies become Bot API calls.

Built on python-telegram-bot 22 (async). It owns no event loop: `start()` initialises
and starts the `Application` inside the caller's loop (long polling, or a webhook route
mounted on the caller's aiohttp server), `stop()` undoes that. Nothing here decides what
to say; `bot.conversation.Conversation` does. This module only translates:

- /start /help /styles /avatar /cancel /forgetme /verify -> `Conversation.text`;
  a photo (largest size) or an image document -> `Conversation.image` (a caption of
  /avatar or /verify says which); inline buttons -> `Conversation.button`.
- Sizes are checked before anything is downloaded: what Telegram reports (`file_size`)
  against 20 MB (getFile's limit) and `max_upload_bytes`.
- In groups only commands trigger: a photo counts when its caption is the command or
  when it replies to the bot's "send me a selfie" message. Picker buttons answer only
  the user the picker was for; job buttons only the job's owner (the conversation
  checks). Everyone else gets a short alert.
- The style picker: an album of style previews, sent once per chat and re-sent by file
  id (cached in Redis), then one message with style buttons and a 1-4 variants row.
- The queue message is one message edited as the job moves (`update_status`, called by
  `bot.delivery.StatusTracker`, throttled there); `upload_photo` shows while it runs.
- Results (`deliver`, called by `bot.delivery.DeliveryPump`): one photo, or an album
  plus a message, with the buttons. Each part is recorded in Redis once sent, so a
  result redelivered after a restart never reaches the chat twice.
- Telegram errors: AIORateLimiter retries 429s (RetryAfter) and keeps to flood limits;
  Forbidden (blocked, removed from the group) and BadRequest (chat gone, file too big)
  make a result undeliverable: recorded (`TelegramState.record_undeliverable`) and
  logged once, never retried forever, never silently dropped. Network trouble raises,
  so the pump retries later.
- Tokens never reach a log line from here; httpx's request lines (which contain the
  token) are scrubbed by `bot.logs.RedactingFilter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import (
    BotCommand,
    CallbackQuery,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaPhoto,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    BaseUpdateProcessor,
    CallbackContext,
    CallbackQueryHandler,
    CommandHandler,
    ExtBot,
    MessageHandler,
    filters,
)

from adapters.telegram.polling_conflict import PollingConflict
from adapters.telegram.state import MessageRef, TelegramState
from bot import texts
from bot.config import ConfigError, Settings
from bot.conversation import error_reply
from bot.errors import AvatarbotError
from bot.jobs import JobStatus, Owner
from bot.replies import (
    Action,
    Avatar,
    BadCallbackError,
    Button,
    Failure,
    OriginalFile,
    Queued,
    Reply,
    StylePicker,
    Text,
    parse_callback,
)
from bot.selfie import FileTooLarge, NotAnImage

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bot.conversation import Conversation
    from bot.jobs import Job
    from bot.queue import Delivery

log = logging.getLogger(__name__)

PLATFORM = "telegram"
COMMANDS = ("start", "help", "styles", "avatar", "cancel", "forgetme", "verify")
COMMAND_MENU = (
    ("avatar", "Make an avatar from a selfie"),
    ("styles", "See the styles"),
    ("cancel", "Cancel the avatar you're waiting for"),
    ("verify", "Check whether I made an image"),
    ("forgetme", "Delete everything I keep about you"),
    ("help", "What I can do"),
)
#: getFile refuses larger files (the public Bot API server's limit).
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105  # a header name, not a secret
ALLOWED_UPDATES = ("message", "callback_query")
#: A chat action shows for 5 s; repeat it while the job runs, for at most this long.
CHAT_ACTION_EVERY_S = 4.5
CHAT_ACTION_MAX_S = 600.0
#: A status update for a job this young with no queue message yet is skipped: the
#: handler that enqueued it is about to show it (avoids a second queue message).
STATUS_GRACE_S = 10.0
#: Queue-position edits, across all chats, per second: a third of Telegram's 30 messages/s,
#: so that under a burst the results and answers keep most of the budget. Status changes
#: (queued -> being made) always go through.
STATUS_EDITS_PER_S = 10.0
#: A polling problem that persists is logged again after this long.
POLL_ERROR_RELOG_S = 300.0
#: Updates handled at once (different chats/users run concurrently, one user's in order).
CONCURRENT_UPDATES = 64
_NON_IMAGE_KINDS = {
    "application/pdf": "a PDF document",
    "application/zip": "an archive",
    "application/x-zip-compressed": "an archive",
    "text/html": "a web page",
    "text/plain": "a text file",
}

_Context = CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]
_App = Application[ExtBot[None], _Context, dict[Any, Any], dict[Any, Any], dict[Any, Any], Any]


class TelegramDeliveryError(AvatarbotError):
    """A result could not be sent for a reason that may pass (network, flood control);
    raised out of `deliver` so the delivery pump tries again later."""


@dataclass
class _Where:
    """Where replies go and how: the chat, a message to reply to, a message to edit."""

    chat_id: int
    is_group: bool = False
    reply_to: int | None = None
    thread_id: int | None = None
    edit: Message | None = None
    """The picker/queue message a button was pressed on; a new picker or a queue
    message replaces it in place."""
    edited: Message | None = None
    """The message `edit` became, once it was edited."""
    ask_reply: bool = False
    """Ask for the answer as a reply (groups: so the selfie reaches the bot)."""


class _TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `take` never waits."""

    def __init__(self, rate: float, *, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Runs updates concurrently, but one user's updates in one chat strictly in order
    (a selfie must not overtake the /avatar before it)."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[tuple[int, int], asyncio.Lock] = {}
        self._users: dict[tuple[int, int], int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _update_key(update)
        if key is None:
            await coroutine
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        started = False
        try:
            async with lock:
                started = True
                await coroutine
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]
            if not started and asyncio.iscoroutine(coroutine):
                coroutine.close()  # cancelled while waiting for the lock: never ran

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""


def _update_key(update: object) -> tuple[int, int] | None:
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    user = update.effective_user
    return update.effective_chat.id, user.id if user is not None else 0


class TelegramAdapter:
    """Wire once per process: `TelegramAdapter(settings, conversation, redis)`, then
    `pump.register("telegram", adapter.deliver)`, `tracker.register("telegram",
    adapter.update_status)`, (webhook mode) `adapter.add_routes(web_app)`, and
    `await adapter.start()` / `await adapter.stop()` inside the running loop."""

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        conversation: Conversation,
        redis: aioredis.Redis,
        *,
        rate_limiter: BaseRateLimiter[int] | None = None,
        poll_timeout_s: int = 30,
    ) -> None:
        token = settings.telegram_bot_token
        if token is None or not token.get_secret_value().strip():
            raise ConfigError("TELEGRAM_BOT_TOKEN is not set")
        secret = token.get_secret_value().strip()
        self.settings = settings
        self.conversation = conversation
        self.webhook_url = settings.telegram_webhook_url
        self._webhook_secret = (
            settings.telegram_webhook_secret.get_secret_value()
            if settings.telegram_webhook_secret is not None
            else None
        )
        if self.webhook_url and not self._webhook_secret:
            raise ConfigError(
                "AVATARBOT_TELEGRAM_WEBHOOK_SECRET must be set when "
                "AVATARBOT_TELEGRAM_WEBHOOK_URL is (Telegram sends it with every update)"
            )
        self.download_limit = min(TELEGRAM_DOWNLOAD_LIMIT, settings.max_upload_bytes)
        self.poll_timeout_s = poll_timeout_s
        self.state = TelegramState(
            redis, settings.key_prefix, secret.split(":", 1)[0], settings.job_ttl_s
        )
        builder = (
            ApplicationBuilder()
            .token(secret)
            .base_url(settings.telegram_api_base_url)
            .base_file_url(settings.telegram_file_base_url)
            .rate_limiter(rate_limiter or AIORateLimiter(max_retries=3))
            .concurrent_updates(PerUserUpdateProcessor(CONCURRENT_UPDATES))
            .media_write_timeout(60)
            .get_updates_read_timeout(poll_timeout_s + 10)
        )
        if self.webhook_url:
            builder = builder.updater(None)
        self.application: _App = builder.build()  # type: ignore[assignment]  # PTB's builder generics
        self._chat_actions: dict[str, asyncio.Task[None]] = {}
        self._last_poll_error: tuple[str, float] = ("", float("-inf"))
        self.poll_conflict = PollingConflict()
        self._preview_blobs: dict[Path, bytes] = {}
        self._status_budget = _TokenBucket(STATUS_EDITS_PER_S, burst=STATUS_EDITS_PER_S)
        self.handler_errors = 0
        """Updates whose handling raised (logged by the error handler)."""
        self._register_handlers()
        conversation.on_forget(self._forget)

    async def _forget(self, owner: Owner, job_ids: Sequence[str]) -> int:
        """/forgetme: the user's private chat shares their id; group chats keep only
        message references of the user's own jobs, which go with the job ids."""
        if owner.platform != PLATFORM:
            return 0
        return await self.state.forget(int(owner.user_id), job_ids)

    # ------------------------------------------------------------------ lifecycle

    @property
    def bot(self) -> ExtBot[None]:
        return self.application.bot

    async def start(self) -> None:
        """Connect (getMe), start handling updates, and poll or set the webhook. If this
        fails or is cancelled half-way, what was started is stopped again."""
        try:
            await self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()
            raise

    async def _start(self) -> None:
        try:
            await self.application.initialize()
        except InvalidToken:
            raise ConfigError("Telegram rejected TELEGRAM_BOT_TOKEN (getMe failed)") from None
        await self._set_command_menu()
        await self.application.start()
        if self.webhook_url:
            await self.bot.set_webhook(
                self.webhook_url,
                secret_token=self._webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )
            log.info("telegram: webhook set (@%s)", self.bot.username)
        else:
            updater = self.application.updater
            if updater is None:  # built with one in polling mode
                raise RuntimeError("polling mode without an updater")
            await updater.start_polling(
                timeout=self.poll_timeout_s,
                allowed_updates=list(ALLOWED_UPDATES),
                error_callback=self._on_poll_error,
            )
            log.info("telegram: long polling as @%s", self.bot.username)

    async def stop(self) -> None:
        """Stop polling and handlers, close connections. The webhook stays set, so
        Telegram keeps updates for the next start."""
        for task in list(self._chat_actions.values()):
            task.cancel()
        for task in list(self._chat_actions.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._chat_actions.clear()
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    async def _set_command_menu(self) -> None:
        try:
            await self.bot.set_my_commands([BotCommand(c, d) for c, d in COMMAND_MENU])
        except TelegramError as exc:  # a missing menu is cosmetic
            log.warning("telegram: could not set the command menu (%s)", type(exc).__name__)

    def _on_poll_error(self, exc: TelegramError) -> None:
        """Once per kind of trouble (and again after a quiet while), not every retry."""
        if self.poll_conflict.report(exc):  # another poller, or a webhook: said once
            return
        kind = type(exc).__name__
        now = time.monotonic()
        last_kind, last_at = self._last_poll_error
        if kind != last_kind or now - last_at > POLL_ERROR_RELOG_S:
            log.warning("telegram: polling failed (%s: %s); retrying", kind, exc.message)
            self._last_poll_error = (kind, now)

    # ------------------------------------------------------------------ webhook

    @property
    def webhook_path(self) -> str:
        """The path Telegram posts updates to (from AVATARBOT_TELEGRAM_WEBHOOK_URL)."""
        path = urlsplit(self.webhook_url or "").path
        return path if path and path != "/" else "/telegram/webhook"

    def add_routes(self, app: web.Application) -> None:
        """Mount the webhook on an aiohttp app (the one that serves /healthz)."""
        app.router.add_post(self.webhook_path, self.handle_webhook)

    async def handle_webhook(self, request: web.Request) -> web.Response:
        """One update from Telegram: checked against the secret token, then queued."""
        if self._webhook_secret is None:
            return web.Response(status=404)
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self._webhook_secret.encode()):
            log.warning("telegram webhook: request without the right secret token refused")
            return web.Response(status=403)
        if not self.application.running:
            return web.Response(status=503)  # Telegram retries later
        try:
            data = await request.json()
            update = Update.de_json(data, self.bot)
        except (ValueError, TypeError, KeyError):
            log.warning("telegram webhook: malformed update refused")
            return web.Response(status=400)
        await self.application.update_queue.put(update)
        return web.Response()

    # ------------------------------------------------------------------ handlers

    def _register_handlers(self) -> None:
        app = self.application
        new_messages = filters.UpdateType.MESSAGE
        app.add_handler(CommandHandler(list(COMMANDS), self._on_command, filters=new_messages))
        app.add_handler(
            MessageHandler(new_messages & (filters.PHOTO | filters.Document.ALL), self._on_file)
        )
        app.add_handler(
            MessageHandler(new_messages & filters.TEXT & filters.ChatType.PRIVATE, self._on_text)
        )
        app.add_handler(CallbackQueryHandler(self._on_button))
        app.add_error_handler(self._on_error)

    async def _on_command(self, update: Update, context: _Context) -> None:
        message = update.effective_message
        if message is None or message.text is None or update.effective_user is None:
            return
        command = message.text.split()[0]
        name = _command_name(command)
        where = self._where_for(message)
        sender = _owner(update.effective_user.id, where.chat_id)
        waiting = await self.conversation.queue.active_job(sender) if name == "cancel" else None
        replies = await self.conversation.text(sender, command)
        where.ask_reply = where.is_group and name in ("avatar", "verify")
        await self._render(where, replies)
        if waiting is not None:
            await self._after_cancel(waiting.id, where)

    async def _on_text(self, update: Update, context: _Context) -> None:
        message = update.effective_message
        if message is None or message.text is None or update.effective_user is None:
            return
        where = self._where_for(message)
        replies = await self.conversation.text(
            _owner(update.effective_user.id, where.chat_id), message.text
        )
        await self._render(where, replies)

    async def _on_file(self, update: Update, context: _Context) -> None:
        message = update.effective_message
        if message is None or update.effective_user is None:
            return
        where = self._where_for(message)
        command = self._caption_command(message)
        if where.is_group and command is None and not self._replies_to_me(message):
            return  # in groups, only what is addressed to the bot
        if message.media_group_id and not await self.state.claim_album(
            where.chat_id, message.media_group_id
        ):
            return  # an album: its first photo is the selfie, the rest are ignored
        sender = _owner(update.effective_user.id, where.chat_id)
        data_or_problem = await self._download_selfie(message)
        if isinstance(data_or_problem, Failure):
            await self._render(where, [data_or_problem])
            return
        if command == "avatar":
            await self.conversation.avatar(sender)  # the same as /avatar, then the photo
            replies = await self.conversation.selfie(sender, data_or_problem)
        elif command == "verify":
            replies = await self.conversation.verify(sender, data_or_problem)
        else:
            replies = await self.conversation.image(sender, data_or_problem)
        await self._render(where, replies)

    async def _on_button(self, update: Update, context: _Context) -> None:
        query = update.callback_query
        if query is None or query.data is None:
            return
        message = query.message
        if message is None:  # an inline-mode message; we send none
            await query.answer()
            return
        try:
            action, arg = parse_callback(query.data)
        except BadCallbackError as exc:
            await _answer(query, exc.user_message)
            return
        requester = self._requester_of(message)
        if not action.takes_job and requester not in (None, query.from_user.id):
            await _answer(query, texts.NOT_YOUR_BUTTON)
            return
        where = _Where(chat_id=message.chat.id, is_group=message.chat.type != ChatType.PRIVATE)
        if isinstance(message, Message):
            if message.is_topic_message:
                where.thread_id = message.message_thread_id
            if where.is_group:
                where.reply_to = _reply_to_id(message)  # the requester's message
            if action in (Action.PICK, Action.VARIANTS, Action.CANCEL):
                where.edit = message  # the picker / queue message becomes the answer
        where.ask_reply = where.is_group and action is Action.AVATAR
        presser = _owner(query.from_user.id, where.chat_id)
        replies = await self.conversation.button(presser, query.data, route_data=_route_data(where))
        alert = next((r.text for r in replies if isinstance(r, Text | Failure) and r.ephemeral), "")
        await _answer(query, alert)
        await self._render(where, [r for r in replies if not _is_ephemeral(r)])
        if action is Action.CANCEL:
            await self._after_cancel(arg, where)

    async def _after_cancel(self, job_id: str, where: _Where) -> None:
        """A cancelled job's queue message is done: it became the answer, or it goes."""
        job = await self.conversation.queue.get_job(job_id)
        if job is not None and not job.status.final:
            return  # too late to cancel: the queue message carries on
        self._stop_chat_action(job_id)
        ref = await self.state.status_message(job_id)
        edited = where.edited
        if ref is not None and edited is not None and ref.message_id == edited.message_id:
            await self.state.pop_status_message(job_id)  # it says "cancelled" now
            return
        await self._retire_status_message(job_id)

    async def _on_error(self, update: object, context: _Context) -> None:
        """Log a failed update once (Telegram refusals briefly, bugs with a traceback) and
        tell the user something went wrong, unless Telegram itself refused us."""
        self.handler_errors += 1
        exc = context.error
        update_id = update.update_id if isinstance(update, Update) else None
        if isinstance(exc, Forbidden):
            log.info("telegram: update %s not answered: %s", update_id, exc.message)
            return
        if isinstance(exc, TelegramError):
            log.warning("telegram: update %s: %s: %s", update_id, type(exc).__name__, exc.message)
            return
        log.error(
            "telegram: handling update %s failed",
            update_id,
            exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
        )
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        text = error_reply(exc).text if exc is not None else AvatarbotError.user_message
        with contextlib.suppress(TelegramError):
            if update.callback_query is not None:
                await update.callback_query.answer(text[:200], show_alert=True)
            else:
                await self.bot.send_message(update.effective_chat.id, text)

    # ------------------------------------------------------------------ intake helpers

    def _where_for(self, message: Message) -> _Where:
        is_group = message.chat.type != ChatType.PRIVATE
        return _Where(
            chat_id=message.chat.id,
            is_group=is_group,
            reply_to=message.message_id if is_group else None,
            thread_id=message.message_thread_id if message.is_topic_message else None,
        )

    def _caption_command(self, message: Message) -> str | None:
        """'avatar' or 'verify' when the caption starts with that command (for this bot)."""
        caption = (message.caption or "").strip()
        if not caption.startswith("/"):
            return None
        head = caption.split()[0][1:]
        name, _, mention = head.partition("@")
        if mention and mention.lower() != (self.bot.username or "").lower():
            return None
        name = name.lower()
        return name if name in ("avatar", "verify") else None

    def _replies_to_me(self, message: Message) -> bool:
        replied = message.reply_to_message
        return (
            replied is not None
            and replied.from_user is not None
            and replied.from_user.id == self.bot.id
        )

    def _requester_of(self, message: object) -> int | None:
        """Who a picker/prompt was for: in groups the bot replies to the requester."""
        if not isinstance(message, Message) or message.chat.type == ChatType.PRIVATE:
            return None
        replied = message.reply_to_message
        if replied is None or replied.from_user is None:
            return None
        return replied.from_user.id

    async def _download_selfie(self, message: Message) -> bytes | Failure:
        """The bytes of the largest photo size or the document, or why not (checked
        against the reported size before anything is downloaded)."""
        target = self._file_to_fetch(message)
        if isinstance(target, Failure):
            return target
        file_id, size = target
        try:
            file = await self.bot.get_file(file_id)
            size = file.file_size if file.file_size is not None else size
            if size is not None and size > self.download_limit:
                return self._too_big(size)
            data = bytes(await file.download_as_bytearray())
        except BadRequest as exc:
            if "too big" not in exc.message.lower():
                raise
            return self._too_big(max(size or 0, self.download_limit + 1))
        if len(data) > self.download_limit:
            return self._too_big(len(data))
        return data

    def _file_to_fetch(self, message: Message) -> tuple[str, int | None] | Failure:
        """(file id, reported size) of the selfie in a message, or why it can't be one."""
        if message.photo:
            item = message.photo[-1]  # sizes come smallest first
            file_id, size = item.file_id, item.file_size
        elif message.document is not None:
            kind = _non_image_kind(message.document.mime_type)
            if kind is not None:
                return Failure(NotAnImage(kind).user_message)
            file_id, size = message.document.file_id, message.document.file_size
        else:
            return Failure(NotAnImage().user_message)
        if size is not None and size > self.download_limit:
            return self._too_big(size)
        return file_id, size

    def _too_big(self, size: int) -> Failure:
        log.info("telegram: an upload of %d bytes was refused without downloading it", size)
        return Failure(FileTooLarge(size, self.download_limit).user_message)

    # ------------------------------------------------------------------ results and status

    async def deliver(self, delivery: Delivery, replies: Sequence[Reply]) -> None:
        """Send a job's outcome (the DeliveryPump callback). Returns once the chat has it
        or the result is recorded as undeliverable; raises when a later try may work.

        Each Bot API call of the outcome is recorded once made, so a retry (or a
        redelivery after a restart) sends only what the chat does not have yet."""
        job = delivery.job
        if job is None:
            return
        self._stop_chat_action(job.id)
        where = _delivery_where(job)
        await self.state.mark_outcome_started(job.id)  # before retiring: see _send_queued
        await self._retire_status_message(job.id)
        done = await self.state.sent_parts(job.id)
        try:
            for i, reply in enumerate(replies):
                for j, step in enumerate(self._steps(where, reply)):
                    part = f"{i}.{j}"
                    if part not in done:
                        await step()
                        await self.state.mark_sent(job.id, part)
        except (Forbidden, BadRequest) as exc:
            reason = f"{type(exc).__name__}: {exc.message}"
            await self.state.record_undeliverable(job.id, where.chat_id, reason)
            log.warning("telegram: result of job %s is undeliverable (%s)", job.id, reason)
        except TelegramError as exc:
            raise TelegramDeliveryError(
                f"sending job {job.id} failed: {type(exc).__name__}"
            ) from exc

    async def update_status(self, job: Job, reply: Queued) -> None:
        """Show a job's queue status in its one queue message (the StatusTracker callback)."""
        if reply.status is JobStatus.RUNNING:
            self._start_chat_action(job)
        ref = await self.state.status_message(job.id)
        if ref is None and time.time() - job.created_at < STATUS_GRACE_S:
            return  # the handler that enqueued it is still showing it
        if reply.status is JobStatus.QUEUED and not self._status_budget.take():
            return  # a mere position change; results need the send budget more
        try:
            if ref is not None:
                try:
                    await self.bot.edit_message_text(
                        reply.text,
                        chat_id=ref.chat_id,
                        message_id=ref.message_id,
                        reply_markup=_keyboard(reply.buttons),
                    )
                    return
                except BadRequest as exc:
                    if "not modified" in exc.message:
                        return
                    if "not found" not in exc.message:
                        raise
            await self._send_queued(_delivery_where(job), reply)  # lost: show it anew
        except Forbidden:
            self._stop_chat_action(job.id)
            log.info("telegram: status of job %s not shown: the bot was blocked", job.id)

    def _start_chat_action(self, job: Job) -> None:
        task = self._chat_actions.get(job.id)
        if task is not None and not task.done():
            return
        chat_id = _delivery_where(job).chat_id
        task = asyncio.get_running_loop().create_task(self._chat_action_loop(job.id, chat_id))
        self._chat_actions[job.id] = task
        task.add_done_callback(functools.partial(self._chat_action_done, job.id))

    def _chat_action_done(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._chat_actions.get(job_id) is task:
            del self._chat_actions[job_id]

    def _stop_chat_action(self, job_id: str) -> None:
        task = self._chat_actions.pop(job_id, None)
        if task is not None:
            task.cancel()

    async def _chat_action_loop(self, job_id: str, chat_id: int) -> None:
        """ "Sending a photo…" while the job runs (Telegram shows it for 5 s at a time)."""
        deadline = time.monotonic() + CHAT_ACTION_MAX_S
        while time.monotonic() < deadline:
            job = await self.conversation.queue.get_job(job_id)
            if job is None or job.status is not JobStatus.RUNNING:
                return
            try:
                await self.bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
            except (Forbidden, BadRequest):
                return
            except TelegramError as exc:
                log.info("telegram: chat action failed (%s)", type(exc).__name__)
            await asyncio.sleep(CHAT_ACTION_EVERY_S)

    async def _retire_status_message(self, job_id: str) -> None:
        """The queue message has done its job once the outcome arrives: delete it."""
        ref = await self.state.pop_status_message(job_id)
        if ref is None:
            return
        try:
            await self.bot.delete_message(ref.chat_id, ref.message_id)
        except TelegramError:
            with contextlib.suppress(TelegramError):  # too old to delete: drop its buttons
                await self.bot.edit_message_reply_markup(ref.chat_id, ref.message_id)

    # ------------------------------------------------------------------ rendering

    async def _render(self, where: _Where, replies: Sequence[Reply]) -> None:
        for reply in replies:
            for step in self._steps(where, reply):
                await step()

    def _steps(self, where: _Where, reply: Reply) -> list[Callable[[], Awaitable[None]]]:
        """The Bot API calls that show one reply, in order."""
        if isinstance(reply, Text | Failure):
            return [functools.partial(self._send_text, where, reply.text, reply.buttons)]
        if isinstance(reply, StylePicker):
            return [functools.partial(self._send_picker, where, reply)]
        if isinstance(reply, Queued):
            return [functools.partial(self._send_queued, where, reply)]
        if isinstance(reply, Avatar):
            if len(reply.images) == 1:
                return [functools.partial(self._send_avatar_photo, where, reply)]
            return [
                functools.partial(self._send_avatar_album, where, reply),
                functools.partial(self._send_avatar_buttons, where, reply),
            ]
        return [functools.partial(self._send_original, where, reply)]

    def _common(self, where: _Where) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if where.reply_to is not None:
            kwargs["reply_parameters"] = ReplyParameters(
                where.reply_to, allow_sending_without_reply=True
            )
        if where.thread_id is not None:
            kwargs["message_thread_id"] = where.thread_id
        return kwargs

    async def _send_text(self, where: _Where, text: str, buttons: Sequence[Button]) -> None:
        keyboard = _keyboard(buttons)
        if await self._edit_in_place(where, text, keyboard) is not None:
            return
        markup: InlineKeyboardMarkup | ForceReply | None = keyboard
        if markup is None and where.ask_reply:
            markup = ForceReply(selective=True, input_field_placeholder="Send your selfie")
        await self.bot.send_message(where.chat_id, text, reply_markup=markup, **self._common(where))

    async def _edit_in_place(
        self, where: _Where, text: str, markup: InlineKeyboardMarkup | None
    ) -> Message | None:
        """Turn the message a button was pressed on into this one; None if it can't be."""
        target = where.edit
        if target is None:
            return None
        where.edit = None
        try:
            edited = await self.bot.edit_message_text(
                text, chat_id=target.chat.id, message_id=target.message_id, reply_markup=markup
            )
        except BadRequest as exc:
            if "not modified" not in exc.message:
                return None
            edited = target
        where.edited = edited if isinstance(edited, Message) else target
        return where.edited

    async def _send_picker(self, where: _Where, picker: StylePicker) -> None:
        markup = _picker_keyboard(picker)
        if await self._edit_in_place(where, picker.text, markup) is not None:
            return
        await self._send_previews(where, picker)
        await self.bot.send_message(
            where.chat_id, picker.text, reply_markup=markup, **self._common(where)
        )

    async def _send_previews(self, where: _Where, picker: StylePicker) -> None:
        """The album of style previews, once per chat; re-sent by cached file ids."""
        options = [o for o in picker.options if o.preview is not None and o.preview.is_file()]
        if len(options) < 2 or not await self.state.claim_preview_album(where.chat_id):
            return
        blobs = [self._preview_bytes(o.preview) for o in options if o.preview is not None]
        digests = [hashlib.blake2b(b, digest_size=10).hexdigest() for b in blobs]
        cached = await self.state.preview_file_ids(digests)
        try:
            try:
                messages = await self._send_album(where, options, blobs, digests, cached)
            except BadRequest as exc:
                if not cached:
                    raise
                log.info("telegram: cached preview file ids refused (%s); re-uploading", exc)
                await self.state.forget_preview_file_ids()
                messages = await self._send_album(where, options, blobs, digests, {})
        except TelegramError:
            await self.state.unclaim_preview_album(where.chat_id)
            raise
        fresh = {
            d: m.photo[-1].file_id
            for d, m in zip(digests, messages, strict=False)
            if m.photo and d not in cached
        }
        await self.state.save_preview_file_ids(fresh)

    def _preview_bytes(self, path: Path) -> bytes:
        """Preview images are static package data: read each once."""
        blob = self._preview_blobs.get(path)
        if blob is None:
            blob = self._preview_blobs[path] = path.read_bytes()
        return blob

    async def _send_album(
        self,
        where: _Where,
        options: Sequence[Any],
        blobs: Sequence[bytes],
        digests: Sequence[str],
        cached: dict[str, str],
    ) -> Sequence[Message]:
        media = [
            InputMediaPhoto(
                cached.get(d) or InputFile(b, filename=f"{o.style_id}.jpg", attach=True),
                caption=f"{o.label} — {o.description}",
            )
            for o, b, d in zip(options, blobs, digests, strict=True)
        ]
        common = self._common(where)
        common.pop("reply_parameters", None)
        return await self.bot.send_media_group(where.chat_id, media[:10], **common)

    async def _send_queued(self, where: _Where, reply: Queued) -> None:
        markup = _keyboard(reply.buttons)
        message = await self._edit_in_place(where, reply.text, markup)
        if message is None:
            message = await self.bot.send_message(
                where.chat_id, reply.text, reply_markup=markup, **self._common(where)
            )
        await self.state.set_status_message(
            reply.job_id, MessageRef(message.chat.id, message.message_id)
        )
        if await self.state.outcome_started(reply.job_id):
            await self._retire_status_message(reply.job_id)  # the result overtook it

    async def _send_avatar_photo(self, where: _Where, avatar: Avatar) -> None:
        image = avatar.images[0]
        try:
            await self.bot.send_photo(
                where.chat_id,
                InputFile(image.data, filename=f"avatar.{image.extension}"),
                caption=avatar.caption,
                reply_markup=_keyboard(avatar.buttons),
                **self._common(where),
            )
        except BadRequest as exc:
            if not _photo_refused(exc):
                raise
            log.info("telegram: avatar refused as a photo (%s); sending a file", exc.message)
            await self._send_as_files(where, avatar)
            await self._send_avatar_buttons(where, avatar)

    async def _send_avatar_album(self, where: _Where, avatar: Avatar) -> None:
        media = [
            InputMediaPhoto(
                InputFile(im.data, filename=f"avatar-{i + 1}.{im.extension}", attach=True)
            )
            for i, im in enumerate(avatar.images[:10])
        ]
        try:
            await self.bot.send_media_group(where.chat_id, media, **self._common(where))
        except BadRequest as exc:
            if not _photo_refused(exc):
                raise
            log.info("telegram: album refused as photos (%s); sending files", exc.message)
            await self._send_as_files(where, avatar)

    async def _send_avatar_buttons(self, where: _Where, avatar: Avatar) -> None:
        common = self._common(where)
        common.pop("reply_parameters", None)  # the album above already replies
        await self.bot.send_message(
            where.chat_id, avatar.caption, reply_markup=_keyboard(avatar.buttons), **common
        )

    async def _send_as_files(self, where: _Where, avatar: Avatar) -> None:
        """Telegram refused the images as photos (too big, odd dimensions): send files."""
        for i, image in enumerate(avatar.images):
            await self.bot.send_document(
                where.chat_id,
                InputFile(image.data, filename=f"avatar-{i + 1}.{image.extension}"),
                disable_content_type_detection=True,
                **self._common(where),
            )

    async def _send_original(self, where: _Where, original: OriginalFile) -> None:
        await self.bot.send_document(
            where.chat_id,
            InputFile(original.image.data, filename=original.filename),
            caption=original.caption or None,
            disable_content_type_detection=True,
            **self._common(where),
        )


# --------------------------------------------------------------------------- helpers


def _owner(user_id: int, chat_id: int) -> Owner:
    return Owner(platform=PLATFORM, user_id=str(user_id), chat_id=str(chat_id))


def _command_name(token: str) -> str:
    return token.lstrip("/").split("@", 1)[0].lower()


def _route_data(where: _Where) -> dict[str, str]:
    data = {"chat_id": str(where.chat_id)}
    if where.reply_to is not None:
        data["reply_to"] = str(where.reply_to)
    if where.thread_id is not None:
        data["thread_id"] = str(where.thread_id)
    return data


def _delivery_where(job: Job) -> _Where:
    data = job.route.data
    chat_id = int(data.get("chat_id", job.owner.chat_id))
    reply_to = data.get("reply_to")
    thread_id = data.get("thread_id")
    return _Where(
        chat_id=chat_id,
        is_group=chat_id < 0,
        reply_to=int(reply_to) if reply_to else None,
        thread_id=int(thread_id) if thread_id else None,
    )


def _reply_to_id(message: Message) -> int | None:
    replied = message.reply_to_message
    return replied.message_id if replied is not None else None


def _non_image_kind(mime: str | None) -> str | None:
    """A friendly kind for a document that is clearly not an image, else None."""
    if not mime or mime.startswith("image/") or mime == "application/octet-stream":
        return None
    return _NON_IMAGE_KINDS.get(mime, "a file that isn't a photo")


def _photo_refused(exc: BadRequest) -> bool:
    """Telegram would not take these bytes as a photo (but would as a file)."""
    text = exc.message.lower()
    return any(
        marker in text
        for marker in ("photo_invalid_dimensions", "image_process_failed", "too big", "photo")
    )


def _is_ephemeral(reply: Reply) -> bool:
    return isinstance(reply, Text | Failure) and reply.ephemeral


async def _answer(query: CallbackQuery, alert: str) -> None:
    try:
        if alert:
            await query.answer(alert[:200], show_alert=True)
        else:
            await query.answer()
    except BadRequest as exc:  # answered too late; the spinner has already stopped
        log.info("telegram: callback answer refused (%s)", exc.message)


def _keyboard(buttons: Sequence[Button], *, per_row: int = 2) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    rows = [
        [InlineKeyboardButton(b.label, callback_data=b.data) for b in buttons[i : i + per_row]]
        for i in range(0, len(buttons), per_row)
    ]
    return InlineKeyboardMarkup(rows)


def _picker_keyboard(picker: StylePicker) -> InlineKeyboardMarkup:
    styles = [o.button for o in picker.options]
    rows = [
        [InlineKeyboardButton(b.label, callback_data=b.data) for b in styles[i : i + 2]]
        for i in range(0, len(styles), 2)
    ]
    rows.append(
        [InlineKeyboardButton(b.label, callback_data=b.data) for b in picker.variant_buttons]
    )
    return InlineKeyboardMarkup(rows)
