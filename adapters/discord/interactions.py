"""Who an interaction is from (`Owner`) and where its answers go (`DiscordRoute`)."""

from __future__ import annotations

import discord

from adapters.discord.route import DiscordRoute
from bot.jobs import Owner

PLATFORM = "discord"


def owner_of(interaction: discord.Interaction) -> Owner:
    """The user, the channel (their id in a DM) and the server (`space`: the access
    policy's `discord-guild:ID` scope; '' in a DM)."""
    chat = interaction.channel_id or interaction.user.id
    guild = interaction.guild_id
    return Owner(
        platform=PLATFORM,
        user_id=str(interaction.user.id),
        chat_id=str(chat),
        space=str(guild) if guild else "",
    )


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
