"""The chat commands, declared once: what each adapter registers, lists and describes.

`Conversation.text` answers each of these names; Telegram registers them all as
handlers and puts the `in_menu` ones in its command menu; Discord offers the ones it has
as slash commands, with the same summaries; /help lists the `in_menu` ones. Summaries
are user-facing text and live in `bot.texts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import texts


@dataclass(frozen=True)
class ChatCommand:
    name: str
    """Without the slash; lowercase letters only (fits every platform)."""
    summary: str
    """One short line (Discord allows 100 characters, Telegram's menu 256)."""
    in_menu: bool = True
    """Listed in command menus and /help (/start is only where a chat begins)."""


CHAT_COMMANDS: tuple[ChatCommand, ...] = (
    ChatCommand("avatar", texts.COMMAND_AVATAR),
    ChatCommand("styles", texts.COMMAND_STYLES),
    ChatCommand("cancel", texts.COMMAND_CANCEL),
    ChatCommand("verify", texts.COMMAND_VERIFY),
    ChatCommand("forgetme", texts.COMMAND_FORGETME),
    ChatCommand("help", texts.COMMAND_HELP),
    ChatCommand("start", texts.COMMAND_START, in_menu=False),
)

COMMAND_NAMES: tuple[str, ...] = tuple(c.name for c in CHAT_COMMANDS)
MENU: tuple[ChatCommand, ...] = tuple(c for c in CHAT_COMMANDS if c.in_menu)


def command(name: str) -> ChatCommand:
    """The command called `name`; KeyError for any other name."""
    for entry in CHAT_COMMANDS:
        if entry.name == name:
            return entry
    raise KeyError(name)
