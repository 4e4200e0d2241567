"""`/verify`'s answer: whether this bot made an image and whether it was altered since.

The core only knows the shape of a verdict; the checking itself (C2PA manifest, XMP,
invisible watermark, mark registry) is `provenance.labelling.ImageVerifier`, plugged in
by the composition root.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from bot import texts
from bot.errors import AvatarbotError
from bot.replies import Failure, Reply, Text


class VerdictLike(Protocol):
    """What `/verify` needs from a provenance verdict (`provenance.labeller.Verdict`)."""

    @property
    def ours(self) -> bool: ...

    @property
    def intact(self) -> bool: ...

    def origin(self) -> str | None:
        """'made by this avatarbot instance on <date> in style <style>' when known."""


Verifier = Callable[[bytes], VerdictLike]
"""Checks an image's labels; synchronous and CPU-bound (run in a thread). May raise an
AvatarbotError with a `user_message` (e.g. not an image)."""


async def verdict_replies(verifier: Verifier | None, data: bytes) -> list[Reply]:
    """The verdict on `data` in one line; without a verifier, that verifying is off."""
    if verifier is None:
        return [Text(texts.VERIFY_UNAVAILABLE)]
    try:
        verdict = await asyncio.to_thread(verifier, data)
    except AvatarbotError as exc:
        return [Failure(exc.user_message)]
    return [Text(texts.verdict(verdict.ours, verdict.intact, verdict.origin()))]
