"""What the queue refuses, as errors a caller decides on (each carries its user's line)."""

from __future__ import annotations

from bot.errors import AvatarbotError
from bot.i18n import N_, ngettext


class QueueError(AvatarbotError):
    """Root of the queue's errors."""


class QueueFullError(QueueError):
    """Too many jobs are queued or running."""

    user_text = N_("I'm very busy right now. Please try again in a few minutes.")

    def __init__(self, cap: int) -> None:
        super().__init__(f"queue is full ({cap} jobs)")
        self.cap = cap


class UserBusyError(QueueError):
    """The user already has a job queued or running (one at a time)."""

    user_text = N_("I'm still working on your previous avatar. Please wait for it (or cancel it).")

    def __init__(self, job_id: str) -> None:
        super().__init__(f"user already has active job {job_id}")
        self.job_id = job_id


class QuotaExceededError(QueueError):
    """The user has used their daily quota."""

    def __init__(self, limit: int, retry_after_s: float) -> None:
        super().__init__(f"daily quota of {limit} used; resets in {retry_after_s:.0f}s")
        self.limit = limit
        self.retry_after_s = retry_after_s

    def localized(self) -> str:
        hours = max(1, round(self.retry_after_s / 3600))
        made = ngettext(
            "You've made {limit} avatar today, the daily limit.",
            "You've made {limit} avatars today, the daily limit.",
            self.limit,
        ).format(limit=self.limit)
        wait = ngettext(
            "Try again in about {n} hour.", "Try again in about {n} hours.", hours
        ).format(n=hours)
        return " ".join((made, wait))
