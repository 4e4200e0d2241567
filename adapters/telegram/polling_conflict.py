"""A bot token that something else also reads updates for: Telegram's 409 `Conflict`.

Telegram keeps one long poll per bot token. A second process polling the same token ends
the first one's getUpdates with 409 "Conflict: terminated by other getUpdates request",
and the two then cut each other off on every poll: each update reaches one of them at
random (or both, before an offset is confirmed), and python-telegram-bot just retries.
A webhook set for the token (a process in webhook mode) makes every getUpdates answer 409
"can't use getUpdates method while webhook is active".

Neither fixes itself, and neither is worth a line per retry: `PollingConflict` says once
per process, in one line, what is wrong and what to do; polling goes on (so this process
takes over when the other one stops) and further conflicts are only counted.
Several bot processes per token work in webhook mode: Telegram posts each update once,
to whichever process the load balancer picks (see docs/deployment.md).
"""

from __future__ import annotations

import logging

from telegram.error import Conflict, TelegramError

log = logging.getLogger(__name__)

OTHER_POLLER = (
    "telegram: another process is long polling with this bot token (Telegram answered "
    "409 Conflict): only one polling process per TELEGRAM_BOT_TOKEN can run; stop the "
    "other one, or run every bot process in webhook mode (AVATARBOT_TELEGRAM_WEBHOOK_URL)"
)
WEBHOOK_SET = (
    "telegram: a webhook is set for this bot token, so Telegram refuses long polling "
    "(409 Conflict): another bot process runs in webhook mode; run every bot process in "
    "webhook mode (AVATARBOT_TELEGRAM_WEBHOOK_URL), or stop that one"
)


class PollingConflict:
    """Recognises polling conflicts; logs the first of each kind, counts them all."""

    def __init__(self) -> None:
        self.count = 0
        self._said: set[str] = set()

    def report(self, exc: TelegramError) -> bool:
        """True when `exc` is a conflict (handled here: logged once per kind)."""
        if not isinstance(exc, Conflict):
            return False
        self.count += 1
        line = WEBHOOK_SET if "webhook" in exc.message.lower() else OTHER_POLLER
        if line not in self._said:
            self._said.add(line)
            log.error(line)
        return True
