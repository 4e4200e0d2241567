"""The Discord adapter: slash commands and buttons become conversation calls, replies
become interaction responses, followups and (after 15 minutes) DMs or channel posts.

Built on discord.py 2.x. It owns no event loop: `start()` runs
`async with client: await client.start(token)` as a task in the caller's loop and returns
once commands are synced and the gateway is connected; `stop()` closes the client.
Nothing here decides what to say (`bot.conversation.Conversation` does); this package
translates:

- Each interaction is answered in the user's language (their /language choice, else
  `interaction.locale`); command descriptions, option names and style choices are
  localised for every Discord locale we have a catalog for (`translator`).
- Slash commands (`commands`, from the core's command table; `/admin` for the bot's
  admins, behind Discord's own command permissions: `admin_commands`). Every command is
  answered with `defer(thinking=True, ephemeral=True)` at once; the answer then edits
  that ephemeral message: an intake problem in one line, or the queue position and ETA,
  kept current by `update_status` (the StatusTracker throttles it).
- Sizes are checked before downloading (`attachment.size` against `max_upload_bytes`).
- The original response is always edited ("checking your photo") before the job exists:
  a deferred response's first followup would otherwise replace the loading message and
  inherit its ephemerality.
- Results (`deliver`, see `results`): a public followup with the image files and buttons,
  fitted into `interaction.filesize_limit` (`outgoing`); after 15 minutes a DM or a
  channel post with a mention. Each message is sent once, even across retries.
- Buttons (`buttons`) carry the conversation's callback data, so they work after a
  restart; each is bound to the user it was sent to, and anyone else's press gets an
  ephemeral refusal and changes nothing.
- Rate limits: discord.py waits out 429s (and 5xx) itself; what still fails is logged
  once (status and Discord error code, never a token) and raised to the caller.
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
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.discord.buttons import JobButton
from adapters.discord.client import AvatarClient
from adapters.discord.commands import sync
from adapters.discord.http_errors import (
    DiscordDeliveryError,
    DiscordStartError,
    describe,
)
from adapters.discord.interactions import PLATFORM, owner_of, route_of
from adapters.discord.outgoing import MAX_CONTENT, MAX_FILES, prepare, to_outgoing
from adapters.discord.redaction import TokenScrubbing
from adapters.discord.results import Health, Results
from adapters.discord.sharding import ShardPlan
from adapters.discord.uploads import FRAMING_BYTES
from bot import texts
from bot.admin_commands import clipped
from bot.chat_adapter import PlatformUnreachable
from bot.config import ConfigError
from bot.errors import AvatarbotError
from bot.replies import (
    Action,
    BadCallbackError,
    Failure,
    Queued,
    Reply,
    StylePicker,
    bind,
    callback_allows,
    error_reply,
    parse_callback,
)
from bot.selfie import FileTooLarge
from bot.sent_parts import SentParts
from bot.styles import UnknownStyleError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bot.config import Settings
    from bot.conversation import Conversation
    from bot.jobs import Job, Owner
    from bot.queue import Delivery

log = logging.getLogger(__name__)

#: What a start that could not reach Discord fails with (network, gateway, Discord's 5xx).
_UNREACHABLE = (OSError, TimeoutError, aiohttp.ClientError, discord.GatewayNotFound,
                discord.DiscordServerError)  # fmt: skip


class DiscordAdapter:
    """Wire once per process: `DiscordAdapter(settings, conversation, redis)`, then
    `bot.chat_adapter.register(adapter, pump, tracker)`, and `await adapter.start()` /
    `await adapter.stop()` inside the running loop."""

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        conversation: Conversation,
        redis: aioredis.Redis,
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
        self.health = Health()
        sent_parts = SentParts(redis, settings.key_prefix, settings.job_ttl_s)
        conversation.on_forget(sent_parts.forget)
        self.results = Results(self._live_client, sent_parts, self.health, clock)

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
            if isinstance(exc, _UNREACHABLE):  # tried again later by the bot process
                raise PlatformUnreachable(f"discord: {type(exc).__name__}") from exc
            raise DiscordStartError(f"the Discord client stopped while starting: {exc!r}")
        if not done:
            await self.stop()
            raise PlatformUnreachable(f"Discord was not ready within {self.ready_timeout_s:.0f}s")
        log.info("discord: connected as %s (application %s)", client.user, client.application_id)

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

    async def check(self) -> None:
        """Raises `PlatformUnreachable` while the client is closed or not connected
        (discord.py reconnects on its own meanwhile)."""
        client = self.client
        if not self.running or client is None or client.is_closed() or not client.is_ready():
            raise PlatformUnreachable("discord: not connected")

    def _live_client(self) -> AvatarClient:
        client = self.client
        if client is None or client.is_closed():
            raise DiscordDeliveryError("the Discord client is not running")
        return client

    async def setup(self, client: AvatarClient) -> None:
        """The client's setup hook: errors go to `_on_tree_error`, commands are synced."""
        client.tree.error(self._on_tree_error)
        await sync(client, self, self.guild_id)

    # ------------------------------------------------------------------ commands

    async def on_avatar(
        self,
        interaction: discord.Interaction,
        selfie: discord.Attachment,
        style: str,
        variants: int,
    ) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        owner = await self.speak_their_language(interaction)
        if refused := await self.conversation.gate.check(owner, new_request=True):
            await self._answer(interaction, refused.replies())  # nothing downloaded
            return
        if style not in self.conversation.catalog:
            await self._answer(interaction, [Failure(UnknownStyleError().user_message)])
            return
        if selfie.size > self.download_limit:
            log.info("discord: an upload of %d bytes was refused unread", selfie.size)
            too_big = FileTooLarge(selfie.size, self.download_limit).user_message
            await self._answer(interaction, [Failure(too_big)])
            return
        # Settle the deferred message before the job exists (see the module docstring).
        await interaction.edit_original_response(content=texts.checking_photo())
        data = await self._download(selfie)
        if data is None:
            await self._answer(interaction, [Failure(texts.download_failed())])
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
        replies = await self.conversation.styles(await self.speak_their_language(interaction))
        if not any(isinstance(r, StylePicker) for r in replies):  # refused: one line
            await self._answer(interaction, replies)
            return
        lines: list[str] = []
        previews: list[discord.File] = []
        budget = interaction.filesize_limit - FRAMING_BYTES
        for picker in (r for r in replies if isinstance(r, StylePicker)):
            lines.append(picker.text)
            for option in picker.options:
                lines.append(texts.style_line(option.label, option.style_id, option.description))
                if option.preview is None or len(previews) >= MAX_FILES:
                    continue
                data = await asyncio.to_thread(option.preview.read_bytes)
                if len(data) <= budget:
                    budget -= len(data)
                    previews.append(
                        discord.File(io.BytesIO(data), filename=f"{option.style_id}.jpg")
                    )
        await interaction.edit_original_response(
            content="\n".join(lines)[:MAX_CONTENT], attachments=previews
        )

    async def on_forget_me(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        replies = await self.conversation.forget_me(await self.speak_their_language(interaction))
        await self._answer(interaction, replies)

    async def on_language(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        replies = await self.conversation.language(await self.speak_their_language(interaction))
        await self._answer(interaction, replies)

    async def on_verify(self, interaction: discord.Interaction, image: discord.Attachment) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        sender = await self.speak_their_language(interaction)
        if refused := await self.conversation.gate.check(sender):
            await self._answer(interaction, refused.replies())  # nothing downloaded
            return
        if image.size > self.download_limit:
            too_big = FileTooLarge(image.size, self.download_limit).user_message
            await self._answer(interaction, [Failure(too_big)])
            return
        data = await self._download(image)
        if data is None:
            await self._answer(interaction, [Failure(texts.download_failed())])
            return
        replies = await self.conversation.verify(sender, data)
        await self._answer(interaction, replies)

    async def on_admin(self, interaction: discord.Interaction, line: str) -> None:
        """An /admin subcommand, as the chat command line it stands for (`admin_commands`):
        answered privately; to anyone not an admin of the bot, as an unknown command."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        sender = await self.speak_their_language(interaction)
        replies = await self.conversation.text(sender, line)
        await self._answer(interaction, clipped(replies, MAX_CONTENT))

    # ------------------------------------------------------------------ buttons and errors

    async def on_button(self, interaction: discord.Interaction, custom_id: str) -> None:
        """A press on one of our buttons (any message, any age). A button bound to
        someone else is refused privately before anything else happens."""
        try:
            action: Action | None = parse_callback(custom_id)[0]
        except BadCallbackError:
            action = None
        presser = owner_of(interaction)
        try:
            await self.speak_their_language(interaction)
            if not callback_allows(custom_id, presser):
                log.info("discord: button refused: bound to someone else")
                await interaction.response.send_message(texts.not_your_button(), ephemeral=True)
                return
            if action in (Action.VARIANTS, Action.CANCEL):
                await interaction.response.defer()  # these update their own message
            else:
                await interaction.response.defer(thinking=True, ephemeral=True)
            if action in (Action.MORE, Action.PICK):
                # These enqueue a job: settle the deferred message first (module docstring).
                await interaction.edit_original_response(content=texts.on_it())
            route = route_of(interaction)
            replies = await self.conversation.button(presser, custom_id, route_data=route.to_data())
            await self._answer(interaction, replies)
        except Exception as exc:  # a button must never fail silently for the user
            await self._handler_failed(interaction, exc)

    async def speak_their_language(self, interaction: discord.Interaction) -> Owner:
        """The rest of this interaction (its own task) speaks the user's language: their
        /language choice, else their Discord client's locale. Returns who they are."""
        sender = owner_of(interaction)
        await self.conversation.use_language(sender, interaction.locale.value)
        return sender

    async def _on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        cause = error.__cause__ or error
        if isinstance(error, app_commands.CommandInvokeError):
            cause = error.original
        await self._handler_failed(interaction, cause)

    async def _handler_failed(self, interaction: discord.Interaction, exc: BaseException) -> None:
        self.health.handler_errors += 1
        text = error_reply(exc).text
        if isinstance(exc, AvatarbotError | RedisConnectionError | RedisTimeoutError):
            log.warning("discord: %s while handling an interaction", type(exc).__name__)
        else:
            detail = describe(exc) if isinstance(exc, discord.HTTPException) else repr(exc)
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
            log.warning("discord: attachment download failed (%s)", describe(exc))
            return None

    async def _answer(self, interaction: discord.Interaction, replies: Sequence[Reply]) -> None:
        """The first reply edits the (deferred) original response; the rest follow up.
        Every button goes to the user who interacted, bound to them."""
        messages = to_outgoing(bind(replies, owner_of(interaction)))
        if not messages:
            await interaction.edit_original_response(content=texts.answered(), view=None)
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
        """Send a job's outcome (the DeliveryPump callback); see `results`."""
        await self.results.deliver(delivery, replies)

    async def update_status(self, job: Job, reply: Queued) -> None:
        """Edit the job's ephemeral queue message (the StatusTracker callback)."""
        await self.results.update_status(job, reply)
