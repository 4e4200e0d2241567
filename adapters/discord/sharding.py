"""Discord sharding: which shards a bot process runs, the client that runs them, and what
the gateway's refusals about shards mean, in the operator's words.

Discord splits a bot's servers (guilds) over shards: guild `g` lives on shard
`(g >> 22) % shard_count`, DMs arrive on shard 0, and one shard may hold at most 2,500
guilds (beyond that the gateway closes with 4011, "sharding required").

- By default a bot process runs every shard, as many as Discord recommends
  (`GET /gateway/bot`), in one `discord.AutoShardedClient`.
- `AVATARBOT_DISCORD_SHARD_COUNT` fixes the total and `AVATARBOT_DISCORD_SHARD_IDS` the
  shards this process runs, so several processes (or machines) split a large bot: each
  with the same count, together covering 0 to count - 1.
- Any process delivers any result. Results, status edits and fallbacks go out over REST
  (the interaction's webhook, a DM, a channel post), all named by the job's route
  (`adapters.discord.route`), never over a gateway shard; the delivery pump that the bot
  processes share needs no shard affinity.
- Commands are synced by the process that runs shard 0: one sync per deployment start.
- IDENTIFY pace: Discord allows `max_concurrency` IDENTIFYs per 5 s, shards bucketed by
  `shard_id % max_concurrency`. discord.py waits 5 s before every shard after the first;
  this client waits only where a bucket requires it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot.errors import AvatarbotError

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

#: Discord allows `max_concurrency` IDENTIFYs per bucket in this window.
IDENTIFY_WINDOW_S = 5.0
#: Gateway close codes about shards.
INVALID_SHARD = 4010
SHARDING_REQUIRED = 4011
COUNT_SETTING = "AVATARBOT_DISCORD_SHARD_COUNT"
IDS_SETTING = "AVATARBOT_DISCORD_SHARD_IDS"


class ShardingError(AvatarbotError):
    """Discord refused this process's shards; the message names the setting to change."""


@dataclass(frozen=True)
class ShardPlan:
    """The shards one bot process runs: `count` None means Discord's recommendation,
    `ids` None means all of them."""

    count: int | None = None
    ids: tuple[int, ...] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ShardPlan:
        return cls(settings.discord_shard_count, settings.discord_shard_ids)

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.count is not None:
            options["shard_count"] = self.count
        if self.ids is not None:
            options["shard_ids"] = list(self.ids)
        return options

    @property
    def syncs_commands(self) -> bool:
        """Whether this process syncs the slash commands (it runs shard 0)."""
        return self.ids is None or 0 in self.ids

    def describe(self, count: int | None) -> str:
        total = count if count is not None else self.count
        if self.ids is None:
            return f"{total} shard(s)"
        return f"shard(s) {','.join(map(str, self.ids))} of {total}"


def explain_close(code: int, plan: ShardPlan, count: int | None) -> str | None:
    """One line for a gateway close about shards, naming the setting to change; None
    for any other close."""
    if code == SHARDING_REQUIRED:
        if plan.count is None:
            return (
                f"Discord closed the gateway with {code} (sharding required): the bot has "
                f"outgrown the {count} shard(s) Discord recommended when it started; restart "
                f"it to use the new recommendation, or set {COUNT_SETTING} (a shard holds "
                "at most 2,500 servers)"
            )
        also = f" (and {IDS_SETTING} in every bot process)" if plan.ids is not None else ""
        return (
            f"Discord closed the gateway with {code} (sharding required): {count} shard(s) "
            f"are too few for the servers this bot is in (a shard holds at most 2,500); "
            f"raise {COUNT_SETTING}{also}, or unset it to use the count Discord recommends"
        )
    if code == INVALID_SHARD:
        return (
            f"Discord closed the gateway with {code} (invalid shard): check {IDS_SETTING} "
            f"and {COUNT_SETTING} (shards 0 to count - 1, the same count in every bot process)"
        )
    return None


class ShardedClient(discord.AutoShardedClient):
    """`AutoShardedClient` for a `ShardPlan`: IDENTIFYs paced by Discord's
    `max_concurrency`, and sharding refusals raised as `ShardingError` with one line
    that says what to change (logged here too when they come after the start, when no
    caller is waiting to report them)."""

    def __init__(self, *, plan: ShardPlan, intents: discord.Intents, **options: Any) -> None:
        super().__init__(intents=intents, **plan.client_options(), **options)
        self.plan = plan
        self._identified: dict[int, float] = {}
        self._max_concurrency: int | None = None
        self._started = False

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        concurrency = await self._concurrency()
        bucket = (shard_id or 0) % concurrency
        last = self._identified.get(bucket)
        if last is not None:
            wait = last + IDENTIFY_WINDOW_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self._identified[bucket] = time.monotonic()

    async def _concurrency(self) -> int:
        if self._max_concurrency is None:
            self._max_concurrency = 1
            try:
                limits = await self.fetch_session_start_limits()
            except (discord.HTTPException, discord.GatewayNotFound) as exc:
                log.warning("discord: session start limits unknown (%s)", type(exc).__name__)
                return 1
            self._max_concurrency = max(1, limits.max_concurrency)
            log.info(
                "discord: running %s; %d session start(s) left today, %d at once",
                self.plan.describe(self.shard_count),
                limits.remaining,
                self._max_concurrency,
            )
        return self._max_concurrency

    async def connect(self, *, reconnect: bool = True) -> None:
        try:
            await super().connect(reconnect=reconnect)
        except discord.ConnectionClosed as exc:
            text = explain_close(exc.code, self.plan, self.shard_count)
            if text is None:
                raise
            if self._started:
                log.error("discord: %s", text)
            raise ShardingError(text, user_message=text) from None

    async def on_shard_ready(self, shard_id: int) -> None:
        self._started = True
