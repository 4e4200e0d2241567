"""The admin commands and /group on Telegram, and who administers a group.

- The admin commands of `bot.admin_commands` (/stats, /ban telegram:42, /pause Back at
  six, ...) and /group get their own handler, with the whole message text. In a private
  chat they go to `Conversation.text` like any command: an admin of the bot gets the
  answer, anyone else exactly the reply to an unknown command. In a group the bot
  answers them only for whoever may use them (an admin of the bot; /group also a group
  admin); anyone else's are what any unknown command is in a group: not for this bot,
  left unanswered (a group's moderation bot may well have a /ban of its own).
- Who administers a group is Telegram's answer to `getChatAdministrators`, asked by the
  core (`bot.group_admins`, which caches it) when someone sends /group there. A private
  chat has no administrators: nothing is asked. A `chat_member` update that promotes or
  demotes someone drops the cached answer (Telegram sends those to a bot that is an
  administrator of the group); otherwise it expires after a few minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from telegram import ChatMember, Update
from telegram.ext import BaseHandler, CallbackContext, ChatMemberHandler, CommandHandler, filters

from adapters.telegram.target import PLATFORM, owner, target_of_message
from bot.admin_commands import USAGE, clipped
from bot.replies import Reply, bind

if TYPE_CHECKING:
    from telegram.ext import ExtBot

    from adapters.telegram.renderer import Renderer
    from bot.conversation import Conversation
    from bot.jobs import Owner

log = logging.getLogger(__name__)

#: The admin commands and /group, as Telegram command names.
ADMIN_COMMAND_NAMES = tuple(sorted(USAGE))
#: Telegram takes 4096 characters per message; an answer is cut at a line's end below it.
MAX_TEXT = 4000
_ADMIN_STATUSES = frozenset({ChatMember.ADMINISTRATOR, ChatMember.OWNER})

_Context = CallbackContext[Any, Any, Any, Any]


class TelegramAdmins:
    """The handlers for admin commands and admin changes, and the group admin lookup."""

    def __init__(self, bot: ExtBot[None], conversation: Conversation, renderer: Renderer) -> None:
        self.bot = bot
        self.conversation = conversation
        self.renderer = renderer
        conversation.on_chat_admins(PLATFORM, self.lookup)

    def handlers(self) -> list[BaseHandler[Update, _Context, None]]:
        """To add before the handler of plain text (which would take them otherwise)."""
        return [
            CommandHandler(
                list(ADMIN_COMMAND_NAMES), self.on_command, filters=filters.UpdateType.MESSAGE
            ),
            ChatMemberHandler(self.on_chat_member, ChatMemberHandler.CHAT_MEMBER),
        ]

    async def lookup(self, chat_id: str) -> list[str]:
        """The user ids of a chat's administrators (`getChatAdministrators`); [] for a
        private chat (positive ids), which has none."""
        chat = int(chat_id)
        if chat > 0:
            return []
        members = await self.bot.get_chat_administrators(chat)
        return [str(member.user.id) for member in members]

    async def on_command(self, update: Update, context: _Context) -> None:
        message = update.effective_message
        user = update.effective_user
        if message is None or message.text is None or user is None:
            return
        target = target_of_message(message)
        sender = owner(user.id, target.chat_id)
        if target.is_group:
            replies = await self._in_group(sender, message.text)
            if replies is None:
                return  # not theirs to use: as any command not for this bot
        else:
            replies = await self.conversation.text(sender, message.text)
        await self.renderer.render(target, bind(clipped(replies, MAX_TEXT), sender))

    async def _in_group(self, sender: Owner, text: str) -> Sequence[Reply] | None:
        commands = self.conversation.admin
        if commands is None:
            return None
        words = text.split()
        name = words[0].lstrip("/").split("@", 1)[0].lower()
        return await commands.handle(sender, name, words[1:])

    async def on_chat_member(self, update: Update, context: _Context) -> None:
        """Someone became or stopped being an administrator: ask Telegram again."""
        change = update.chat_member
        commands = self.conversation.admin
        if change is None or commands is None:
            return
        was = change.old_chat_member.status in _ADMIN_STATUSES
        is_now = change.new_chat_member.status in _ADMIN_STATUSES
        if was != is_now:
            await commands.group_admins.forget(PLATFORM, str(change.chat.id))
            log.info("telegram: the admins of a group changed; asking again when needed")
