"""Where the Telegram adapter's replies go: a chat, perhaps a message to reply to, a forum
topic, a message to edit in place; and who asked (the `Owner` of a Telegram user).

A job keeps its target in `Route.data` (flat strings), so its result and queue messages
find their way back after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import MaybeInaccessibleMessage, Message
from telegram.constants import ChatType

from bot.jobs import Job, Owner

PLATFORM = "telegram"


@dataclass
class Target:
    """Where replies go and how: the chat, a message to reply to, a message to edit."""

    chat_id: int
    is_group: bool = False
    reply_to: int | None = None
    thread_id: int | None = None
    edit: Message | None = None
    """The picker/queue message a button was pressed on; a new picker or a queue
    message replaces it in place."""
    edited: Message | None = None
    """The message `edit` became, once it was edited."""
    ask_reply: bool = False
    """Ask for the answer as a reply (groups: so the selfie reaches the bot)."""

    def route_data(self) -> dict[str, str]:
        """What a job enqueued from here keeps, to come back here."""
        data = {"chat_id": str(self.chat_id)}
        if self.reply_to is not None:
            data["reply_to"] = str(self.reply_to)
        if self.thread_id is not None:
            data["thread_id"] = str(self.thread_id)
        return data


def owner(user_id: int, chat_id: int) -> Owner:
    return Owner(platform=PLATFORM, user_id=str(user_id), chat_id=str(chat_id))


def target_of_message(message: Message) -> Target:
    """Answers to a user's message: in groups, as replies to it."""
    is_group = message.chat.type != ChatType.PRIVATE
    return Target(
        chat_id=message.chat.id,
        is_group=is_group,
        reply_to=message.message_id if is_group else None,
        thread_id=message.message_thread_id if message.is_topic_message else None,
    )


def target_of_button(message: MaybeInaccessibleMessage) -> Target:
    """Answers to a press on one of our messages: in groups, replying to what it replied
    to (the requester's message)."""
    target = Target(chat_id=message.chat.id, is_group=message.chat.type != ChatType.PRIVATE)
    if not isinstance(message, Message):
        return target
    if message.is_topic_message:
        target.thread_id = message.message_thread_id
    if target.is_group:
        replied = message.reply_to_message
        target.reply_to = replied.message_id if replied is not None else None
    return target


def target_of_job(job: Job) -> Target:
    """Where a job's result and queue messages go (from its route data)."""
    data = job.route.data
    chat_id = int(data.get("chat_id", job.owner.chat_id))
    reply_to = data.get("reply_to")
    thread_id = data.get("thread_id")
    return Target(
        chat_id=chat_id,
        is_group=chat_id < 0,
        reply_to=int(reply_to) if reply_to else None,
        thread_id=int(thread_id) if thread_id else None,
    )


def requester_of(message: object) -> int | None:
    """Who a keyboard in a group was for, from the message it replies to (keyboards sent
    before buttons were bound to their recipient carry no other sign of it)."""
    if not isinstance(message, Message) or message.chat.type == ChatType.PRIVATE:
        return None
    replied = message.reply_to_message
    if replied is None or replied.from_user is None:
        return None
    return replied.from_user.id
