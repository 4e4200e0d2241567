"""Replies as Discord messages: text, buttons and files fitted to an upload limit.

`to_outgoing` turns replies into the messages to send (consecutive original files share
one message); `prepare` fits a message's images into an upload limit (JPEG, then fewer
variants, with a note; originals are never re-encoded) and builds its buttons.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from adapters.discord.buttons import MAX_ROWS, ROW_WIDTH, make_view
from adapters.discord.uploads import fit_images
from bot import texts
from bot.replies import (
    Action,
    Avatar,
    AvatarImage,
    Button,
    Failure,
    OriginalFile,
    Queued,
    Reply,
    StylePicker,
    Text,
)

log = logging.getLogger(__name__)

#: Discord's limits: message text, files per message.
MAX_CONTENT = 2000
MAX_FILES = 10


@dataclass(frozen=True)
class Outgoing:
    """One Discord message to send, before files are fitted to an upload limit."""

    content: str
    buttons: tuple[Button, ...] = ()
    images: tuple[AvatarImage, ...] = ()
    stem: str = "avatar"
    public: bool = False
    """Results are public in the channel (others can see, only the owner can press);
    everything else answering an interaction is ephemeral."""
    originals: bool = False
    """Labelled original files: never re-encoded (that would strip the C2PA manifest)."""


def to_outgoing(replies: Sequence[Reply]) -> list[Outgoing]:
    """The messages for `replies`; consecutive original files share one message."""
    out: list[Outgoing] = []
    originals: list[OriginalFile] = []
    for reply in replies:
        if isinstance(reply, OriginalFile):
            originals.append(reply)
            continue
        if originals:
            out.append(_originals(originals))
            originals = []
        out.append(_message(reply))
    if originals:
        out.append(_originals(originals))
    return out


def _message(reply: Text | Failure | Queued | StylePicker | Avatar) -> Outgoing:
    if isinstance(reply, StylePicker):
        buttons = reply.style_buttons[: ROW_WIDTH * (MAX_ROWS - 1)]
        return Outgoing(reply.text, (*buttons, *reply.variant_buttons))
    if isinstance(reply, Avatar):
        stem = f"avatar-{reply.style_id}-{reply.job_id}"
        return Outgoing(reply.caption, reply.buttons, reply.images, stem, public=True)
    return Outgoing(reply.text, reply.buttons)


def _originals(originals: Sequence[OriginalFile]) -> Outgoing:
    first = originals[0]
    return Outgoing(
        content=first.caption or first.filename,
        images=tuple(o.image for o in originals),
        stem=f"avatar-original-{first.job_id}",
        originals=True,
    )


@dataclass
class Prepared:
    """An Outgoing with its files fitted to a limit; fresh `discord.File`s per send."""

    content: str
    uploads: list[tuple[str, bytes]]
    view: discord.ui.View | None

    def files(self) -> list[discord.File]:
        return [discord.File(io.BytesIO(data), filename=name) for name, data in self.uploads]


def prepare(message: Outgoing, limit: int, prefix: str = "") -> Prepared:
    content = message.content
    uploads: list[tuple[str, bytes]] = []
    if message.images:
        images = message.images[:MAX_FILES]
        fitted = fit_images(images, limit, message.stem, reencode=not message.originals)
        uploads = [(u.filename, u.data) for u in fitted.uploads]
        if fitted.dropped:
            original_button = any(b.action is Action.ORIGINAL for b in message.buttons)
            content += "\n" + texts.left_out(fitted.dropped, original_button=original_button)
            log.info("discord: %d variant(s) left out to fit %d bytes", fitted.dropped, limit)
    if prefix:
        content = f"{prefix} {content}"
    return Prepared(content[:MAX_CONTENT], uploads, make_view(message.buttons))
