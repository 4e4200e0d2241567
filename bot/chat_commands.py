"""The chat commands, declared once: what each adapter registers, lists and describes.

`Conversation.text` answers each of these names; Telegram registers them all as
handlers and puts the `in_menu` ones in its command menu; Discord offers the ones it has
as slash commands, with the same summaries; /help lists the `in_menu` ones. Summaries
are user-facing text: they live in `bot.platform_texts` and come in the current
language.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot import platform_texts


@dataclass(frozen=True)
class ChatCommand:
    name: str
    """Without the slash; lowercase letters only (fits every platform, and the same in every
    language: the bot's messages name its commands)."""
    describe: Callable[[], str]
    """Its summary in the current language (`bot.platform_texts`): one short line (Discord
    allows 100 characters, Telegram's menu 256)."""
    in_menu: bool = True
    """Listed in command menus and /help (/start is only where a chat begins)."""

    @property
    def summary(self) -> str:
        """The summary in the current language."""
        return self.describe()


CHAT_COMMANDS: tuple[ChatCommand, ...] = (
    ChatCommand("avatar", platform_texts.command_avatar),
    ChatCommand("styles", platform_texts.command_styles),
    ChatCommand("cancel", platform_texts.command_cancel),
    ChatCommand("verify", platform_texts.command_verify),
    ChatCommand("forgetme", platform_texts.command_forgetme),
    ChatCommand("language", platform_texts.command_language),
    ChatCommand("help", platform_texts.command_help),
    ChatCommand("start", platform_texts.command_start, in_menu=False),
)

COMMAND_NAMES: tuple[str, ...] = tuple(c.name for c in CHAT_COMMANDS)
MENU: tuple[ChatCommand, ...] = tuple(c for c in CHAT_COMMANDS if c.in_menu)


def command(name: str) -> ChatCommand:
    """The command called `name`; KeyError for any other name."""
    for entry in CHAT_COMMANDS:
        if entry.name == name:
            return entry
    raise KeyError(name)
