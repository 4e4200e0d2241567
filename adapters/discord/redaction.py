"""Keeps Discord interaction tokens out of discord.py's own log lines.

discord.py logs request URLs at DEBUG, and interaction URLs carry the interaction token
(`/interactions/<id>/<token>/callback`, `/webhooks/<app id>/<token>`); its gateway logs
whole events at DEBUG, and an INTERACTION_CREATE event carries `"token": ...`. The bot
token itself is scrubbed by `bot.logs.RedactingFilter` (a known secret); interaction
tokens are new for every interaction, so they are scrubbed by shape here, with a filter
on the library loggers that emit them.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[REDACTED]"
_URL_TOKEN = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]+")
_FIELD_TOKEN = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+""")
#: The loggers whose records can contain an interaction token.
LOGGERS = ("discord.http", "discord.webhook.async_", "discord.gateway", "discord.client")


def scrub(text: str) -> str:
    return _FIELD_TOKEN.sub(rf"\g<1>{REDACTED}", _URL_TOKEN.sub(rf"\g<1>{REDACTED}", text))


class InteractionTokenFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


class TokenScrubbing:
    """Installs one filter on the library loggers; `remove()` takes it off again."""

    def __init__(self) -> None:
        self._filter = InteractionTokenFilter()
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            for name in LOGGERS:
                logging.getLogger(name).addFilter(self._filter)
            self._installed = True

    def remove(self) -> None:
        if self._installed:
            for name in LOGGERS:
                logging.getLogger(name).removeFilter(self._filter)
            self._installed = False
