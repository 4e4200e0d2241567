"""Who may run an application command, as Discord decides it before a bot hears of it.

The fake Discord asks `refusal` before it dispatches a slash command; a command Discord
would not offer the user is never dispatched (`CommandUnavailable`), as on Discord, where
the client does not even list it. Discord's rules, as far as a bot can see them:

- `contexts` (0 a server, 1 the bot's DM, 2 a private channel): where the command exists;
  none listed means the defaults of the day (servers and the bot's DM).
- In a server, a command permission override the server set for the member (Server
  Settings > Integrations) decides; otherwise the member needs every permission bit in
  the command's `default_member_permissions` ("0": nobody), and Administrator passes any.
- In a DM there is no member: `default_member_permissions` does not apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ADMINISTRATOR = 1 << 3
GUILD, BOT_DM = 0, 1
#: What the fake's members may do by default: a regular member (no Administrator).
MEMBER_PERMISSIONS = 2248473465835073


class CommandUnavailable(AssertionError):
    """Discord would not let this user run this command here (it is never dispatched)."""


def refusal(
    command: Mapping[str, Any], *, dm: bool, permissions: int, override: bool | None
) -> str | None:
    """Why `command` cannot be run (None: it can): in a DM or a server, by a member with
    `permissions`, with the server's `override` for them (None: none set)."""
    name = command["name"]
    contexts = command.get("contexts")
    if contexts is not None and (BOT_DM if dm else GUILD) not in contexts:
        return f"/{name} does not exist in this context (dm: {dm})"
    if dm:  # no member; the old flag still counts for global commands
        no_dms = command.get("dm_permission") is False and command.get("guild_id") is None
        return f"/{name} is not available in DMs" if no_dms else None
    if override is not None:
        return None if override else f"/{name}: the server's override denies it"
    required = command.get("default_member_permissions")
    if required is None:
        return None
    needed = int(required)
    if permissions & ADMINISTRATOR or (needed and permissions & needed == needed):
        return None
    return f"/{name} needs permissions {needed}, the member has {permissions}"
