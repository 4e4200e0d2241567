"""Overload: when this deployment refuses new work for a while rather than grow without end.

Redis runs with a `maxmemory` and the `noeviction` policy (the embedded one is started so;
docs/deployment.md says how to size it): once full, every write is refused with an OOM
error while reads and deletes still work, and memory frees as selfies and results expire.
Such a refusal is not a bug: users get one line, "busy, try later", and the log one
warning line without a traceback.
"""

from __future__ import annotations

from redis.exceptions import OutOfMemoryError

from bot.errors import AvatarbotError
from bot.i18n import N_


class Overloaded(AvatarbotError):
    """Refused for now because a shared resource is full; a later try may pass."""

    user_text = N_("I'm very busy right now. Please try again in a minute.")


def redis_full(exc: BaseException) -> bool:
    """True for the error Redis answers a write with once `maxmemory` is reached."""
    return isinstance(exc, OutOfMemoryError)
