"""Getting a job's outcome and queue status to its Discord user.

- While the interaction token lives (15 minutes, less a margin), the outcome goes as
  followups of the interaction, and the ephemeral queue message is edited as the job
  moves and retired once the outcome is out.
- Once the token is dead (or Discord says so), the outcome goes to the user by DM, or,
  when their DMs are closed, to the channel with a mention of them only. When neither
  works the result is logged as undeliverable (it stays in Redis for `result_ttl_s`).
- Each message of an outcome is a part recorded in `bot.sent_parts.SentParts` once sent,
  whichever way it went, so a retried delivery (transient errors raise, and the pump
  retries) sends only the messages the user does not have yet.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import discord

from adapters.discord.buttons import make_view
from adapters.discord.client import AvatarClient
from adapters.discord.http_errors import (
    UNKNOWN_MESSAGE,
    DiscordDeliveryError,
    describe,
    token_dead,
)
from adapters.discord.outgoing import Outgoing, Prepared, prepare, to_outgoing
from adapters.discord.route import DEFAULT_UPLOAD_LIMIT, DiscordRoute, RouteDataError
from bot import texts
from bot.replies import Avatar, Queued, Reply, bind, owner_tag
from bot.sent_parts import Part, SentParts

if TYPE_CHECKING:
    from bot.jobs import Job
    from bot.queue import Delivery

log = logging.getLogger(__name__)

#: Discord's alias for an interaction's original response in webhook message routes.
#: discord.py types the message id as int but puts it into the path as given.
ORIGINAL_RESPONSE = cast(int, "@original")

Send = Callable[[Prepared], Awaitable[None]]


@dataclass
class Health:
    """Counters for logs, metrics and tests."""

    fallbacks: int = 0
    undeliverable: int = 0
    handler_errors: int = 0
    logged: set[str] = field(default_factory=set)


class Results:
    def __init__(
        self,
        client: Callable[[], AvatarClient],
        sent_parts: SentParts,
        health: Health,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.sent_parts = sent_parts
        self.health = health
        self.clock = clock

    async def deliver(self, delivery: Delivery, replies: Sequence[Reply]) -> None:
        """Send a job's outcome (the DeliveryPump callback): as followups while the
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
        messages = to_outgoing(bind(replies, job.owner))
        if not messages:  # e.g. cancelled: the user was answered when they cancelled
            return
        client = self._client()
        if route.token_alive(self.clock()):
            webhook = _webhook(client, route)
            try:
                send: Send = functools.partial(_followup, webhook)
                await self._send(job, messages, send, limit=route.upload_limit)
            except discord.HTTPException as exc:
                if not token_dead(exc):
                    raise DiscordDeliveryError(
                        f"followup for job {job.id} failed ({describe(exc)})"
                    ) from exc
                log.info("discord: token of job %s no longer works; using the fallback", job.id)
            else:
                with_avatar = any(isinstance(r, Avatar) for r in replies)
                await _retire_status(
                    webhook, job, texts.result_ready() if with_avatar else texts.see_below()
                )
                return
        await self._fallback(client, job, route, messages)

    async def _send(
        self,
        job: Job,
        messages: Sequence[Outgoing],
        send: Send,
        *,
        limit: int,
        mention: int | None = None,
    ) -> None:
        """Each message the user does not have yet, fitted to `limit`, in order."""

        async def one(message: Outgoing) -> None:
            prefix = f"<@{mention}>" if mention is not None else ""
            await send(prepare(message, limit, prefix=prefix))

        parts = [Part(str(i), functools.partial(one, m)) for i, m in enumerate(messages)]
        await self.sent_parts.send_once(job.id, parts)

    async def _fallback(
        self, client: AvatarClient, job: Job, route: DiscordRoute, messages: Sequence[Outgoing]
    ) -> None:
        sent = await self.sent_parts.sent(job.id)
        if all(str(i) in sent for i in range(len(messages))):
            return
        self.health.fallbacks += 1
        try:
            dm = await client.create_dm(discord.Object(id=route.user_id))
            to_dm: Send = functools.partial(_post, dm)
            await self._send(job, messages, to_dm, limit=DEFAULT_UPLOAD_LIMIT)
            log.info("discord: job %s delivered by DM (interaction expired)", job.id)
            return
        except discord.Forbidden as exc:
            log.info("discord: cannot DM the owner of job %s (%s)", job.id, describe(exc))
            dm_error: discord.HTTPException = exc
        except discord.HTTPException as exc:
            raise DiscordDeliveryError(f"DM for job {job.id} failed ({describe(exc)})") from exc
        if route.in_dm:  # the DM was the channel: nowhere else to go
            self._undeliverable(job, dm_error)
            return
        channel = client.get_partial_messageable(route.channel_id, guild_id=route.guild_id)
        to_channel: Send = functools.partial(_post, channel, mention=route.user_id)
        try:
            await self._send(
                job, messages, to_channel, limit=DEFAULT_UPLOAD_LIMIT, mention=route.user_id
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            self._undeliverable(job, exc)
            return
        except discord.HTTPException as exc:
            raise DiscordDeliveryError(
                f"channel post for job {job.id} failed ({describe(exc)})"
            ) from exc
        log.info("discord: job %s delivered to its channel with a mention", job.id)

    def _undeliverable(self, job: Job, exc: discord.HTTPException) -> None:
        self.health.undeliverable += 1
        log.warning(
            "discord: result of job %s is undeliverable (%s); it stays stored until it expires",
            job.id,
            describe(exc),
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
        webhook = _webhook(self._client(), route)
        bound = reply.bound_to(owner_tag(job.owner))
        try:
            await webhook.edit_message(
                ORIGINAL_RESPONSE, content=bound.text, view=make_view(bound.buttons)
            )
        except discord.HTTPException as exc:
            # A status edit is not worth a retry: the next change tries again, and the
            # result does not depend on it. Logged once per job.
            quiet = token_dead(exc) or exc.code == UNKNOWN_MESSAGE
            level = logging.INFO if quiet else logging.WARNING
            self._log_once(f"status:{job.id}", "status edit", exc, job, level=level)

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
        log.log(level, "discord: %s for job %s failed (%s)", what, job.id, describe(exc))


def _webhook(client: AvatarClient, route: DiscordRoute) -> discord.Webhook:
    return discord.Webhook.partial(route.application_id, route.token, client=client)


async def _followup(webhook: discord.Webhook, prepared: Prepared) -> None:
    await webhook.send(
        content=prepared.content,
        files=prepared.files(),
        view=prepared.view or discord.utils.MISSING,
        allowed_mentions=discord.AllowedMentions.none(),
        wait=True,
    )


async def _post(
    channel: discord.abc.Messageable, prepared: Prepared, *, mention: int | None = None
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


async def _retire_status(webhook: discord.Webhook, job: Job, text: str) -> None:
    """The ephemeral queue message has done its job: say so and drop its buttons."""
    try:
        await webhook.edit_message(ORIGINAL_RESPONSE, content=text, view=None)
    except discord.HTTPException as exc:
        log.debug("discord: status of job %s not retired (%s)", job.id, describe(exc))
