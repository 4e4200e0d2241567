"""The Discord adapter: slash commands and buttons become conversation calls, replies
become interaction responses, followups and (after 15 minutes) DMs or channel posts.

Built on discord.py 2.x. It owns no event loop: `start()` runs
`async with client: await client.start(token)` as a task in the caller's loop and returns
once commands are synced and the gateway is connected; `stop()` closes the client.
Nothing here decides what to say (`bot.conversation.Conversation` does); this module
translates:

- `/avatar selfie:<attachment> style:<choice> [variants:1-4]` (styles as choices, or
  autocomplete past 25), `/styles`, `/forgetme`, `/verify image:<attachment>`. Synced on
  start: globally (usable in servers and DMs), or to `AVATARBOT_DISCORD_GUILD_ID` for
  development (instant). Every command is answered with `defer(thinking=True,
  ephemeral=True)` at once; the answer then edits that ephemeral message: an intake
  problem in one line, or the queue position and ETA, kept current by `update_status`
  (the StatusTracker throttles it).
- Sizes are checked before downloading (`attachment.size` against `max_upload_bytes`).
- The original response is always edited ("checking your photo") before the job exists:
  a deferred response's first followup would otherwise replace the loading message and
  inherit its ephemerality.
- Results (`deliver`, called by the DeliveryPump): a public followup with the image files
  and buttons (more like this, another style, original file, forget my selfie), fitted
  into `interaction.filesize_limit` (JPEG, then fewer variants; never a failure). Button
  custom ids are the conversation's callback data (`v1:<action>:<job id>`), handled by a
  `DynamicItem`, so they work after a restart; the conversation refuses strangers and the
  refusal is ephemeral.
- The interaction token lives 15 minutes. The job's `Route.data` (see
  `adapters.discord.route.DiscordRoute`) holds what every path needs, so a result that
  comes later, or after a restart, goes to the user by DM, or when DMs are closed to the
  channel with a mention. When neither works the result is logged as undeliverable (it
  stays in Redis for `result_ttl_s`); transient errors raise, so the pump retries.
- Rate limits: discord.py waits out 429s (and 5xx) itself; what still fails is logged
  once here (status and Discord error code, never a token) and raised to the caller.
- Tokens never reach a log line from here; `adapters.discord.redaction` scrubs
  interaction tokens from discord.py's own debug lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import discord
from discord import app_commands
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.discord.redaction import TokenScrubbing
from adapters.discord.route import DEFAULT_UPLOAD_LIMIT, DiscordRoute, RouteDataError
from adapters.discord.sharding import ShardedClient, ShardPlan
from adapters.discord.uploads import FRAMING_BYTES, fit_images
from bot.config import ConfigError
from bot.conversation import error_reply
from bot.errors import AvatarbotError
from bot.jobs import Job, Owner
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
    StylePicker,
    Text,
    parse_callback,
)
from bot.selfie import FileTooLarge
from bot.styles import UnknownStyleError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation import Conversation
    from bot.queue import Delivery

log = logging.getLogger(__name__)

PLATFORM = "discord"
#: Discord's limits: choices per option, buttons per row, rows per message, message text.
MAX_CHOICES = 25
ROW_WIDTH = 5
MAX_ROWS = 5
MAX_CONTENT = 2000
MAX_FILES = 10
#: Our custom ids: conversation callback data (`v1:<action>:<arg>`, see bot.replies). Any
#: version matches, so a button from an older release is answered ("no longer works").
CUSTOM_ID_TEMPLATE = r"v[0-9]{1,3}:[A-Za-z0-9_:-]{1,90}"

CHECKING = "📥 Got it, checking your photo…"
READY = "✅ Your avatar is ready: see below."
FINISHED = "See my message below."
ON_IT = "⏳ On it…"
DOWNLOAD_FAILED = "I couldn't download that file from Discord. Please try again."
SOMETHING_WRONG = "Sorry, something went wrong on my side. Please try again in a moment."
DROPPED_NOTE = "({n} more didn't fit in one Discord message: press 📥 Original file to get them.)"
DROPPED_PLAIN = "({n} more didn't fit in one Discord message.)"

# HTTP statuses / Discord error codes that mean "this interaction token no longer works".
_TOKEN_DEAD_STATUSES = frozenset({401})
_TOKEN_DEAD_CODES = frozenset({10015, 10062, 50027})  # unknown webhook/interaction, bad token
_UNKNOWN_MESSAGE = 10008
#: Discord's alias for an interaction's original response in webhook message routes.
#: discord.py types the message id as int but puts it into the path as given.
ORIGINAL_RESPONSE = cast(int, "@original")


class DiscordStartError(AvatarbotError):
    """The Discord client could not log in or connect; the message says why."""


class DiscordDeliveryError(AvatarbotError):
    """Sending a result failed in a way a later try may fix (the pump retries)."""


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Outgoing:
    """One Discord message to send, before files are fitted to an upload limit."""

    content: str
    buttons: tuple[Button, ...] = ()
    images: tuple[AvatarImage, ...] = ()
    stem: str = "avatar"
    public: bool = False
    """Results are public in the channel (others can see, only the owner can press);
    everything else answering an interaction is ephemeral."""
    originals: bool = False
    """Labelled original files: never re-encoded (that would strip the C2PA manifest)."""


def to_outgoing(replies: Sequence[Reply]) -> list[Outgoing]:
    """The messages for `replies`; consecutive original files share one message."""
    out: list[Outgoing] = []
    originals: list[OriginalFile] = []

    def flush() -> None:
        if originals:
            first = originals[0]
            out.append(
                Outgoing(
                    content=first.caption or first.filename,
                    images=tuple(o.image for o in originals),
                    stem=f"avatar-original-{first.job_id}",
                    originals=True,
                )
            )
            originals.clear()

    for reply in replies:
        if isinstance(reply, OriginalFile):
            originals.append(reply)
            continue
        flush()
        if isinstance(reply, Text | Failure | Queued):
            out.append(Outgoing(reply.text, reply.buttons))
        elif isinstance(reply, StylePicker):
            buttons = [o.button for o in reply.options][: ROW_WIDTH * (MAX_ROWS - 1)]
            out.append(Outgoing(reply.text, (*buttons, *reply.variant_buttons)))
        elif isinstance(reply, Avatar):
            stem = f"avatar-{reply.style_id}-{reply.job_id}"
            out.append(Outgoing(reply.caption, reply.buttons, reply.images, stem, public=True))
    flush()
    return out


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID_TEMPLATE):
    """A button whose custom id is conversation callback data; answered after restarts."""

    def __init__(self, custom_id: str, label: str = "…", style: discord.ButtonStyle | None = None):
        super().__init__(
            discord.ui.Button(
                label=label[:80] or "…",
                custom_id=custom_id,
                style=style or discord.ButtonStyle.secondary,
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: Any,
        /,
    ) -> JobButton:
        label = getattr(item, "label", None) or "…"
        return cls(str(match.string), label)

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        client = interaction.client
        if isinstance(client, AvatarClient):
            await client.adapter.on_button(interaction, self.item.custom_id or "")


def _button_style(action: Action) -> discord.ButtonStyle:
    if action in (Action.FORGET, Action.CANCEL):
        return discord.ButtonStyle.danger
    if action in (Action.MORE, Action.PICK):
        return discord.ButtonStyle.primary
    return discord.ButtonStyle.secondary


def make_view(buttons: Sequence[Button]) -> discord.ui.View | None:
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for i, button in enumerate(buttons[: ROW_WIDTH * MAX_ROWS]):
        item = JobButton(button.data, button.label, _button_style(button.action))
        item.row = min(i // ROW_WIDTH, MAX_ROWS - 1)
        view.add_item(item)
    return view


@dataclass
class Prepared:
    """An Outgoing with its files fitted to a limit; fresh `discord.File`s per send."""

    content: str
    uploads: list[tuple[str, bytes]]
    view: discord.ui.View | None

    def files(self) -> list[discord.File]:
        return [discord.File(io.BytesIO(data), filename=name) for name, data in self.uploads]


def prepare(message: Outgoing, limit: int, prefix: str = "") -> Prepared:
    content = message.content
    uploads: list[tuple[str, bytes]] = []
    if message.images:
        images = message.images[:MAX_FILES]
        fitted = fit_images(images, limit, message.stem, reencode=not message.originals)
        uploads = [(u.filename, u.data) for u in fitted.uploads]
        if fitted.dropped:
            original_button = any(b.action is Action.ORIGINAL for b in message.buttons)
            note = DROPPED_NOTE if original_button else DROPPED_PLAIN
            content += "\n" + note.format(n=fitted.dropped)
            log.info("discord: %d variant(s) left out to fit %d bytes", fitted.dropped, limit)
    if prefix:
        content = f"{prefix} {content}"
    return Prepared(content[:MAX_CONTENT], uploads, make_view(message.buttons))


# --------------------------------------------------------------------------- the client


class AvatarClient(ShardedClient):
    """discord.py client that hands its events to the adapter."""

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        # We never use voice: skip discord.py's "PyNaCl/davey is not installed" warnings.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True  # interactions need no intents; guilds keeps the cache sane
        super().__init__(
            intents=intents,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.adapter = adapter
        self.tree: app_commands.CommandTree[AvatarClient] = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        await self.adapter.setup(self)

    async def on_ready(self) -> None:
        self.adapter.ready.set()


# --------------------------------------------------------------------------- the adapter


@dataclass
class _Health:
    """Counters for logs, metrics and tests."""

    fallbacks: int = 0
    undeliverable: int = 0
    handler_errors: int = 0
    logged: set[str] = field(default_factory=set)


class DiscordAdapter:
    """Wire once per process: `DiscordAdapter(settings, conversation)`, then
    `pump.register("discord", adapter.deliver)`, `tracker.register("discord",
    adapter.update_status)`, and `await adapter.start()` / `await adapter.stop()` inside
    the running loop."""

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        conversation: Conversation,
        *,
        clock: Callable[[], float] = time.time,
        ready_timeout_s: float = 60.0,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        token = settings.discord_bot_token
        if token is None or not token.get_secret_value().strip():
            raise ConfigError("DISCORD_BOT_TOKEN is not set")
        self._token = token
        self.settings = settings
        self.conversation = conversation
        self.guild_id = settings.discord_guild_id
        self.download_limit = settings.max_upload_bytes
        self.clock = clock
        self.ready_timeout_s = ready_timeout_s
        self._client_options = dict(client_options or {})
        self.shards = ShardPlan.from_settings(settings)
        self.client: AvatarClient | None = None
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._scrubbing = TokenScrubbing()
        self.health = _Health()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Log in, sync commands, connect the gateway; returns once ready.

        Raises DiscordStartError when Discord refuses the token or the client stops."""
        self._scrubbing.install()
        self.ready.clear()
        client = AvatarClient(self, plan=self.shards, **self._client_options)
        client.add_dynamic_items(JobButton)
        self.client = client
        self._task = asyncio.create_task(self._run(client), name="discord-client")
        waiter = asyncio.create_task(self.ready.wait())
        try:
            done, _ = await asyncio.wait(
                {self._task, waiter}, timeout=self.ready_timeout_s, return_when="FIRST_COMPLETED"
            )
        except asyncio.CancelledError:  # a stop signal during start: leave nothing running
            waiter.cancel()
            await self.stop()
            raise
        waiter.cancel()
        if self._task in done:
            exc = self._task.exception()
            await self.stop()
            if isinstance(exc, AvatarbotError):  # says what to do (token, shard settings)
                raise DiscordStartError(str(exc), user_message=str(exc)) from exc
            raise DiscordStartError(f"the Discord client stopped while starting: {exc!r}")
        if not done:
            await self.stop()
            raise DiscordStartError(f"Discord was not ready within {self.ready_timeout_s:.0f}s")
        user = client.user
        log.info("discord: connected as %s (application %s)", user, client.application_id)

    async def _run(self, client: AvatarClient) -> None:
        try:
            async with client:
                await client.start(self._token.get_secret_value().strip())
        except discord.LoginFailure:
            raise DiscordStartError("Discord rejected DISCORD_BOT_TOKEN") from None
        except discord.PrivilegedIntentsRequired as exc:  # never asked for, but be clear
            raise DiscordStartError(str(exc)) from None

    async def stop(self) -> None:
        client, task = self.client, self._task
        self.client = self._task = None
        if client is not None and not client.is_closed():
            await client.close()
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        self._scrubbing.remove()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _live_client(self) -> AvatarClient:
        client = self.client
        if client is None or client.is_closed():
            raise DiscordDeliveryError("the Discord client is not running")
        return client

    # ------------------------------------------------------------------ commands

    async def setup(self, client: AvatarClient) -> None:
        """Register the slash commands and sync them (the client's setup hook)."""
        tree = client.tree
        tree.error(self._on_tree_error)
        guild = discord.Object(id=self.guild_id) if self.guild_id else None
        for command in self._commands(global_scope=guild is None):
            tree.add_command(command, guild=guild)
        if not self.shards.syncs_commands:  # the process running shard 0 syncs
            return
        try:
            synced = await tree.sync(guild=guild)
        except discord.HTTPException as exc:
            # The commands registered by the last successful sync keep working.
            log.error("discord: command sync failed (%s)", _describe(exc))
            return
        where = f"guild {self.guild_id}" if guild else "globally"
        log.info("discord: %d slash command(s) synced %s", len(synced), where)

    def _commands(self, *, global_scope: bool) -> list[app_commands.Command[Any, ..., None]]:
        catalog = self.conversation.catalog

        @app_commands.describe(
            selfie="A photo of your face", style="The art style", variants="How many (1-4)"
        )
        async def avatar(
            interaction: discord.Interaction,
            selfie: discord.Attachment,
            style: str,
            variants: app_commands.Range[int, 1, 4] = 1,
        ) -> None:
            await self.on_avatar(interaction, selfie, style, variants)

        if len(catalog) <= MAX_CHOICES:
            choices = [app_commands.Choice(name=s.label[:100], value=s.id) for s in catalog]
            avatar = app_commands.choices(style=choices)(avatar)
        else:
            avatar = app_commands.autocomplete(style=self._style_autocomplete)(avatar)

        async def styles(interaction: discord.Interaction) -> None:
            await self.on_styles(interaction)

        async def forgetme(interaction: discord.Interaction) -> None:
            await self.on_forget_me(interaction)

        @app_commands.describe(image="The image to check (send it as a file)")
        async def verify(interaction: discord.Interaction, image: discord.Attachment) -> None:
            await self.on_verify(interaction, image)

        commands: list[app_commands.Command[Any, ..., None]] = [
            app_commands.Command(
                name="avatar", description="Turn a selfie into an AI avatar", callback=avatar
            ),
            app_commands.Command(name="styles", description="See the styles", callback=styles),
            app_commands.Command(
                name="forgetme",
                description="Delete your selfie and everything else I keep about you",
                callback=forgetme,
            ),
            app_commands.Command(
                name="verify", description="Check whether I made an image", callback=verify
            ),
        ]
        if global_scope:  # contexts only exist for global commands
            for command in commands:
                command.allowed_contexts = app_commands.AppCommandContext(
                    guild=True, dm_channel=True, private_channel=True
                )
        return commands

    async def _style_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        wanted = current.strip().lower()
        return [
            app_commands.Choice(name=s.label[:100], value=s.id)
            for s in self.conversation.catalog
            if not wanted or wanted in s.id or wanted in s.title.lower()
        ][:MAX_CHOICES]

    # ------------------------------------------------------------------ handlers

    async def on_avatar(
        self,
        interaction: discord.Interaction,
        selfie: discord.Attachment,
        style: str,
        variants: int,
    ) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        owner = owner_of(interaction)
        if style not in self.conversation.catalog:
            await self._answer(interaction, [Failure(UnknownStyleError.user_message)])
            return
        if selfie.size > self.download_limit:
            log.info("discord: an upload of %d bytes was refused unread", selfie.size)
            too_big = FileTooLarge(selfie.size, self.download_limit).user_message
            await self._answer(interaction, [Failure(too_big)])
            return
        # Settle the deferred message before the job exists (see the module docstring).
        await interaction.edit_original_response(content=CHECKING)
        data = await self._download(selfie)
        if data is None:
            await self._answer(interaction, [Failure(DOWNLOAD_FAILED)])
            return
        replies = await self.conversation.selfie(owner, data)
        if any(isinstance(r, Failure) for r in replies):
            await self._answer(interaction, replies)
            return
        route = route_of(interaction)
        replies = await self.conversation.choose(owner, style, variants, route_data=route.to_data())
        await self._answer(interaction, replies)

    async def on_styles(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        replies = await self.conversation.styles(owner_of(interaction))
        lines: list[str] = []
        previews: list[discord.File] = []
        budget = interaction.filesize_limit - FRAMING_BYTES
        for reply in replies:
            if not isinstance(reply, StylePicker):
                continue
            lines.append(reply.text)
            for option in reply.options:
                lines.append(f"{option.label} (`{option.style_id}`): {option.description}")
                if option.preview is None or len(previews) >= MAX_FILES:
                    continue
                data = await asyncio.to_thread(option.preview.read_bytes)
                if len(data) <= budget:
                    budget -= len(data)
                    name = f"{option.style_id}.jpg"
                    previews.append(discord.File(io.BytesIO(data), filename=name))
        await interaction.edit_original_response(
            content="\n".join(lines)[:MAX_CONTENT], attachments=previews
        )

    async def on_forget_me(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        replies = await self.conversation.forget_me(owner_of(interaction))
        await self._answer(interaction, replies)

    async def on_verify(self, interaction: discord.Interaction, image: discord.Attachment) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        if image.size > self.download_limit:
            too_big = FileTooLarge(image.size, self.download_limit).user_message
            await self._answer(interaction, [Failure(too_big)])
            return
        data = await self._download(image)
        if data is None:
            await self._answer(interaction, [Failure(DOWNLOAD_FAILED)])
            return
        replies = await self.conversation.verify(owner_of(interaction), data)
        await self._answer(interaction, replies)

    async def on_button(self, interaction: discord.Interaction, custom_id: str) -> None:
        """A press on one of our buttons (any message, any age)."""
        try:
            action, _ = parse_callback(custom_id)
        except BadCallbackError:
            action = None
        try:
            if action in (Action.VARIANTS, Action.CANCEL):
                await interaction.response.defer()  # these update their own message
            else:
                await interaction.response.defer(thinking=True, ephemeral=True)
            if action in (Action.MORE, Action.PICK):
                # These enqueue a job: settle the deferred message first (module docstring).
                await interaction.edit_original_response(content=ON_IT)
            route = route_of(interaction)
            replies = await self.conversation.button(
                owner_of(interaction), custom_id, route_data=route.to_data()
            )
            await self._answer(interaction, replies)
        except Exception as exc:  # a button must never fail silently for the user
            await self._handler_failed(interaction, exc)

    async def _on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        cause = error.__cause__ or error
        if isinstance(error, app_commands.CommandInvokeError):
            cause = error.original
        await self._handler_failed(interaction, cause)

    async def _handler_failed(self, interaction: discord.Interaction, exc: BaseException) -> None:
        self.health.handler_errors += 1
        if isinstance(exc, AvatarbotError | RedisConnectionError | RedisTimeoutError):
            text = error_reply(exc).text
            log.warning("discord: %s while handling an interaction", type(exc).__name__)
        else:
            text = SOMETHING_WRONG
            detail = _describe(exc) if isinstance(exc, discord.HTTPException) else repr(exc)
            log.error("discord: interaction handler failed: %s", detail)
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.edit_original_response(content=text, attachments=[], view=None)
            else:
                await interaction.response.send_message(text, ephemeral=True)

    async def _download(self, attachment: discord.Attachment) -> bytes | None:
        try:
            return await attachment.read()
        except discord.HTTPException as exc:
            log.warning("discord: attachment download failed (%s)", _describe(exc))
            return None

    async def _answer(self, interaction: discord.Interaction, replies: Sequence[Reply]) -> None:
        """The first reply edits the (deferred) original response; the rest follow up."""
        messages = to_outgoing(replies)
        if not messages:
            await interaction.edit_original_response(content="👍", view=None)
            return
        limit = interaction.filesize_limit
        first = prepare(messages[0], limit)
        await interaction.edit_original_response(
            content=first.content, attachments=first.files(), view=first.view
        )
        for message in messages[1:]:
            extra = prepare(message, limit)
            await interaction.followup.send(
                content=extra.content,
                files=extra.files(),
                view=extra.view or discord.utils.MISSING,
                ephemeral=not message.public,
                wait=True,
            )

    # ------------------------------------------------------------------ results and status

    async def deliver(self, delivery: Delivery, replies: Sequence[Reply]) -> None:
        """Send a job's outcome (the DeliveryPump callback): as a followup while the
        interaction token lives, else by DM, else in the channel with a mention. Raises
        DiscordDeliveryError when a later try may work; logs and returns when none can."""
        job = delivery.job
        if job is None:
            return
        try:
            route = DiscordRoute.from_data(job.route.data)
        except RouteDataError as exc:
            log.error("discord: job %s cannot be delivered: %s", job.id, exc)
            self.health.undeliverable += 1
            return
        messages = to_outgoing(replies)
        if not messages:  # e.g. cancelled: the user was answered when they cancelled
            return
        client = self._live_client()
        sent = 0
        if route.token_alive(self.clock()):
            webhook = self._webhook(client, route)
            try:
                for message in messages:
                    await self._followup(webhook, prepare(message, route.upload_limit))
                    sent += 1
            except discord.HTTPException as exc:
                if not token_dead(exc):
                    raise DiscordDeliveryError(
                        f"followup for job {job.id} failed ({_describe(exc)})"
                    ) from exc
                log.info("discord: token of job %s no longer works; using the fallback", job.id)
            else:
                with_avatar = any(isinstance(r, Avatar) for r in replies)
                await self._retire_status(webhook, job, READY if with_avatar else FINISHED)
                return
        await self._fallback(client, job, route, messages[sent:])

    async def _followup(self, webhook: discord.Webhook, prepared: Prepared) -> None:
        await webhook.send(
            content=prepared.content,
            files=prepared.files(),
            view=prepared.view or discord.utils.MISSING,
            allowed_mentions=discord.AllowedMentions.none(),
            wait=True,
        )

    async def _retire_status(self, webhook: discord.Webhook, job: Job, text: str) -> None:
        """The ephemeral queue message has done its job: say so and drop its buttons."""
        try:
            await webhook.edit_message(
                ORIGINAL_RESPONSE,
                content=text,
                view=None,
            )
        except discord.HTTPException as exc:
            log.debug("discord: status of job %s not retired (%s)", job.id, _describe(exc))

    async def _fallback(
        self, client: AvatarClient, job: Job, route: DiscordRoute, messages: Sequence[Outgoing]
    ) -> None:
        if not messages:
            return
        self.health.fallbacks += 1
        try:
            dm = await client.create_dm(discord.Object(id=route.user_id))
            for message in messages:
                await self._post(dm, prepare(message, DEFAULT_UPLOAD_LIMIT))
            log.info("discord: job %s delivered by DM (interaction expired)", job.id)
            return
        except discord.Forbidden as exc:
            log.info("discord: cannot DM the owner of job %s (%s)", job.id, _describe(exc))
            dm_error: discord.HTTPException = exc
        except discord.HTTPException as exc:
            raise DiscordDeliveryError(f"DM for job {job.id} failed ({_describe(exc)})") from exc
        if route.in_dm:  # the DM was the channel: nowhere else to go
            self._undeliverable(job, dm_error)
            return
        channel = client.get_partial_messageable(route.channel_id, guild_id=route.guild_id)
        mention = f"<@{route.user_id}>"
        try:
            for message in messages:
                prepared = prepare(message, DEFAULT_UPLOAD_LIMIT, prefix=mention)
                await self._post(channel, prepared, mention=route.user_id)
        except (discord.Forbidden, discord.NotFound) as exc:
            self._undeliverable(job, exc)
            return
        except discord.HTTPException as exc:
            raise DiscordDeliveryError(
                f"channel post for job {job.id} failed ({_describe(exc)})"
            ) from exc
        log.info("discord: job %s delivered to its channel with a mention", job.id)

    async def _post(
        self, channel: discord.abc.Messageable, prepared: Prepared, *, mention: int | None = None
    ) -> None:
        mentions = discord.AllowedMentions.none()
        if mention is not None:  # ping the owner, nobody else
            mentions.users = [discord.Object(id=mention)]
        await channel.send(
            content=prepared.content,
            files=prepared.files(),
            view=prepared.view or discord.utils.MISSING,
            allowed_mentions=mentions,
        )

    def _undeliverable(self, job: Job, exc: discord.HTTPException) -> None:
        self.health.undeliverable += 1
        log.warning(
            "discord: result of job %s is undeliverable (%s); it stays stored until it expires",
            job.id,
            _describe(exc),
        )

    async def update_status(self, job: Job, reply: Queued) -> None:
        """Edit the job's ephemeral queue message (the StatusTracker callback). Once the
        interaction token is too old there is nothing left to edit; the result will come
        by DM or in the channel."""
        try:
            route = DiscordRoute.from_data(job.route.data)
        except RouteDataError:
            return
        if not route.token_alive(self.clock()):
            return
        webhook = self._webhook(self._live_client(), route)
        try:
            await webhook.edit_message(
                ORIGINAL_RESPONSE,
                content=reply.text,
                view=make_view(reply.buttons),
            )
        except discord.HTTPException as exc:
            # A status edit is not worth a retry: the next change tries again, and the
            # result does not depend on it. Logged once per job.
            quiet = token_dead(exc) or exc.code == _UNKNOWN_MESSAGE
            level = logging.INFO if quiet else logging.WARNING
            self._log_once(f"status:{job.id}", "status edit", exc, job, level=level)

    def _webhook(self, client: AvatarClient, route: DiscordRoute) -> discord.Webhook:
        return discord.Webhook.partial(route.application_id, route.token, client=client)

    def _log_once(
        self,
        key: str,
        what: str,
        exc: discord.HTTPException,
        job: Job,
        *,
        level: int = logging.WARNING,
    ) -> None:
        """One log line per (what, job): a retried failure does not flood the log."""
        if key in self.health.logged:
            return
        if len(self.health.logged) > 10_000:
            self.health.logged.clear()
        self.health.logged.add(key)
        log.log(level, "discord: %s for job %s failed (%s)", what, job.id, _describe(exc))


# --------------------------------------------------------------------------- helpers


def owner_of(interaction: discord.Interaction) -> Owner:
    chat = interaction.channel_id or interaction.user.id
    return Owner(platform=PLATFORM, user_id=str(interaction.user.id), chat_id=str(chat))


def route_of(interaction: discord.Interaction) -> DiscordRoute:
    return DiscordRoute(
        application_id=interaction.application_id,
        interaction_id=interaction.id,
        token=interaction.token,
        created_at=interaction.created_at.timestamp(),
        user_id=interaction.user.id,
        channel_id=interaction.channel_id or interaction.user.id,
        guild_id=interaction.guild_id,
        upload_limit=interaction.filesize_limit,
    )


def token_dead(exc: discord.HTTPException) -> bool:
    return exc.status in _TOKEN_DEAD_STATUSES or exc.code in _TOKEN_DEAD_CODES


def _describe(exc: discord.HTTPException | BaseException) -> str:
    """Status, Discord error code and message: never a URL (interaction URLs hold tokens)."""
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status}, code {exc.code}: {exc.text[:200]}"
    return type(exc).__name__
