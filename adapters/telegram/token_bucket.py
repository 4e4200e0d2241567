"""A token bucket: the Telegram adapter's budget for queue-position edits."""

from __future__ import annotations

import time


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `take` never waits."""

    def __init__(self, rate: float, *, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
