"""Fetching a selfie a Telegram user sent, checked against size limits before download.

What Telegram reports (`file_size`) is checked against the limit first, then what
getFile reports, then the bytes themselves; a document that is clearly not an image
(by its MIME type) is refused unread. Every refusal is one friendly line (`Failure`).
"""

from __future__ import annotations

import logging

from telegram import Bot, Message
from telegram.error import BadRequest

from bot import texts
from bot.replies import Failure
from bot.selfie import FileTooLarge, NotAnImage

log = logging.getLogger(__name__)

#: getFile refuses larger files (the public Bot API server's limit).
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024


class SelfieDownloads:
    def __init__(self, bot: Bot, limit: int) -> None:
        self.bot = bot
        self.limit = limit

    async def fetch(self, message: Message) -> bytes | Failure:
        """The bytes of the largest photo size or the document, or why not."""
        target = self._file_to_fetch(message)
        if isinstance(target, Failure):
            return target
        file_id, size = target
        try:
            file = await self.bot.get_file(file_id)
            size = file.file_size if file.file_size is not None else size
            if size is not None and size > self.limit:
                return self._too_big(size)
            data = bytes(await file.download_as_bytearray())
        except BadRequest as exc:
            if "too big" not in exc.message.lower():
                raise
            return self._too_big(max(size or 0, self.limit + 1))
        if len(data) > self.limit:
            return self._too_big(len(data))
        return data

    def _file_to_fetch(self, message: Message) -> tuple[str, int | None] | Failure:
        """(file id, reported size) of the selfie in a message, or why it can't be one."""
        if message.photo:
            item = message.photo[-1]  # sizes come smallest first
            file_id, size = item.file_id, item.file_size
        elif message.document is not None:
            kind = non_image_kind(message.document.mime_type)
            if kind is not None:
                return Failure(NotAnImage(kind).user_message)
            file_id, size = message.document.file_id, message.document.file_size
        else:
            return Failure(NotAnImage().user_message)
        if size is not None and size > self.limit:
            return self._too_big(size)
        return file_id, size

    def _too_big(self, size: int) -> Failure:
        log.info("telegram: an upload of %d bytes was refused without downloading it", size)
        return Failure(FileTooLarge(size, self.limit).user_message)


def non_image_kind(mime: str | None) -> str | None:
    """What a document clearly not an image is (a message id `NotAnImage` translates),
    else None."""
    if not mime or mime.startswith("image/") or mime == "application/octet-stream":
        return None
    return texts.non_image_kind(mime)
