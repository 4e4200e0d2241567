"""`/verify`'s answer: whether this bot made an image and whether it was altered since.

The core only knows the shape of a verdict; the checking itself (C2PA manifest, XMP,
invisible watermark, mark registry) is `provenance.labelling.ImageVerifier`, plugged in
by the composition root.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from bot import texts
from bot.errors import AvatarbotError
from bot.replies import Failure, Reply, Text


class VerdictLike(Protocol):
    """What `/verify` needs from a provenance verdict (`provenance.labelling.Verification`)."""

    @property
    def ours(self) -> bool: ...

    @property
    def intact(self) -> bool: ...

    @property
    def made_at(self) -> datetime | None:
        """When this bot made the image, when known (only for images of ours)."""

    @property
    def made_in_style(self) -> str | None:
        """The style id it was made in, when known (only for images of ours)."""


Verifier = Callable[[bytes], VerdictLike]
"""Checks an image's labels; synchronous and CPU-bound (run in a thread). May raise an
AvatarbotError with a `user_message` (e.g. not an image)."""


async def verdict_replies(
    verifier: Verifier | None, data: bytes, label: Callable[[str], str]
) -> list[Reply]:
    """The verdict on `data` in the user's language (`label`: a style id's label); without
    a verifier, that verifying is off."""
    if verifier is None:
        return [Text(texts.verify_unavailable())]
    try:
        verdict = await asyncio.to_thread(verifier, data)
    except AvatarbotError as exc:
        return [Failure(exc.user_message)]
    made = verdict.made_at
    made_on = made.astimezone(UTC).date() if made is not None else None
    style = verdict.made_in_style
    return [
        Text(texts.verdict(verdict.ours, verdict.intact, made_on, label(style) if style else None))
    ]
