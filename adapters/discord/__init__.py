"""Discord adapter (discord.py): `DiscordAdapter` is the one entry point."""

from adapters.discord.adapter import DiscordAdapter

__all__ = ["DiscordAdapter"]
