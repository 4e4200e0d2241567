"""The discord.py client: no intents beyond guilds, no caches; events go to the adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from adapters.discord.sharding import ShardedClient, ShardPlan

if TYPE_CHECKING:
    from adapters.discord.adapter import DiscordAdapter


class AvatarClient(ShardedClient):
    """discord.py client that hands its events to the adapter."""

    def __init__(self, adapter: DiscordAdapter, *, plan: ShardPlan, **options: Any) -> None:
        # We never use voice: skip discord.py's "PyNaCl/davey is not installed" warnings.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True  # interactions need no intents; guilds keeps the cache sane
        super().__init__(
            plan=plan,
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
