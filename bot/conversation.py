"""The conversation every chat adapter drives: platform-neutral, stateless in memory.

An adapter only translates: a platform event becomes one call here (`text`, `image`,
`button`, ...) with the sender as an `Owner` (platform, user id, chat id), and the
returned `Reply` values become platform messages. Results arrive later through
`bot.queue.pump.DeliveryPump`, which renders them with `outcome_replies`.

Flow: /avatar -> a selfie (intake in a thread; a rejection is one friendly line) -> the
style picker (previews, 1-4 variants) -> the job is enqueued (quotas and limits become
one friendly line) -> `Queued` (the tracker keeps it current) -> `Avatar` with buttons:
more like this, another style, original file, forget my selfie. Buttons carry the job
id; only the job's owner may press them (others get a short refusal).

Access (docs/operations.md): every entry point asks the gate (`bot.gate`) first, before
anything of the user's is read or stored (so before intake); a refusal is one line. Admin
commands (`bot.admin_commands`) are answered before that, for admins only; to anyone else
they are unknown commands. /forgetme and "forget my selfie" are never refused.

Selfie retention: `bot.selfie_store` says how long a selfie is kept and what deletes it.

Languages (`bot.i18n`): an adapter calls `use_language` at the start of each event, so
the replies to it are in the user's language (their /language choice, else their app's).
A job keeps the language it was asked in (`Job.locale`); its queue messages and its
outcome are told in that language, whenever and by whichever process they are sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bot import i18n, texts
from bot.admin_commands import AdminCommands
from bot.chat_commands import MENU
from bot.conversation_limits import ConversationLimits
from bot.enqueuing import Enqueuing, Order
from bot.gate import Gatekeeper
from bot.group_admins import ChatAdminLookup
from bot.i18n import LanguagePreferences
from bot.jobs import (
    MAX_VARIANTS,
    MIN_VARIANTS,
    FailureReason,
    Job,
    Owner,
    new_seed,
)
from bot.language_choice import LanguageChoice
from bot.replies import (
    Action,
    BadCallbackError,
    Button,
    Failure,
    Queued,
    Reply,
    StylePicker,
    Text,
    callback_allows,
    parse_callback,
)
from bot.selfie import IntakeError, SelfieIntake
from bot.selfie_store import SelfieStore, StoredSelfie
from bot.sessions import SessionStore, Stage
from bot.status_tracker import status_throttle_key
from bot.styles import Style, StyleCatalog, UnknownStyleError, preview_path
from bot.verdicts import Verifier, verdict_replies
from bot.views import original_files, outcome_replies, status_reply, style_picker
from bot.waiting import WaitingJobs

if TYPE_CHECKING:
    from bot.queue import Delivery, JobProducer, Receipt

log = logging.getLogger(__name__)

ForgetHook = Callable[[Owner, Sequence[str]], Awaitable[int]]
"""An adapter's part of /forgetme: given the user and their job ids, delete what the
adapter stored about them (message ids, chat state); returns how many keys it deleted."""


class Conversation:
    """One instance per bot process, shared by all adapters; holds no per-user memory."""

    def __init__(
        self,
        queue: JobProducer,
        intake: SelfieIntake,
        catalog: StyleCatalog,
        limits: ConversationLimits,
        *,
        sessions: SessionStore,
        selfies: SelfieStore,
        waiting: WaitingJobs,
        languages: LanguagePreferences,
        verifier: Verifier | None = None,
        previews: Callable[[str], Path] = preview_path,
        gate: Gatekeeper | None = None,
        admin: AdminCommands | None = None,
    ) -> None:
        self.queue = queue
        self.intake = intake
        self.catalog = catalog
        self.limits = limits
        self.sessions = sessions
        self.selfies = selfies
        self.waiting = waiting
        self.languages = languages
        self.language_choice = LanguageChoice(languages)
        self.verifier = verifier
        self._previews = previews
        self._forget_hooks: list[ForgetHook] = []
        # Operators (docs/operations.md): the access policy, asked before anything is stored,
        # and the admin commands (None: none; everyone gets "unknown command" for them).
        self.gate = gate or Gatekeeper.create(
            queue.redis, queue.config.prefix, daily_quota=queue.config.daily_quota
        )
        self.admin = admin
        self.enqueuing = Enqueuing(queue, selfies, waiting, self.gate, limits.bot_name)

    def on_forget(self, hook: ForgetHook) -> None:
        """Register an adapter's part of /forgetme."""
        self._forget_hooks.append(hook)

    def on_chat_admins(self, platform: str, lookup: ChatAdminLookup) -> None:
        """Register an adapter's lookup of a group chat's admins (who may use /group)."""
        if self.admin is not None:
            self.admin.on_chat_admins(platform, lookup)

    # ------------------------------------------------------------------ commands

    async def start(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender):
            return refused.replies()
        await self.sessions.set_stage(sender, Stage.IDLE)
        return [
            Text(
                texts.welcome(self.limits.bot_name, self.limits.selfie_ttl_s),
                buttons=(Button(texts.button_make_avatar(), Action.AVATAR),),
            )
        ]

    async def help(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender):
            return refused.replies()
        listed = [(c.name, c.summary) for c in MENU if c.name != "help"]
        return [Text(texts.help_text(self.limits.selfie_ttl_s, listed))]

    async def styles(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender):
            return refused.replies()
        session = await self.sessions.get(sender)
        return [self._picker(texts.styles_intro(), session.variants)]

    async def avatar(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender, new_request=True):
            return refused.replies()
        await self.sessions.set_stage(sender, Stage.AWAITING_SELFIE)
        return [Text(texts.ask_selfie())]

    async def text(self, sender: Owner, message: str) -> list[Reply]:
        """Any typed message: a /command (Telegram's `/cmd@BotName` too), a style name
        while the picker is open, or anything else (a hint)."""
        words = message.strip().split()
        if not words:
            return [Text(texts.unknown_command())]
        first = words[0].lower()
        if first.startswith("/"):
            return await self._command(sender, first[1:].split("@", 1)[0], words[1:])
        if refused := await self.gate.check(sender):
            return refused.replies()
        session = await self.sessions.get(sender)
        if session.stage is Stage.CHOOSING_STYLE:
            style = self._find_style(message)
            if style is not None:
                return await self.choose(sender, style.id)
            return [self._picker(texts.pick_style(), session.variants)]
        hint = (
            texts.ask_selfie()
            if session.stage is Stage.AWAITING_SELFIE
            else texts.unknown_command()
        )
        return [Text(hint)]

    async def _command(self, sender: Owner, command: str, args: list[str]) -> list[Reply]:
        if self.admin is not None:  # admin commands; None: not for this sender
            answered = await self.admin.handle(sender, command, args)
            if answered is not None:
                return answered
        handler = self._commands().get(command)
        if handler is not None and not (command == "language" and args):
            return await handler(sender)  # each handler asks the gate itself (or never)
        if refused := await self.gate.check(sender):
            return refused.replies()
        if handler is not None:  # "/language es"
            return await self.set_language(sender, args[0])
        return [Text(texts.unknown_command())]

    def _commands(self) -> dict[str, Callable[[Owner], Awaitable[list[Reply]]]]:
        """A handler for each name in `bot.chat_commands.CHAT_COMMANDS`."""
        return {
            "start": self.start,
            "help": self.help,
            "styles": self.styles,
            "avatar": self.avatar,
            "cancel": self.cancel,
            "forgetme": self.forget_me,
            "verify": self.ask_verify,
            "language": self.language,
        }

    def _find_style(self, message: str) -> Style | None:
        wanted = message.strip().lower()
        for style in self.catalog:
            if wanted in style.names():
                return style
        return None

    # ------------------------------------------------------------------ images

    async def image(self, sender: Owner, data: bytes) -> list[Reply]:
        """An image the user sent: checked if /verify asked for one, else a selfie."""
        if refused := await self.gate.check(sender):
            return refused.replies()
        session = await self.sessions.get(sender)
        if session.stage is Stage.AWAITING_VERIFY:
            return await self.verify(sender, data)
        return await self.selfie(sender, data)

    async def selfie(self, sender: Owner, data: bytes) -> list[Reply]:
        """Intake (in a thread); a rejection is one friendly line, success the picker."""
        if refused := await self.gate.check(sender, new_request=True):
            return refused.replies()
        try:
            selfie = await asyncio.to_thread(self.intake.process, data)
        except IntakeError as exc:
            log.info("selfie rejected (%s): %s", sender.platform, type(exc).__name__)
            await self.sessions.set_stage(sender, Stage.AWAITING_SELFIE)
            return [Failure(exc.user_message)]
        await self.selfies.put(sender, selfie.jpeg)
        session = await self.sessions.set_stage(sender, Stage.CHOOSING_STYLE)
        return [self._picker(texts.pick_style(), session.variants)]

    async def set_variants(self, sender: Owner, variants: int) -> list[Reply]:
        """Change how many variants the next job makes; answers with the updated picker."""
        if refused := await self.gate.check(sender):
            return refused.replies()
        if not MIN_VARIANTS <= variants <= MAX_VARIANTS:
            return [Failure(texts.variants_range(MIN_VARIANTS, MAX_VARIANTS))]
        session = replace(await self.sessions.get(sender), variants=variants)
        await self.sessions.put(sender, session)
        return [self._picker(texts.pick_style(), variants)]

    async def choose(
        self,
        sender: Owner,
        style_id: str,
        variants: int | None = None,
        *,
        route_data: Mapping[str, str] | None = None,
    ) -> list[Reply]:
        """Enqueue the stored selfie in `style_id` (variants: given, else the picker's)."""
        if refused := await self.gate.check(sender):
            return refused.replies()
        try:
            style = self.catalog.get(style_id)
        except UnknownStyleError as exc:
            return [Failure(exc.user_message)]
        session = await self.sessions.get(sender)
        count = variants if variants is not None else session.variants
        if not MIN_VARIANTS <= count <= MAX_VARIANTS:
            return [Failure(texts.variants_range(MIN_VARIANTS, MAX_VARIANTS))]
        stored = await self.selfies.get(sender)
        if stored is None:
            await self.sessions.set_stage(sender, Stage.AWAITING_SELFIE)
            return [Failure(texts.selfie_expired())]
        replies = await self._enqueue(sender, style, count, stored, route_data=route_data)
        if isinstance(replies[-1], Queued):
            await self.sessions.set_stage(sender, Stage.IDLE)
        return replies

    # ------------------------------------------------------------------ buttons

    async def button(
        self, presser: Owner, data: str, *, route_data: Mapping[str, str] | None = None
    ) -> list[Reply]:
        """A button press: `data` is the callback data of a `Button` we sent. A button
        bound to someone else is refused (only its recipient may press it)."""
        try:
            action, arg = parse_callback(data)
        except BadCallbackError as exc:
            return [Failure(exc.user_message, ephemeral=True)]
        if not callback_allows(data, presser):
            log.info("button %s refused: bound to someone else", action.value)
            return [Text(texts.not_your_button(), ephemeral=True)]
        if action.takes_job:
            return await self.press(presser, action, arg, route_data=route_data)
        handlers: dict[Action, Callable[[], Awaitable[list[Reply]]]] = {
            Action.PICK: lambda: self.choose(presser, arg, route_data=route_data),
            Action.VARIANTS: lambda: self.set_variants(presser, int(arg) if arg.isdigit() else 0),
            Action.AVATAR: lambda: self.avatar(presser),
            Action.LANGUAGE: lambda: self.set_language(presser, arg),
        }
        return await handlers[action]()

    async def press(
        self,
        presser: Owner,
        action: Action,
        job_id: str,
        *,
        route_data: Mapping[str, str] | None = None,
    ) -> list[Reply]:
        """A job button. Only the job's owner may press it."""
        if not action.takes_job:
            raise ValueError(f"{action} is not a job action")
        if action is not Action.FORGET and (refused := await self.gate.check(presser)):
            return refused.replies()  # deleting one's selfie is always allowed
        job = await self.queue.get_job(job_id)
        if job is None:
            if action is Action.FORGET:  # deleting one's own selfie needs no job
                return await self.forget_selfie(presser)
            return [Failure(texts.button_expired(), ephemeral=True)]
        if (job.owner.platform, job.owner.user_id) != (presser.platform, presser.user_id):
            log.info("button %s on job %s refused: not the owner", action.value, job.id)
            return [Text(texts.not_your_button(), ephemeral=True)]
        handlers: dict[Action, Callable[[], Awaitable[list[Reply]]]] = {
            Action.MORE: lambda: self._more(presser, job, route_data),
            Action.STYLE: lambda: self._another_style(presser),
            Action.ORIGINAL: lambda: self._originals(job),
            Action.FORGET: lambda: self.forget_selfie(presser),
            Action.CANCEL: lambda: self._cancel(job),
        }
        return await handlers[action]()

    async def _another_style(self, presser: Owner) -> list[Reply]:
        if await self.selfies.get(presser) is None:
            await self.sessions.set_stage(presser, Stage.AWAITING_SELFIE)
            return [Failure(texts.selfie_expired())]
        session = await self.sessions.set_stage(presser, Stage.CHOOSING_STYLE)
        return [self._picker(texts.pick_another_style(), session.variants)]

    async def _more(
        self, presser: Owner, job: Job, route_data: Mapping[str, str] | None
    ) -> list[Reply]:
        stored = await self.selfies.get(presser)
        if stored is None:
            await self.sessions.set_stage(presser, Stage.AWAITING_SELFIE)
            return [Failure(texts.selfie_expired())]
        try:
            style = self.catalog.get(job.style_id)
        except UnknownStyleError:
            session = await self.sessions.set_stage(presser, Stage.CHOOSING_STYLE)
            return [self._picker(texts.failure(FailureReason.UNKNOWN_STYLE), session.variants)]
        seed = new_seed()
        while seed == job.seed:
            seed = new_seed()
        notes: list[Reply] = []
        if await self.selfies.linked(job.id) not in (None, stored.selfie_id):
            notes.append(Text(texts.selfie_replaced()))
        replies = await self._enqueue(
            presser, style, job.variants, stored, seed=seed, route_data=route_data
        )
        return notes + replies

    async def _originals(self, job: Job) -> list[Reply]:
        result = await self.queue.get_result(job.id)
        if result is None or not result.images:
            return [Failure(texts.result_gone())]
        return original_files(job, result)

    # ------------------------------------------------------------------ cancel, forget

    async def cancel(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender):
            return refused.replies()
        await self.sessions.set_stage(sender, Stage.IDLE)
        job = await self.queue.active_job(sender)
        if job is None:
            return [Text(texts.nothing_to_cancel())]
        return await self._cancel(job)

    async def _cancel(self, job: Job) -> list[Reply]:
        if job.status.final:
            return [Text(texts.nothing_to_cancel())]
        if not await self.queue.cancel(job.id, job.owner):
            return [Failure(texts.cannot_cancel())]
        # The job stays watched: the status tracker edits its queue message to "cancelled"
        # (the queue publishes no outcome for a cancellation) and then drops it.
        log.info("job %s cancelled by its owner", job.id)
        return [
            Text(texts.cancelled(), buttons=(Button(texts.button_new_avatar(), Action.AVATAR),))
        ]

    async def forget_selfie(self, sender: Owner) -> list[Reply]:
        """Delete the stored selfie now (the "forget my selfie" button)."""
        if await self.selfies.delete(sender):
            await self.sessions.set_stage(sender, Stage.IDLE)
            return [Text(texts.selfie_forgotten())]
        return [Text(texts.no_selfie_to_forget())]

    async def forget_me(self, sender: Owner) -> list[Reply]:
        """/forgetme: the selfie, every session, and (through the queue) jobs and results."""
        job_ids = await self.queue.user_job_ids(sender)
        had_selfie = await self.selfies.delete(sender, job_ids)
        await self.sessions.delete_user(sender)
        await self.languages.clear(sender)  # the receipt still speaks it: this event's locale
        await self.queue.redis.delete(status_throttle_key(self.queue.config.prefix, sender))
        receipt = await self.queue.forget_user(sender)
        for hook in self._forget_hooks:
            await hook(sender, job_ids)
        await self.gate.forget(sender)  # bans stay (bot.audit)
        # The status tracker drops the forgotten jobs from `waiting` (their status is gone).
        log.info("forgot a %s user (%d keys)", sender.platform, receipt.total)
        cancelled = receipt.queued_cancelled + receipt.running_discarded
        return [Text(texts.forgot_everything(cancelled, had_selfie))]

    # ------------------------------------------------------------------ languages

    async def use_language(self, sender: Owner, app_language: str | None) -> str:
        """Speak `sender`'s language for the rest of this event (`bot.language_choice`)."""
        return await self.language_choice.use(sender, app_language)

    async def language(self, sender: Owner) -> list[Reply]:
        """/language: the languages, each named in itself, and "automatic"."""
        if refused := await self.gate.check(sender):
            return refused.replies()
        return [self.language_choice.picker(texts.language_ask(i18n.current_locale()))]

    async def set_language(self, sender: Owner, choice: str) -> list[Reply]:
        """Speak `choice` (a language tag, or "auto") from now on."""
        return await self.language_choice.choose(sender, choice)

    # ------------------------------------------------------------------ verify

    async def ask_verify(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender):
            return refused.replies()
        if self.verifier is None:
            return [Text(texts.verify_unavailable())]
        await self.sessions.set_stage(sender, Stage.AWAITING_VERIFY)
        return [Text(texts.verify_ask())]

    async def verify(self, sender: Owner, data: bytes) -> list[Reply]:
        """Say whether this bot made an image and whether it was altered since.

        The hook for `provenance.labeller`: without a verifier the answer is that
        verification is not available yet."""
        if refused := await self.gate.check(sender):
            return refused.replies()
        await self.sessions.set_stage(sender, Stage.IDLE)
        return await verdict_replies(self.verifier, data, self._label)

    # ------------------------------------------------------------------ results

    async def outcome_replies(self, delivery: Delivery) -> list[Reply]:
        """What to tell a job's owner about its outcome (used by `DeliveryPump`), in the
        language the job was asked in."""
        with i18n.use(delivery.job.locale if delivery.job is not None else ""):
            await self.waiting.remove(delivery.outcome.job_id)
            style_id = delivery.job.style_id if delivery.job is not None else ""
            return outcome_replies(
                delivery, self._label(style_id), show_likeness=self.limits.likeness_in_caption
            )

    def status_reply(self, receipt: Receipt) -> Queued:
        """The queue message for a job's current status (used by `StatusTracker`), in the
        language the job was asked in."""
        with i18n.use(receipt.job.locale):
            return status_reply(receipt, self._label(receipt.job.style_id))

    # ------------------------------------------------------------------ helpers

    async def _enqueue(
        self,
        sender: Owner,
        style: Style,
        variants: int,
        stored: StoredSelfie,
        *,
        seed: int | None = None,
        route_data: Mapping[str, str] | None = None,
    ) -> list[Reply]:
        order = Order(sender, style, variants, stored, seed, dict(route_data or {}))
        return await self.enqueuing.enqueue(order, self.status_reply)

    def _picker(self, text: str, variants: int) -> StylePicker:
        return style_picker(self.catalog, self._previews, text, variants)

    def _label(self, style_id: str) -> str:
        if style_id in self.catalog:
            return self.catalog.get(style_id).label
        return style_id or "🎨"
