"""The Telegram adapter: Telegram updates become conversation calls, replies become Bot API calls.

Built on python-telegram-bot 22 (async). It owns no event loop: `start()` initialises
and starts the `Application` inside the caller's loop (long polling, or a webhook route
mounted on the caller's aiohttp server), `stop()` undoes that. Nothing here decides what
to say; `bot.conversation.Conversation` does. This package only translates:

- the commands of `bot.chat_commands` -> `Conversation.text` (the whole text); the
  admin commands and /group, in private chats and groups -> `admins`; a photo (largest size) or
  an image document -> `Conversation.image` (a caption of /avatar or /verify says
  which); inline buttons -> `Conversation.button`.
- Each update is answered in the user's language: a first handler (group -1) sets it
  from their /language choice, else their app's `language_code`. The command menu and
  the bot's descriptions are set in every language at start (`profile`).
- Sizes are checked before anything is downloaded (`downloads`), and so is the access
  policy: a refused user's photo is never fetched.
- In groups only commands trigger (a photo counts when its caption is the command or it
  replies to the bot's "send me a selfie"). Every keyboard is bound to its recipient
  (`bot.replies.bind`); anyone else's press gets a private alert and changes nothing.
- Replies become Bot API calls in `renderer` (the style picker with its preview album,
  the queue message edited in place, results as a photo or an album).
- The queue message is one message edited as the job moves (`update_status`, throttled
  by `bot.status_tracker.StatusTracker`); `upload_photo` shows while it runs.
- Results (`deliver`, called by `bot.queue.pump.DeliveryPump`): each Bot API call is a part
  recorded in `bot.sent_parts.SentParts`, so a result redelivered after a restart never
  reaches the chat twice.
- Errors: AIORateLimiter retries 429s; Forbidden and BadRequest make a result
  undeliverable (recorded and logged once, never dropped silently); network trouble
  raises, so the pump retries later. Tokens are scrubbed from logs by `bot.logs`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from telegram import CallbackQuery, MaybeInaccessibleMessage, Message, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    CallbackContext,
    CallbackQueryHandler,
    CommandHandler,
    ExtBot,
    MessageHandler,
    TypeHandler,
    filters,
)

from adapters.telegram.admins import TelegramAdmins
from adapters.telegram.chat_actions import ChatActions
from adapters.telegram.downloads import TELEGRAM_DOWNLOAD_LIMIT, SelfieDownloads
from adapters.telegram.polling_conflict import PollingConflict
from adapters.telegram.profile import set_profile
from adapters.telegram.queue_messages import QueueMessages
from adapters.telegram.reachability import UNREACHABLE, check_bot_api, unreachable
from adapters.telegram.renderer import Renderer
from adapters.telegram.state import TelegramState
from adapters.telegram.target import (
    PLATFORM,
    Target,
    owner,
    requester_of,
    target_of_button,
    target_of_job,
    target_of_message,
)
from adapters.telegram.updates import PerUserUpdateProcessor
from adapters.telegram.webhook import TelegramWebhook
from bot import texts
from bot.chat_commands import COMMAND_NAMES
from bot.config import ConfigError, Settings
from bot.errors import AvatarbotError
from bot.jobs import Owner
from bot.replies import (
    Action,
    BadCallbackError,
    Failure,
    Queued,
    Reply,
    Text,
    bind,
    callback_allows,
    error_reply,
    owner_tag,
    parse_callback,
)
from bot.sent_parts import Part, SentParts

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bot.conversation import Conversation
    from bot.jobs import Job
    from bot.queue import Delivery

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message", "callback_query", "chat_member")
#: A polling problem that persists is logged again after this long.
POLL_ERROR_RELOG_S = 300.0
#: Updates handled at once (different chats/users run concurrently, one user's in order).
CONCURRENT_UPDATES = 64
#: Commands whose answer, in a group, asks for a reply (the photo must reach the bot).
_ASKS_FOR_A_PHOTO = ("avatar", "verify")

_Context = CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]
_App = Application[ExtBot[None], _Context, dict[Any, Any], dict[Any, Any], dict[Any, Any], Any]


class TelegramDeliveryError(AvatarbotError):
    """A result could not be sent for a reason that may pass (network, flood control);
    raised out of `deliver` so the delivery pump tries again later."""


class TelegramAdapter:
    """Wire once per process: `TelegramAdapter(settings, conversation, redis)`, then
    `bot.chat_adapter.register(adapter, pump, tracker)`, (webhook mode)
    `adapter.add_routes(web_app)`, and `await adapter.start()` / `await adapter.stop()`
    inside the running loop."""

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
        webhook_secret = (
            settings.telegram_webhook_secret.get_secret_value()
            if settings.telegram_webhook_secret is not None
            else None
        )
        if settings.telegram_webhook_url and not webhook_secret:
            raise ConfigError(
                "AVATARBOT_TELEGRAM_WEBHOOK_SECRET must be set when "
                "AVATARBOT_TELEGRAM_WEBHOOK_URL is (Telegram sends it with every update)"
            )
        self.settings = settings
        self.conversation = conversation
        self.webhook_url = settings.telegram_webhook_url
        self.poll_timeout_s = poll_timeout_s
        self.state = TelegramState(
            redis, settings.key_prefix, secret.split(":", 1)[0], settings.job_ttl_s
        )
        self.sent_parts = SentParts(redis, settings.key_prefix, settings.job_ttl_s)
        self.application = self._build(secret, rate_limiter)
        self.webhook = TelegramWebhook(self.application, self.webhook_url, webhook_secret)
        self.renderer = Renderer(self.bot, self.state)
        self.downloads = SelfieDownloads(
            self.bot, min(TELEGRAM_DOWNLOAD_LIMIT, settings.max_upload_bytes)
        )
        self.chat_actions = ChatActions(self.bot, conversation.queue)
        self._last_poll_error: tuple[str, float] = ("", float("-inf"))
        self.queue_messages = QueueMessages(
            self.bot, self.state, self.renderer, self.chat_actions, conversation.queue
        )
        self.poll_conflict = PollingConflict()
        self.handler_errors = 0
        """Updates whose handling raised (logged by the error handler)."""
        self.admins = TelegramAdmins(self.bot, conversation, self.renderer)
        self._register_handlers()
        conversation.on_forget(self._forget)
        conversation.on_forget(self.sent_parts.forget)

    def _build(self, token: str, rate_limiter: BaseRateLimiter[int] | None) -> _App:
        builder = (
            ApplicationBuilder()
            .token(token)
            .base_url(self.settings.telegram_api_base_url)
            .base_file_url(self.settings.telegram_file_base_url)
            .rate_limiter(rate_limiter or AIORateLimiter(max_retries=3))
            .concurrent_updates(PerUserUpdateProcessor(CONCURRENT_UPDATES))
            .media_write_timeout(60)
            .get_updates_read_timeout(self.poll_timeout_s + 10)
        )
        if self.webhook_url:
            builder = builder.updater(None)
        return builder.build()  # type: ignore[return-value]  # PTB's builder generics

    async def _forget(self, user: Owner, job_ids: Sequence[str]) -> int:
        """/forgetme: the user's private chat shares their id; group chats keep only
        message references of the user's own jobs, which go with the job ids."""
        if user.platform != PLATFORM:
            return 0
        return await self.state.forget(int(user.user_id), job_ids)

    # ------------------------------------------------------------------ lifecycle

    @property
    def bot(self) -> ExtBot[None]:
        return self.application.bot

    async def start(self) -> None:
        """Connect (getMe), start handling updates, and poll or set the webhook. If this
        fails or is cancelled half-way, what was started is stopped again."""
        try:
            await self._start()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self.stop()
            if isinstance(exc, UNREACHABLE):  # the process tries again later
                raise unreachable(exc) from exc
            raise

    async def check(self) -> None:
        """Raises `PlatformUnreachable` while the Bot API does not answer."""
        await check_bot_api(self.bot)

    async def _start(self) -> None:
        try:
            await self.application.initialize()
        except InvalidToken:
            raise ConfigError("Telegram rejected TELEGRAM_BOT_TOKEN (getMe failed)") from None
        await set_profile(self.bot)
        await self.application.start()
        if self.webhook_url:
            await self.bot.set_webhook(
                self.webhook_url,
                secret_token=self.webhook.secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )
            log.info("telegram: webhook set (@%s)", self.bot.username)
            return
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
        await self.chat_actions.close()
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

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
        return self.webhook.path

    def add_routes(self, app: web.Application) -> None:
        """Mount the webhook on an aiohttp app (the one that serves /healthz)."""
        self.webhook.add_routes(app)

    async def handle_webhook(self, request: web.Request) -> web.Response:
        return await self.webhook.handle(request)

    # ------------------------------------------------------------------ handlers

    def _register_handlers(self) -> None:
        app = self.application
        app.add_handler(TypeHandler(Update, self._speak_their_language), group=-1)
        new_messages = filters.UpdateType.MESSAGE
        app.add_handler(CommandHandler(list(COMMAND_NAMES), self._on_command, filters=new_messages))
        app.add_handlers(self.admins.handlers())  # before plain text, which would take them
        app.add_handler(
            MessageHandler(new_messages & (filters.PHOTO | filters.Document.ALL), self._on_file)
        )
        app.add_handler(
            MessageHandler(new_messages & filters.TEXT & filters.ChatType.PRIVATE, self._on_text)
        )
        app.add_handler(CallbackQueryHandler(self._on_button))
        app.add_error_handler(self._on_error)

    async def _speak_their_language(self, update: Update, context: _Context) -> None:
        """Before any handler (group -1): the rest of this update, which runs in its own
        task, speaks the user's language (their /language choice, else their app's)."""
        user, chat = update.effective_user, update.effective_chat
        if user is not None:
            sender = owner(user.id, chat.id if chat is not None else user.id)
            await self.conversation.use_language(sender, user.language_code)

    async def _on_command(self, update: Update, context: _Context) -> None:
        message = update.effective_message
        if message is None or message.text is None or update.effective_user is None:
            return
        name = message.text.split()[0].lstrip("/").split("@", 1)[0].lower()
        target = target_of_message(message)
        sender = owner(update.effective_user.id, target.chat_id)
        waiting = await self.conversation.queue.active_job(sender) if name == "cancel" else None
        replies = await self.conversation.text(sender, message.text)  # "/language es" too
        target.ask_reply = target.is_group and name in _ASKS_FOR_A_PHOTO
        await self.renderer.render(target, bind(replies, sender))
        if waiting is not None:
            await self.queue_messages.after_cancel(waiting.id, target)

    async def _on_text(self, update: Update, context: _Context) -> None:
        message = update.effective_message
        if message is None or message.text is None or update.effective_user is None:
            return
        target = target_of_message(message)
        sender = owner(update.effective_user.id, target.chat_id)
        replies = await self.conversation.text(sender, message.text)
        await self.renderer.render(target, bind(replies, sender))

    async def _on_file(self, update: Update, context: _Context) -> None:
        message = update.effective_message
        if message is None or update.effective_user is None:
            return
        target = target_of_message(message)
        command = self._caption_command(message)
        if target.is_group and command is None and not self._replies_to_me(message):
            return  # in groups, only what is addressed to the bot
        if message.media_group_id and not await self.state.claim_album(
            target.chat_id, message.media_group_id
        ):
            return  # an album: its first photo is the selfie, the rest are ignored
        sender = owner(update.effective_user.id, target.chat_id)
        if refused := await self.conversation.gate.check(sender):  # before downloading
            await self.renderer.render(target, refused.replies())
            return
        data = await self.downloads.fetch(message)
        if isinstance(data, Failure):
            await self.renderer.render(target, [data])
            return
        if command == "avatar":
            await self.conversation.avatar(sender)  # the same as /avatar, then the photo
            replies = await self.conversation.selfie(sender, data)
        elif command == "verify":
            replies = await self.conversation.verify(sender, data)
        else:
            replies = await self.conversation.image(sender, data)
        await self.renderer.render(target, bind(replies, sender))

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
        presser = owner(query.from_user.id, message.chat.id)
        if not self._may_press(query, message, action, presser):
            log.info("telegram: button %s refused: not the requester", action.value)
            await _answer(query, texts.not_your_button())
            return
        target = self._button_target(message, action)
        replies = await self.conversation.button(
            presser, query.data, route_data=target.route_data()
        )
        alert = next((r.text for r in replies if isinstance(r, Text | Failure) and r.ephemeral), "")
        await _answer(query, alert)
        shown = [r for r in replies if not (isinstance(r, Text | Failure) and r.ephemeral)]
        await self.renderer.render(target, bind(shown, presser))
        if action is Action.CANCEL:
            await self.queue_messages.after_cancel(arg, target)

    @staticmethod
    def _may_press(query: CallbackQuery, message: object, action: Action, presser: Owner) -> bool:
        """Buttons answer their recipient only: bound ones by their data; older unbound
        ones in groups by whom the keyboard replied to (job buttons: the conversation
        checks the job's owner)."""
        if query.data is None or not callback_allows(query.data, presser):
            return False
        requester = requester_of(message)
        return action.takes_job or requester in (None, query.from_user.id)

    @staticmethod
    def _button_target(message: MaybeInaccessibleMessage, action: Action) -> Target:
        target = target_of_button(message)
        if isinstance(message, Message) and action in (Action.PICK, Action.VARIANTS, Action.CANCEL):
            target.edit = message  # the picker / queue message becomes the answer
        target.ask_reply = target.is_group and action is Action.AVATAR
        return target

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
        text = error_reply(exc if exc is not None else AvatarbotError()).text
        with contextlib.suppress(TelegramError):
            if update.callback_query is not None:
                await update.callback_query.answer(text[:200], show_alert=True)
            else:
                await self.bot.send_message(update.effective_chat.id, text)

    # ------------------------------------------------------------------ intake helpers

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
        return name if name in _ASKS_FOR_A_PHOTO else None

    def _replies_to_me(self, message: Message) -> bool:
        replied = message.reply_to_message
        return (
            replied is not None
            and replied.from_user is not None
            and replied.from_user.id == self.bot.id
        )

    # ------------------------------------------------------------------ results and status

    async def deliver(self, delivery: Delivery, replies: Sequence[Reply]) -> None:
        """Send a job's outcome (the DeliveryPump callback). Returns once the chat has it
        or the result is recorded as undeliverable; raises when a later try may work.

        Each Bot API call of the outcome is a part recorded once made, so a retry (or a
        redelivery after a restart) sends only what the chat does not have yet."""
        job = delivery.job
        if job is None:
            return
        self.chat_actions.stop(job.id)
        target = target_of_job(job)
        await self.state.mark_outcome_started(job.id)  # before retiring: see send_queued
        await self.renderer.retire_status_message(job.id)
        parts = [
            Part(f"{i}.{j}", step)
            for i, reply in enumerate(bind(replies, job.owner))
            for j, step in enumerate(self.renderer.steps(target, reply))
        ]
        try:
            await self.sent_parts.send_once(job.id, parts)
        except (Forbidden, BadRequest) as exc:
            reason = f"{type(exc).__name__}: {exc.message}"
            await self.state.record_undeliverable(job.id, target.chat_id, reason)
            log.warning("telegram: result of job %s is undeliverable (%s)", job.id, reason)
        except TelegramError as exc:
            raise TelegramDeliveryError(
                f"sending job {job.id} failed: {type(exc).__name__}"
            ) from exc

    async def update_status(self, job: Job, reply: Queued) -> None:
        """Show a job's queue status in its one queue message (the StatusTracker callback)."""
        await self.queue_messages.update(job, reply.bound_to(owner_tag(job.owner)))


async def _answer(query: CallbackQuery, alert: str) -> None:
    try:
        if alert:
            await query.answer(alert[:200], show_alert=True)
        else:
            await query.answer()
    except BadRequest as exc:  # answered too late; the spinner has already stopped
        log.info("telegram: callback answer refused (%s)", exc.message)
