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

Selfie retention (the decision, in one place):
- Intake keeps nothing. The queue stores its own copy of the normalised selfie with the
  job and deletes it as soon as the job ends (done, failed, cancelled or dead).
- The conversation keeps the user's *current* normalised selfie (one per user, across
  chats) in Redis with a TTL of `selfie_ttl_s`, so "more like this" and "another style"
  work without a new upload. A new selfie replaces the old one.
- "Forget my selfie" deletes it at once; /forgetme deletes it together with the user's
  sessions, jobs and results (through the queue).
- After the TTL the buttons answer that the selfie is gone and ask for a new one.
- Nothing here logs image bytes, and nothing stores tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from bot import texts
from bot.admin_commands import AdminCommands
from bot.chat_commands import MENU
from bot.gate import Admission, Gatekeeper
from bot.group_admins import ChatAdminLookup
from bot.jobs import (
    MAX_VARIANTS,
    MIN_VARIANTS,
    FailureReason,
    Job,
    JobRequest,
    Owner,
    Route,
    new_seed,
)
from bot.queue import QueueFullError, QuotaExceededError, UserBusyError
from bot.replies import (
    Action,
    BadCallbackError,
    Button,
    Failure,
    OriginalFile,
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
from bot.views import avatar_images, outcome_replies, status_reply, style_picker
from bot.waiting import Shown, WaitingJobs

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.queue import Delivery, JobProducer, Receipt

log = logging.getLogger(__name__)

#: How long an idle session (stage, variant choice) is kept.
SESSION_TTL_S = 24 * 3600


ForgetHook = Callable[[Owner, Sequence[str]], Awaitable[int]]
"""An adapter's part of /forgetme: given the user and their job ids, delete what the
adapter stored about them (message ids, chat state); returns how many keys it deleted."""


@dataclass(frozen=True)
class ConversationLimits:
    bot_name: str
    """This deployment's name: results for jobs enqueued here come back to it."""
    selfie_ttl_s: int
    session_ttl_s: int = SESSION_TTL_S
    likeness_in_caption: bool = False
    """Add each image's likeness score to the avatar's caption."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ConversationLimits:
        return cls(
            bot_name=settings.bot_name,
            selfie_ttl_s=settings.selfie_ttl_s,
            likeness_in_caption=settings.likeness_in_caption,
        )


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
        self.verifier = verifier
        self._previews = previews
        self._forget_hooks: list[ForgetHook] = []
        # Operators (docs/operations.md): the access policy, asked before anything is stored,
        # and the admin commands (None: none; everyone gets "unknown command" for them).
        self.gate = gate or Gatekeeper.create(
            queue.redis, queue.config.prefix, daily_quota=queue.config.daily_quota
        )
        self.admin = admin

    def on_forget(self, hook: ForgetHook) -> None:
        """Register an adapter's part of /forgetme."""
        self._forget_hooks.append(hook)

    def on_chat_admins(self, platform: str, lookup: ChatAdminLookup) -> None:
        """Register an adapter's lookup of a group chat's admins (who may use /group)."""
        if self.admin is not None:
            self.admin.on_chat_admins(platform, lookup)

    @classmethod
    def create(
        cls,
        redis: aioredis.Redis,
        queue: JobProducer,
        intake: SelfieIntake,
        catalog: StyleCatalog,
        settings: Settings,
        *,
        verifier: Verifier | None = None,
    ) -> Conversation:
        """Wire a conversation with its Redis-backed stores from the settings."""
        limits = ConversationLimits.from_settings(settings)
        prefix = settings.key_prefix
        selfies = SelfieStore(redis, prefix, limits.selfie_ttl_s)
        return cls(
            queue,
            intake,
            catalog,
            limits,
            sessions=SessionStore(redis, prefix, limits.session_ttl_s),
            selfies=selfies,
            waiting=WaitingJobs(redis, prefix, limits.bot_name),
            verifier=verifier,
            gate=Gatekeeper.from_settings(redis, settings),
            admin=AdminCommands.create(redis, queue, selfies, settings),
        )

    # ------------------------------------------------------------------ commands

    async def start(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender):
            return refused.replies()
        await self.sessions.set_stage(sender, Stage.IDLE)
        return [
            Text(
                texts.welcome(self.limits.bot_name, self.limits.selfie_ttl_s),
                buttons=(Button(texts.BUTTON_MAKE_AVATAR, Action.AVATAR),),
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
        return [self._picker(texts.STYLES_INTRO, session.variants)]

    async def avatar(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender, new_request=True):
            return refused.replies()
        await self.sessions.set_stage(sender, Stage.AWAITING_SELFIE)
        return [Text(texts.ASK_SELFIE)]

    async def text(self, sender: Owner, message: str) -> list[Reply]:
        """Any typed message: a /command (Telegram's `/cmd@BotName` too), a style name
        while the picker is open, or anything else (a hint)."""
        words = message.strip().split()
        if not words:
            return [Text(texts.UNKNOWN_COMMAND)]
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
            return [self._picker(texts.PICK_STYLE, session.variants)]
        hint = texts.ASK_SELFIE if session.stage is Stage.AWAITING_SELFIE else texts.UNKNOWN_COMMAND
        return [Text(hint)]

    async def _command(self, sender: Owner, command: str, args: list[str]) -> list[Reply]:
        if self.admin is not None:  # admin commands; None: not for this sender
            answered = await self.admin.handle(sender, command, args)
            if answered is not None:
                return answered
        if command != "forgetme" and (refused := await self.gate.check(sender)):
            return refused.replies()
        handler = self._commands().get(command)
        return await handler(sender) if handler else [Text(texts.UNKNOWN_COMMAND)]

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
        }

    def _find_style(self, message: str) -> Style | None:
        wanted = message.strip().lower()
        for style in self.catalog:
            if wanted in (style.id, style.title.lower(), style.label.lower()):
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
        return [self._picker(texts.PICK_STYLE, session.variants)]

    async def set_variants(self, sender: Owner, variants: int) -> list[Reply]:
        """Change how many variants the next job makes; answers with the updated picker."""
        if refused := await self.gate.check(sender):
            return refused.replies()
        if not MIN_VARIANTS <= variants <= MAX_VARIANTS:
            return [Failure(texts.variants_range(MIN_VARIANTS, MAX_VARIANTS))]
        session = replace(await self.sessions.get(sender), variants=variants)
        await self.sessions.put(sender, session)
        return [self._picker(texts.PICK_STYLE, variants)]

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
            return [Failure(texts.SELFIE_EXPIRED)]
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
            return [Text(texts.NOT_YOUR_BUTTON, ephemeral=True)]
        if action is Action.PICK:
            return await self.choose(presser, arg, route_data=route_data)
        if action is Action.VARIANTS:
            return await self.set_variants(presser, int(arg) if arg.isdigit() else 0)
        if action is Action.AVATAR:
            return await self.avatar(presser)
        return await self.press(presser, action, arg, route_data=route_data)

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
            return [Failure(texts.BUTTON_EXPIRED, ephemeral=True)]
        if (job.owner.platform, job.owner.user_id) != (presser.platform, presser.user_id):
            log.info("button %s on job %s refused: not the owner", action.value, job.id)
            return [Text(texts.NOT_YOUR_BUTTON, ephemeral=True)]
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
            return [Failure(texts.SELFIE_EXPIRED)]
        session = await self.sessions.set_stage(presser, Stage.CHOOSING_STYLE)
        return [self._picker(texts.PICK_ANOTHER_STYLE, session.variants)]

    async def _more(
        self, presser: Owner, job: Job, route_data: Mapping[str, str] | None
    ) -> list[Reply]:
        stored = await self.selfies.get(presser)
        if stored is None:
            await self.sessions.set_stage(presser, Stage.AWAITING_SELFIE)
            return [Failure(texts.SELFIE_EXPIRED)]
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
            notes.append(Text(texts.SELFIE_REPLACED))
        replies = await self._enqueue(
            presser, style, job.variants, stored, seed=seed, route_data=route_data
        )
        return notes + replies

    async def _originals(self, job: Job) -> list[Reply]:
        result = await self.queue.get_result(job.id)
        if result is None or not result.images:
            return [Failure(texts.RESULT_GONE)]
        images = avatar_images(result)
        return [
            OriginalFile(
                job_id=job.id,
                index=i,
                filename=f"avatar-{job.style_id}-{job.id}-{i + 1}.{image.extension}",
                image=image,
                caption=texts.ORIGINAL_CAPTION if i == 0 else "",
            )
            for i, image in enumerate(images)
        ]

    # ------------------------------------------------------------------ cancel, forget

    async def cancel(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender):
            return refused.replies()
        await self.sessions.set_stage(sender, Stage.IDLE)
        job = await self.queue.active_job(sender)
        if job is None:
            return [Text(texts.NOTHING_TO_CANCEL)]
        return await self._cancel(job)

    async def _cancel(self, job: Job) -> list[Reply]:
        if job.status.final:
            return [Text(texts.NOTHING_TO_CANCEL)]
        if not await self.queue.cancel(job.id, job.owner):
            return [Failure(texts.CANNOT_CANCEL)]
        # The job stays watched: the status tracker edits its queue message to "cancelled"
        # (the queue publishes no outcome for a cancellation) and then drops it.
        log.info("job %s cancelled by its owner", job.id)
        return [Text(texts.CANCELLED, buttons=(Button(texts.BUTTON_NEW_AVATAR, Action.AVATAR),))]

    async def forget_selfie(self, sender: Owner) -> list[Reply]:
        """Delete the stored selfie now (the "forget my selfie" button)."""
        if await self.selfies.delete(sender):
            await self.sessions.set_stage(sender, Stage.IDLE)
            return [Text(texts.SELFIE_FORGOTTEN)]
        return [Text(texts.NO_SELFIE_TO_FORGET)]

    async def forget_me(self, sender: Owner) -> list[Reply]:
        """/forgetme: the selfie, every session, and (through the queue) jobs and results."""
        job_ids = await self.queue.user_job_ids(sender)
        had_selfie = await self.selfies.delete(sender, job_ids)
        await self.sessions.delete_user(sender)
        await self.queue.redis.delete(status_throttle_key(self.queue.config.prefix, sender))
        receipt = await self.queue.forget_user(sender)
        for hook in self._forget_hooks:
            await hook(sender, job_ids)
        await self.gate.forget(sender)  # bans stay (bot.audit)
        # The status tracker drops the forgotten jobs from `waiting` (their status is gone).
        log.info("forgot a %s user (%d keys)", sender.platform, receipt.total)
        cancelled = receipt.queued_cancelled + receipt.running_discarded
        return [Text(texts.forgot_everything(cancelled, had_selfie))]

    # ------------------------------------------------------------------ verify

    async def ask_verify(self, sender: Owner) -> list[Reply]:
        if refused := await self.gate.check(sender):
            return refused.replies()
        if self.verifier is None:
            return [Text(texts.VERIFY_UNAVAILABLE)]
        await self.sessions.set_stage(sender, Stage.AWAITING_VERIFY)
        return [Text(texts.VERIFY_ASK)]

    async def verify(self, sender: Owner, data: bytes) -> list[Reply]:
        """Say whether this bot made an image and whether it was altered since.

        The hook for `provenance.labeller`: without a verifier the answer is that
        verification is not available yet."""
        if refused := await self.gate.check(sender):
            return refused.replies()
        await self.sessions.set_stage(sender, Stage.IDLE)
        return await verdict_replies(self.verifier, data)

    # ------------------------------------------------------------------ results

    async def outcome_replies(self, delivery: Delivery) -> list[Reply]:
        """What to tell a job's owner about its outcome (used by `DeliveryPump`)."""
        await self.waiting.remove(delivery.outcome.job_id)
        style_id = delivery.job.style_id if delivery.job is not None else ""
        return outcome_replies(
            delivery, self._label(style_id), show_likeness=self.limits.likeness_in_caption
        )

    def status_reply(self, receipt: Receipt) -> Queued:
        """The queue message for a job's current status (used by `StatusTracker`)."""
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
        admission = await self.gate.admit(sender, variants)  # pause, chat limit, quota
        if not isinstance(admission, Admission):
            return admission.replies()
        request = JobRequest(
            owner=sender,
            route=Route(bot=self.limits.bot_name, data=dict(route_data or {})),
            style_id=style.id,
            variants=admission.variants,
            seed=seed,
        )
        try:
            receipt = await self.queue.enqueue(request, stored.jpeg, quota=admission.quota)
        except UserBusyError as exc:
            return [
                Failure(
                    exc.user_message,
                    buttons=(Button(texts.BUTTON_CANCEL_IT, Action.CANCEL, exc.job_id),),
                )
            ]
        except (QuotaExceededError, QueueFullError) as exc:
            log.info("enqueue refused (%s): %s", sender.platform, type(exc).__name__)
            return [Failure(exc.user_message)]
        job = receipt.job
        await self.selfies.link(job.id, stored.selfie_id)
        reply = self.status_reply(receipt)
        await self.waiting.add(
            job.id,
            Shown(
                status=job.status.value,
                position=reply.position,
                eta_s=round(receipt.eta_s),
                since=time.time(),
                text=reply.text,
            ),
        )
        log.info("job %s enqueued: style %s, %d variant(s)", job.id, style.id, job.variants)
        return [*admission.notes, reply]

    def _picker(self, text: str, variants: int) -> StylePicker:
        return style_picker(self.catalog, self._previews, text, variants)

    def _label(self, style_id: str) -> str:
        if style_id in self.catalog:
            return self.catalog.get(style_id).label
        return style_id or "your"
