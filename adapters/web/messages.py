"""Replies as the web chat's JSON messages (what `app.js` renders).

Every message has `id`, `from` ("bot" or "user"), `kind`, `text`, `buttons` and `t`
(epoch seconds). Images are URLs the server hands only to their owner; no bytes.
A job's queue message has the id `q-<job id>`, so status updates replace it.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from bot import job_texts, texts
from bot.replies import (
    Avatar,
    Button,
    Failure,
    OriginalFile,
    Queued,
    Reply,
    StylePicker,
    Text,
)

Message = dict[str, Any]


def new_id() -> str:
    return secrets.token_hex(8)


def status_id(job_id: str) -> str:
    return f"q-{job_id}"


def media_url(job_id: str, index: int, *, download: bool = False) -> str:
    return f"/media/{job_id}/{index}" + ("?download=1" if download else "")


def _buttons(buttons: tuple[Button, ...]) -> list[dict[str, str]]:
    return [{"label": b.label, "data": b.data, "action": b.action.value} for b in buttons]


def _base(kind: str, text: str, *, sender: str = "bot", message_id: str | None = None) -> Message:
    return {
        "id": message_id or new_id(),
        "from": sender,
        "kind": kind,
        "text": text,
        "buttons": [],
        "t": round(time.time(), 3),
    }


def user_text(text: str) -> Message:
    return _base("text", text, sender="user")


def user_image(name: str, size: int) -> Message:
    message = _base("image", texts.your_photo(), sender="user")
    message["name"] = name[:100]
    message["size"] = size
    return message


def render(reply: Reply) -> Message:
    """One reply as one message."""
    if isinstance(reply, Text | Failure):
        message = _base("failure" if isinstance(reply, Failure) else "text", reply.text)
        message["buttons"] = _buttons(reply.buttons)
        message["ephemeral"] = reply.ephemeral
        return message
    if isinstance(reply, StylePicker):
        return _picker(reply)
    if isinstance(reply, Queued):
        return render_status(reply)
    if isinstance(reply, Avatar):
        return _avatar(reply)
    return _file(reply)


def _picker(reply: StylePicker) -> Message:
    message = _base("picker", reply.text)
    message["options"] = [
        {
            "style_id": o.style_id,
            "label": o.label,
            "description": o.description,
            "preview": f"/previews/{o.style_id}.jpg" if o.preview is not None else None,
            "data": button.data,
        }
        for o, button in zip(reply.options, reply.style_buttons, strict=True)
    ]
    message["variants"] = reply.variants
    message["variant_choices"] = list(reply.variant_choices)
    return message


def render_status(reply: Queued) -> Message:
    message = _base("queued", reply.text, message_id=status_id(reply.job_id))
    message["buttons"] = _buttons(reply.buttons)
    message["job_id"] = reply.job_id
    message["status"] = reply.status.value
    message["position"] = reply.position
    message["eta_s"] = round(reply.eta_s, 1)
    message["progress"] = round(reply.progress, 3)
    return message


def finished_status(job_id: str, text: str) -> Message:
    """What a job's queue message becomes once its outcome arrived."""
    message = _base("queued", text, message_id=status_id(job_id))
    message["job_id"] = job_id
    message["status"] = "finished"
    message["position"] = 0
    message["eta_s"] = 0
    message["progress"] = 1.0
    return message


def _avatar(reply: Avatar) -> Message:
    message = _base("avatar", reply.caption)
    message["buttons"] = _buttons(reply.buttons)
    message["job_id"] = reply.job_id
    message["style_id"] = reply.style_id
    message["images"] = [
        {
            "url": media_url(reply.job_id, i),
            "download": media_url(reply.job_id, i, download=True),
            "width": image.width,
            "height": image.height,
            "mime": image.mime,
            "likeness": None
            if image.likeness is None
            else job_texts.likeness_score(image.likeness),
        }
        for i, image in enumerate(reply.images)
    ]
    return message


def _file(reply: OriginalFile) -> Message:
    message = _base("file", reply.caption or reply.filename)
    message["job_id"] = reply.job_id
    message["filename"] = reply.filename
    message["url"] = media_url(reply.job_id, reply.index, download=True)
    message["size"] = len(reply.image.data)
    message["mime"] = reply.image.mime
    return message
