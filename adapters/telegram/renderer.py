"""Replies as Bot API calls: what the Telegram adapter sends for each `Reply`.

- Text and failures: a message (with an inline keyboard when the reply has buttons), or
  an edit of the message a button was pressed on.
- The style picker: an album of style previews, sent once per chat and re-sent by file
  id (cached in Redis), then one message with style buttons and a 1-4 variants row.
- The queue message: one message per job, remembered in `TelegramState` so that status
  updates edit it and the result retires it.
- Avatars: one photo with the buttons, or an album plus a message with the buttons;
  images Telegram refuses as photos go as files. Originals always go as files.

`steps` splits a reply into its Bot API calls, so a delivery can record each as sent.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from telegram.error import BadRequest, TelegramError

from adapters.telegram.keyboards import keyboard, picker_keyboard
from adapters.telegram.state import MessageRef, TelegramState
from adapters.telegram.target import Target
from bot import texts
from bot.replies import (
    Avatar,
    Button,
    Failure,
    OriginalFile,
    Queued,
    Reply,
    StyleOption,
    StylePicker,
    Text,
)

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[None]]


class Renderer:
    def __init__(self, bot: Bot, state: TelegramState) -> None:
        self.bot = bot
        self.state = state
        self._preview_blobs: dict[Path, bytes] = {}

    async def render(self, target: Target, replies: Sequence[Reply]) -> None:
        for reply in replies:
            for step in self.steps(target, reply):
                await step()

    def steps(self, target: Target, reply: Reply) -> list[Step]:
        """The Bot API calls that show one reply, in order."""
        if isinstance(reply, Text | Failure):
            return [functools.partial(self._send_text, target, reply.text, reply.buttons)]
        if isinstance(reply, StylePicker):
            return [functools.partial(self._send_picker, target, reply)]
        if isinstance(reply, Queued):
            return [functools.partial(self.send_queued, target, reply)]
        if isinstance(reply, Avatar):
            if len(reply.images) == 1:
                return [functools.partial(self._send_avatar_photo, target, reply)]
            return [
                functools.partial(self._send_avatar_album, target, reply),
                functools.partial(self._send_avatar_buttons, target, reply),
            ]
        return [functools.partial(self._send_original, target, reply)]

    async def send_queued(self, target: Target, reply: Queued) -> None:
        """The job's queue message, remembered so status updates can edit it."""
        markup = keyboard(reply.buttons)
        message = await self._edit_in_place(target, reply.text, markup)
        if message is None:
            message = await self.bot.send_message(
                target.chat_id, reply.text, reply_markup=markup, **_common(target)
            )
        await self.state.set_status_message(
            reply.job_id, MessageRef(message.chat.id, message.message_id)
        )
        if await self.state.outcome_started(reply.job_id):
            await self.retire_status_message(reply.job_id)  # the result overtook it

    async def retire_status_message(self, job_id: str) -> None:
        """The queue message has done its job once the outcome arrives: delete it."""
        ref = await self.state.pop_status_message(job_id)
        if ref is None:
            return
        try:
            await self.bot.delete_message(ref.chat_id, ref.message_id)
        except TelegramError:
            with contextlib.suppress(TelegramError):  # too old to delete: drop its buttons
                await self.bot.edit_message_reply_markup(ref.chat_id, ref.message_id)

    # ------------------------------------------------------------------ text and pickers

    async def _send_text(self, target: Target, text: str, buttons: Sequence[Button]) -> None:
        inline = keyboard(buttons)
        if await self._edit_in_place(target, text, inline) is not None:
            return
        markup: InlineKeyboardMarkup | ForceReply | None = inline
        if markup is None and target.ask_reply:
            markup = ForceReply(selective=True, input_field_placeholder=texts.selfie_placeholder())
        await self.bot.send_message(target.chat_id, text, reply_markup=markup, **_common(target))

    async def _edit_in_place(
        self, target: Target, text: str, markup: InlineKeyboardMarkup | None
    ) -> Message | None:
        """Turn the message a button was pressed on into this one; None if it can't be."""
        message = target.edit
        if message is None:
            return None
        target.edit = None
        try:
            edited = await self.bot.edit_message_text(
                text, chat_id=message.chat.id, message_id=message.message_id, reply_markup=markup
            )
        except BadRequest as exc:
            if "not modified" not in exc.message:
                return None
            edited = message
        target.edited = edited if isinstance(edited, Message) else message
        return target.edited

    async def _send_picker(self, target: Target, picker: StylePicker) -> None:
        markup = picker_keyboard(picker)
        if await self._edit_in_place(target, picker.text, markup) is not None:
            return
        await self._send_previews(target, picker)
        await self.bot.send_message(
            target.chat_id, picker.text, reply_markup=markup, **_common(target)
        )

    async def _send_previews(self, target: Target, picker: StylePicker) -> None:
        """The album of style previews, once per chat; re-sent by cached file ids."""
        options = [o for o in picker.options if o.preview is not None and o.preview.is_file()]
        if len(options) < 2 or not await self.state.claim_preview_album(target.chat_id):
            return
        blobs = [self._preview_bytes(o.preview) for o in options if o.preview is not None]
        digests = [hashlib.blake2b(b, digest_size=10).hexdigest() for b in blobs]
        cached = await self.state.preview_file_ids(digests)
        try:
            try:
                messages = await self._send_previews_album(target, options, blobs, digests, cached)
            except BadRequest as exc:
                if not cached:
                    raise
                log.info("telegram: cached preview file ids refused (%s); re-uploading", exc)
                await self.state.forget_preview_file_ids()
                messages = await self._send_previews_album(target, options, blobs, digests, {})
        except TelegramError:
            await self.state.unclaim_preview_album(target.chat_id)
            raise
        fresh = {
            d: m.photo[-1].file_id
            for d, m in zip(digests, messages, strict=False)
            if m.photo and d not in cached
        }
        await self.state.save_preview_file_ids(fresh)

    def _preview_bytes(self, path: Path) -> bytes:
        """Preview images are static package data: read each once."""
        blob = self._preview_blobs.get(path)
        if blob is None:
            blob = self._preview_blobs[path] = path.read_bytes()
        return blob

    async def _send_previews_album(
        self,
        target: Target,
        options: Sequence[StyleOption],
        blobs: Sequence[bytes],
        digests: Sequence[str],
        cached: dict[str, str],
    ) -> Sequence[Message]:
        media = [
            InputMediaPhoto(
                cached.get(d) or InputFile(b, filename=f"{o.style_id}.jpg", attach=True),
                caption=texts.preview_caption(o.label, o.description),
            )
            for o, b, d in zip(options, blobs, digests, strict=True)
        ]
        common = _common(target)
        common.pop("reply_parameters", None)
        return await self.bot.send_media_group(target.chat_id, media[:10], **common)

    # ------------------------------------------------------------------ avatars and files

    async def _send_avatar_photo(self, target: Target, avatar: Avatar) -> None:
        image = avatar.images[0]
        try:
            await self.bot.send_photo(
                target.chat_id,
                InputFile(image.data, filename=f"avatar.{image.extension}"),
                caption=avatar.caption,
                reply_markup=keyboard(avatar.buttons),
                **_common(target),
            )
        except BadRequest as exc:
            if not _photo_refused(exc):
                raise
            log.info("telegram: avatar refused as a photo (%s); sending a file", exc.message)
            await self._send_as_files(target, avatar)
            await self._send_avatar_buttons(target, avatar)

    async def _send_avatar_album(self, target: Target, avatar: Avatar) -> None:
        media = [
            InputMediaPhoto(
                InputFile(im.data, filename=f"avatar-{i + 1}.{im.extension}", attach=True)
            )
            for i, im in enumerate(avatar.images[:10])
        ]
        try:
            await self.bot.send_media_group(target.chat_id, media, **_common(target))
        except BadRequest as exc:
            if not _photo_refused(exc):
                raise
            log.info("telegram: album refused as photos (%s); sending files", exc.message)
            await self._send_as_files(target, avatar)

    async def _send_avatar_buttons(self, target: Target, avatar: Avatar) -> None:
        common = _common(target)
        common.pop("reply_parameters", None)  # the album above already replies
        await self.bot.send_message(
            target.chat_id, avatar.caption, reply_markup=keyboard(avatar.buttons), **common
        )

    async def _send_as_files(self, target: Target, avatar: Avatar) -> None:
        """Telegram refused the images as photos (too big, odd dimensions): send files."""
        for i, image in enumerate(avatar.images):
            await self.bot.send_document(
                target.chat_id,
                InputFile(image.data, filename=f"avatar-{i + 1}.{image.extension}"),
                disable_content_type_detection=True,
                **_common(target),
            )

    async def _send_original(self, target: Target, original: OriginalFile) -> None:
        await self.bot.send_document(
            target.chat_id,
            InputFile(original.image.data, filename=original.filename),
            caption=original.caption or None,
            disable_content_type_detection=True,
            **_common(target),
        )


def _common(target: Target) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if target.reply_to is not None:
        kwargs["reply_parameters"] = ReplyParameters(
            target.reply_to, allow_sending_without_reply=True
        )
    if target.thread_id is not None:
        kwargs["message_thread_id"] = target.thread_id
    return kwargs


def _photo_refused(exc: BadRequest) -> bool:
    """Telegram would not take these bytes as a photo (but would as a file)."""
    text = exc.message.lower()
    return any(
        marker in text
        for marker in ("photo_invalid_dimensions", "image_process_failed", "too big", "photo")
    )
