"""The admin commands on Discord: one `/admin` slash command whose subcommands are the
core's admin commands (`bot.admin_commands`): stats, ban, unban, quota, pause, resume,
allow, deny, mode and log.

Discord decides who has `/admin`: it is registered with `default_member_permissions` =
Administrator, so in a server only its administrators see and run it, unless the server
changes that in Server Settings > Integrations (per role, member or channel). Those are
Discord's own command permissions; nothing here re-implements them. `/admin` exists in
servers only: in DMs there are no member permissions to apply.

Whoever Discord lets through must still be an admin of the bot (`AVATARBOT_ADMINS`,
`discord:<user id>`): each subcommand becomes the chat command line it stands for
(`/admin ban user:<@1>` -> `/ban discord:1`) given to `Conversation.text`, which answers
anyone else exactly as it answers an unknown command. Answers are ephemeral.

A user is `platform:user_id`; on Discord a mention (`<@123>`) or a bare user id means
`discord:123`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import discord
from discord import app_commands

from bot import platform_texts
from bot.admin_commands import MAX_LOG

Run = Callable[[discord.Interaction, str], Awaitable[None]]
"""Answer an interaction with what the conversation says to a command line."""

ADMINISTRATOR = discord.Permissions(administrator=True)

_MENTION = re.compile(r"^<@!?(\d{1,20})>$")


def admin_group(run: Run, *, global_scope: bool) -> app_commands.Group:
    """`/admin` and its subcommands; each runs its command line through `run`. Build it
    in the source language: discord.py's translator localises the descriptions."""
    described = platform_texts.admin_descriptions()
    group = app_commands.Group(
        name="admin",
        description=described["admin"],
        default_permissions=ADMINISTRATOR,
        guild_only=True,
        # Contexts only exist for global commands (a guild's own are in that guild).
        allowed_contexts=app_commands.AppCommandContext(guild=True) if global_scope else None,
    )
    options = platform_texts.admin_options()
    for name, callback in [
        *_looking(run, options),
        *_users(run, options),
        *_switches(run, options),
    ]:
        group.add_command(
            app_commands.Command(
                name=name, description=described[name], callback=callback, parent=group
            )
        )
    return group


def mention(value: str) -> str:
    """A Discord mention as the user it names (`<@123>` -> `discord:123`)."""
    text = value.strip()
    match = _MENTION.match(text)
    return f"discord:{match.group(1)}" if match else text


def user_of(value: str) -> str:
    """A user option: `platform:user_id`, a mention or a bare Discord user id."""
    text = mention(value)
    return f"discord:{text}" if text.isdigit() else text


def line(command: str, *words: str | None) -> str:
    """The chat command line: `/command` and the words given (None: left out)."""
    return " ".join([f"/{command}", *(w for w in words if w)])


_Entry = tuple[str, Any]
_Options = dict[str, str]


def _looking(run: Run, options: _Options) -> list[_Entry]:
    async def stats(interaction: discord.Interaction) -> None:
        await run(interaction, line("stats"))

    @app_commands.describe(count=options["count"])
    async def log(
        interaction: discord.Interaction, count: app_commands.Range[int, 1, MAX_LOG] | None = None
    ) -> None:
        await run(interaction, line("log", None if count is None else str(count)))

    return [("stats", stats), ("log", log)]


def _users(run: Run, options: _Options) -> list[_Entry]:
    @app_commands.describe(user=options["user"])
    async def ban(interaction: discord.Interaction, user: str) -> None:
        await run(interaction, line("ban", user_of(user)))

    @app_commands.describe(user=options["user"])
    async def unban(interaction: discord.Interaction, user: str) -> None:
        await run(interaction, line("unban", user_of(user)))

    @app_commands.describe(user=options["quota_user"], limit=options["limit"])
    async def quota(interaction: discord.Interaction, user: str, limit: str | None = None) -> None:
        await run(interaction, line("quota", _quota_user(user), limit))

    return [("ban", ban), ("unban", unban), ("quota", quota)]


def _switches(run: Run, options: _Options) -> list[_Entry]:
    @app_commands.describe(message=options["message"])
    async def pause(interaction: discord.Interaction, message: str | None = None) -> None:
        await run(interaction, line("pause", message))

    async def resume(interaction: discord.Interaction) -> None:
        await run(interaction, line("resume"))

    @app_commands.describe(mode=options["mode"])
    async def mode(
        interaction: discord.Interaction, mode: Literal["open", "restricted"] | None = None
    ) -> None:
        await run(interaction, line("mode", mode))

    return [
        ("pause", pause),
        ("resume", resume),
        ("mode", mode),
        ("allow", _list_callback(run, "allow", options)),
        ("deny", _list_callback(run, "deny", options)),
    ]


def _list_callback(run: Run, command: str, options: _Options) -> Any:
    @app_commands.describe(scope=options["scope"], remove=options["remove"])
    async def edit_list(
        interaction: discord.Interaction, scope: str | None = None, remove: bool = False
    ) -> None:
        words = ("remove" if remove else None, mention(scope) if scope else None)
        await run(interaction, line(command, *words))

    return edit_list


def _quota_user(value: str) -> str:
    return "default" if value.strip().lower() == "default" else user_of(value)
