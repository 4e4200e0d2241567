"""The conversation every chat adapter drives: platform-neutral, stateless in memory.

An adapter only translates: a platform event becomes one call here (`text`, `image`,
`button`, ...) with the sender as an `Owner` (platform, user id, chat id), and the
returned `Reply` values become platform messages. Results arrive later through
`bot.delivery.DeliveryPump`, which renders them with `outcome_replies`.

Flow: /avatar -> a selfie (intake in a thread; a rejection is one friendly line) -> the
style picker (previews, 1-4 variants) -> the job is enqueued (quotas and limits become
one friendly line) -> `Queued` (the tracker keeps it current) -> `Avatar` with buttons:
more like this, another style, original file, forget my selfie. Buttons carry the job
id; only the job's owner may press them (others get a short refusal).

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
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot import texts
from bot.delivery import status_throttle_key
from bot.errors import AvatarbotError
from bot.jobs import (
    MAX_VARIANTS,
    MIN_VARIANTS,
    FailureReason,
    Job,
    JobRequest,
    JobResult,
    JobStatus,
    Owner,
    Route,
    new_seed,
)
from bot.queue import QueueFullError, QuotaExceededError, UserBusyError
from bot.redis_connection import RedisUnavailableError
from bot.replies import (
    Action,
    Avatar,
    AvatarImage,
    BadCallbackError,
    Button,
    Failure,
    OriginalFile,
    Queued,
    Reply,
    StyleOption,
    StylePicker,
    Text,
    parse_callback,
)
from bot.selfie import IntakeError, SelfieIntake
from bot.selfie_store import SelfieStore, StoredSelfie
from bot.sessions import SessionStore, Stage
from bot.styles import Style, StyleCatalog, UnknownStyleError, preview_path
from bot.waiting import Shown, WaitingJobs

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.queue import Delivery, JobQueue, Receipt

log = logging.getLogger(__name__)

#: How long an idle session (stage, variant choice) is kept.
SESSION_TTL_S = 24 * 3600


class VerdictLike(Protocol):
    """What `/verify` needs from a provenance verdict (`generation.provenance.Verdict`)."""

    @property
    def ours(self) -> bool: ...

    @property
    def intact(self) -> bool: ...

    def origin(self) -> str | None:
        """'made by this avatarbot instance on <date> in style <style>' when known."""


ForgetHook = Callable[[Owner, Sequence[str]], Awaitable[int]]
"""An adapter's part of /forgetme: given the user and their job ids, delete what the
adapter stored about them (message ids, chat state); returns how many keys it deleted."""

Verifier = Callable[[bytes], VerdictLike]
"""Checks an image's labels; synchronous and CPU-bound (run in a thread). May raise an
AvatarbotError with a `user_message` (e.g. not an image)."""


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
        queue: JobQueue,
        intake: SelfieIntake,
        catalog: StyleCatalog,
        limits: ConversationLimits,
        *,
        sessions: SessionStore,
        selfies: SelfieStore,
        waiting: WaitingJobs,
        verifier: Verifier | None = None,
        previews: Callable[[str], Path] = preview_path,
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

    def on_forget(self, hook: ForgetHook) -> None:
        """Register an adapter's part of /forgetme."""
        self._forget_hooks.append(hook)

    @classmethod
    def create(
        cls,
        redis: aioredis.Redis,
        queue: JobQueue,
        intake: SelfieIntake,
        catalog: StyleCatalog,
        settings: Settings,
        *,
        verifier: Verifier | None = None,
    ) -> Conversation:
        """Wire a conversation with its Redis-backed stores from the settings."""
        limits = ConversationLimits.from_settings(settings)
        prefix = settings.key_prefix
        return cls(
            queue,
            intake,
            catalog,
            limits,
            sessions=SessionStore(redis, prefix, limits.session_ttl_s),
            selfies=SelfieStore(redis, prefix, limits.selfie_ttl_s),
            waiting=WaitingJobs(redis, prefix, limits.bot_name),
            verifier=verifier,
        )

    # ------------------------------------------------------------------ commands

    async def start(self, sender: Owner) -> list[Reply]:
        await self.sessions.set_stage(sender, Stage.IDLE)
        return [
            Text(
                texts.welcome(self.limits.bot_name, self.limits.selfie_ttl_s),
                buttons=(Button("📸 Make an avatar", Action.AVATAR),),
            )
        ]

    async def help(self, sender: Owner) -> list[Reply]:
        return [Text(texts.help_text(self.limits.selfie_ttl_s))]

    async def styles(self, sender: Owner) -> list[Reply]:
        session = await self.sessions.get(sender)
        return [self._picker(texts.STYLES_INTRO, session.variants)]

    async def avatar(self, sender: Owner) -> list[Reply]:
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
            command = first[1:].split("@", 1)[0]
            handler = self._commands().get(command)
            return await handler(sender) if handler else [Text(texts.UNKNOWN_COMMAND)]
        session = await self.sessions.get(sender)
        if session.stage is Stage.CHOOSING_STYLE:
            style = self._find_style(message)
            if style is not None:
                return await self.choose(sender, style.id)
            return [self._picker(texts.PICK_STYLE, session.variants)]
        hint = texts.ASK_SELFIE if session.stage is Stage.AWAITING_SELFIE else texts.UNKNOWN_COMMAND
        return [Text(hint)]

    def _commands(self) -> dict[str, Callable[[Owner], Awaitable[list[Reply]]]]:
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
        session = await self.sessions.get(sender)
        if session.stage is Stage.AWAITING_VERIFY:
            return await self.verify(sender, data)
        return await self.selfie(sender, data)

    async def selfie(self, sender: Owner, data: bytes) -> list[Reply]:
        """Intake (in a thread); a rejection is one friendly line, success the picker."""
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
        if not MIN_VARIANTS <= variants <= MAX_VARIANTS:
            return [Failure(f"Pick between {MIN_VARIANTS} and {MAX_VARIANTS} variants.")]
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
        try:
            style = self.catalog.get(style_id)
        except UnknownStyleError as exc:
            return [Failure(exc.user_message)]
        session = await self.sessions.get(sender)
        count = variants if variants is not None else session.variants
        if not MIN_VARIANTS <= count <= MAX_VARIANTS:
            return [Failure(f"Pick between {MIN_VARIANTS} and {MAX_VARIANTS} variants.")]
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
        """A button press: `data` is the callback data of a `Button` we sent."""
        try:
            action, arg = parse_callback(data)
        except BadCallbackError as exc:
            return [Failure(exc.user_message, ephemeral=True)]
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
        images = _images(result)
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
        return [Text(texts.CANCELLED, buttons=(Button("📸 New avatar", Action.AVATAR),))]

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
        # The status tracker drops the forgotten jobs from `waiting` (their status is gone).
        log.info("forgot a %s user (%d keys)", sender.platform, receipt.total)
        cancelled = receipt.queued_cancelled + receipt.running_discarded
        return [Text(texts.forgot_everything(cancelled, had_selfie))]

    # ------------------------------------------------------------------ verify

    async def ask_verify(self, sender: Owner) -> list[Reply]:
        if self.verifier is None:
            return [Text(texts.VERIFY_UNAVAILABLE)]
        await self.sessions.set_stage(sender, Stage.AWAITING_VERIFY)
        return [Text(texts.VERIFY_ASK)]

    async def verify(self, sender: Owner, data: bytes) -> list[Reply]:
        """Say whether this bot made an image and whether it was altered since.

        The hook for `generation.provenance`: without a verifier the answer is that
        verification is not available yet."""
        await self.sessions.set_stage(sender, Stage.IDLE)
        if self.verifier is None:
            return [Text(texts.VERIFY_UNAVAILABLE)]
        try:
            verdict = await asyncio.to_thread(self.verifier, data)
        except AvatarbotError as exc:
            return [Failure(exc.user_message)]
        return [Text(texts.verdict(verdict.ours, verdict.intact, verdict.origin()))]

    # ------------------------------------------------------------------ results

    async def outcome_replies(self, delivery: Delivery) -> list[Reply]:
        """What to tell a job's owner about its outcome (used by `DeliveryPump`)."""
        outcome, job = delivery.outcome, delivery.job
        await self.waiting.remove(outcome.job_id)
        style_id = job.style_id if job is not None else ""
        label = self._label(style_id)
        if outcome.status is JobStatus.DONE and delivery.result is not None:
            images = _images(delivery.result)
            return [
                Avatar(
                    job_id=outcome.job_id,
                    style_id=style_id,
                    style_label=label,
                    images=images,
                    caption=texts.avatar_caption(
                        label, len(images), likeness=self._caption_likeness(images)
                    ),
                    buttons=_avatar_buttons(outcome.job_id),
                )
            ]
        if outcome.status is JobStatus.CANCELLED:
            return []  # the user cancelled and was answered then
        reason = outcome.failure
        if outcome.status is JobStatus.DONE:  # done but the result has expired
            return [Failure(texts.RESULT_GONE)]
        return [Failure(texts.failure(reason), buttons=_failure_buttons(outcome.job_id, reason))]

    def status_reply(self, receipt: Receipt) -> Queued:
        """The queue message for a job's current status (used by `StatusTracker`)."""
        job = receipt.job
        label = self._label(job.style_id)
        if job.status is JobStatus.CANCELLED:
            return Queued(
                job_id=job.id,
                style_label=label,
                position=0,
                eta_s=0.0,
                status=job.status,
                progress=job.progress,
                text=texts.STATUS_CANCELLED,
            )
        if job.status is JobStatus.RUNNING:
            return Queued(
                job_id=job.id,
                style_label=label,
                position=0,
                eta_s=receipt.eta_s,
                status=job.status,
                progress=job.progress,
                text=texts.running(label, job.progress),
            )
        return Queued(
            job_id=job.id,
            style_label=label,
            position=receipt.position,
            eta_s=receipt.eta_s,
            status=job.status,
            progress=job.progress,
            text=texts.queued(label, receipt.position, receipt.eta_s),
            buttons=(Button("✖ Cancel", Action.CANCEL, job.id),),
        )

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
        request = JobRequest(
            owner=sender,
            route=Route(bot=self.limits.bot_name, data=dict(route_data or {})),
            style_id=style.id,
            variants=variants,
            seed=seed,
        )
        try:
            receipt = await self.queue.enqueue(request, stored.jpeg)
        except UserBusyError as exc:
            return [
                Failure(
                    exc.user_message, buttons=(Button("✖ Cancel it", Action.CANCEL, exc.job_id),)
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
        log.info("job %s enqueued: style %s, %d variant(s)", job.id, style.id, variants)
        return [reply]

    def _picker(self, text: str, variants: int) -> StylePicker:
        options = []
        for style in self.catalog:
            path = self._previews(style.id)
            preview = path if path.is_file() else None
            options.append(
                StyleOption(
                    style_id=style.id,
                    label=style.label,
                    description=style.description,
                    preview=preview,
                )
            )
        return StylePicker(text=text, options=tuple(options), variants=variants)

    def _caption_likeness(self, images: Sequence[AvatarImage]) -> list[str]:
        """The images' likeness for the caption, when the operator shows it there."""
        if not self.limits.likeness_in_caption:
            return []
        return [im.likeness.percent for im in images if im.likeness is not None]

    def _label(self, style_id: str) -> str:
        if style_id in self.catalog:
            return self.catalog.get(style_id).label
        return style_id or "your"


def _images(result: JobResult) -> tuple[AvatarImage, ...]:
    return tuple(
        AvatarImage(
            data=im.data,
            mime=im.mime,
            width=im.width,
            height=im.height,
            seed=im.seed,
            likeness=im.likeness,
        )
        for im in result.images
    )


def _avatar_buttons(job_id: str) -> tuple[Button, ...]:
    return (
        Button("🔁 More like this", Action.MORE, job_id),
        Button("🎨 Another style", Action.STYLE, job_id),
        Button("📥 Original file", Action.ORIGINAL, job_id),
        Button("🗑 Forget my selfie", Action.FORGET, job_id),
    )


def _failure_buttons(job_id: str, reason: FailureReason | None) -> tuple[Button, ...]:
    if reason is FailureReason.SELFIE_EXPIRED:
        return (Button("📸 Send a new selfie", Action.AVATAR),)
    if reason is FailureReason.UNKNOWN_STYLE:
        return (Button("🎨 Another style", Action.STYLE, job_id),)
    if reason is FailureReason.BLOCKED_CONTENT:
        return (Button("📸 Another photo", Action.AVATAR),)
    return (
        Button("🔁 Try again", Action.MORE, job_id),
        Button("🎨 Another style", Action.STYLE, job_id),
    )


def error_reply(exc: BaseException) -> Failure:
    """How an adapter answers an error that escaped the conversation: the error's own
    friendly line, "try again shortly" while Redis is unreachable, else a generic apology."""
    if isinstance(exc, AvatarbotError):
        return Failure(exc.user_message)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return Failure(RedisUnavailableError.user_message)
    return Failure(AvatarbotError.user_message)
