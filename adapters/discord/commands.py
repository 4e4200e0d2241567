"""The slash commands, built from the core's command table (`bot.chat_commands`).

`/avatar selfie:<attachment> style:<choice> [variants:1-4]` (styles as choices, or
autocomplete past 25), `/styles`, `/forgetme`, `/verify image:<attachment>`,
`/language`; each described by its table summary, built in English and localised for
every language we speak by `translator`. Synced on start: globally (usable in servers
and DMs), or to one guild for development (instant). And `/admin`, for the bot's admins
(`admin_commands`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from adapters.discord.admin_commands import admin_group
from adapters.discord.http_errors import describe
from adapters.discord.translator import CatalogTranslator
from bot import i18n, platform_texts
from bot.chat_commands import command

if TYPE_CHECKING:
    from adapters.discord.adapter import DiscordAdapter
    from adapters.discord.client import AvatarClient

log = logging.getLogger(__name__)

#: Discord's limit on choices per option.
MAX_CHOICES = 25

SlashCommand = app_commands.Command[Any, ..., None]


async def sync(client: AvatarClient, adapter: DiscordAdapter, guild_id: int | None) -> None:
    """Register the slash commands and sync them (the client's setup hook)."""
    tree = client.tree
    guild = discord.Object(id=guild_id) if guild_id else None
    await tree.set_translator(CatalogTranslator(adapter.conversation.catalog))
    with i18n.use(i18n.SOURCE_LOCALE):  # the source texts; the translator does the rest
        slashes = slash_commands(adapter, global_scope=guild is None)
        admin = admin_group(adapter.on_admin, global_scope=guild is None)
    for slash in slashes:
        tree.add_command(slash, guild=guild)
    tree.add_command(admin, guild=guild)
    if not adapter.shards.syncs_commands:  # the process running shard 0 syncs
        return
    try:
        synced = await tree.sync(guild=guild)
    except discord.HTTPException as exc:
        # The commands registered by the last successful sync keep working.
        log.error("discord: command sync failed (%s)", describe(exc))
        return
    where = f"guild {guild_id}" if guild else "globally"
    log.info("discord: %d slash command(s) synced %s", len(synced), where)


def slash_commands(adapter: DiscordAdapter, *, global_scope: bool) -> list[SlashCommand]:
    async def styles(interaction: discord.Interaction) -> None:
        await adapter.on_styles(interaction)

    async def forgetme(interaction: discord.Interaction) -> None:
        await adapter.on_forget_me(interaction)

    async def language(interaction: discord.Interaction) -> None:
        await adapter.on_language(interaction)

    commands = [
        _slash("avatar", _avatar_callback(adapter)),
        _slash("styles", styles),
        _slash("forgetme", forgetme),
        _slash("verify", _verify_callback(adapter)),
        _slash("language", language),
    ]
    if global_scope:  # contexts only exist for global commands
        for slash in commands:
            slash.allowed_contexts = app_commands.AppCommandContext(
                guild=True, dm_channel=True, private_channel=True
            )
    return commands


def _slash(name: str, callback: Any) -> SlashCommand:
    return app_commands.Command(name=name, description=command(name).summary, callback=callback)


def _avatar_callback(adapter: DiscordAdapter) -> Any:
    @app_commands.describe(
        selfie=platform_texts.option_selfie(),
        style=platform_texts.option_style(),
        variants=platform_texts.option_variants(),
    )
    async def avatar(
        interaction: discord.Interaction,
        selfie: discord.Attachment,
        style: str,
        variants: app_commands.Range[int, 1, 4] = 1,
    ) -> None:
        await adapter.on_avatar(interaction, selfie, style, variants)

    catalog = adapter.conversation.catalog
    if len(catalog) <= MAX_CHOICES:
        choices = [app_commands.Choice(name=s.label[:100], value=s.id) for s in catalog]
        return app_commands.choices(style=choices)(avatar)

    async def complete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        await adapter.speak_their_language(interaction)
        wanted = current.strip().lower()
        return [
            app_commands.Choice(name=s.label[:100], value=s.id)
            for s in catalog
            if not wanted or any(wanted in name for name in s.names())
        ][:MAX_CHOICES]

    return app_commands.autocomplete(style=complete)(avatar)


def _verify_callback(adapter: DiscordAdapter) -> Any:
    @app_commands.describe(image=platform_texts.option_image())
    async def verify(interaction: discord.Interaction, image: discord.Attachment) -> None:
        await adapter.on_verify(interaction, image)

    return verify
