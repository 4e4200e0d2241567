"""Logging setup: plain or JSON lines, with secrets scrubbed from every record.

Libraries log URLs that contain bot tokens (httpx logs Telegram's `.../bot<token>/...`
request lines at INFO), and an HTTP library may quote a request's headers in an error. The
redaction filter sits on the handler, so every record from every logger passes through
it, message, traceback and `extra=` fields alike: known secret values, anything shaped
like a Telegram bot token or a signed web chat cookie, and the values of credential
headers (`Cookie`, `Set-Cookie`, `Authorization`, Telegram's webhook secret, also as the
`secret_token` parameter) are replaced
before formatting.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

_TELEGRAM_TOKEN = re.compile(r"(?<![0-9])[0-9]{5,}:[A-Za-z0-9_-]{30,}")
#: A web chat cookie value: `<uid>.<signature>`, 32 hex digits each.
_SIGNED_COOKIE = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{32}\.[0-9a-f]{32}")
#: A credential header and its value, as a header line or in a repr (`'Cookie': '...'`).
_CREDENTIAL_HEADER = re.compile(
    r"(?i)(\b(?:cookie|set-cookie|authorization|proxy-authorization|"
    r"x-telegram-bot-api-secret-token|secret_token)['\"]?\s*[:=]\s*['\"]?)[^\r\n'\"]*"
)
_REDACTED = "[REDACTED]"
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class RedactingFilter(logging.Filter):
    """Replaces secret values (and token-shaped strings) in a record's message."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        text = _CREDENTIAL_HEADER.sub(rf"\1{_REDACTED}", text)
        text = _SIGNED_COOKIE.sub(_REDACTED, text)
        return _TELEGRAM_TOKEN.sub(_REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks may quote URLs with tokens; format them now, scrubbed.
            formatter = logging.Formatter()
            record.exc_text = self.scrub(formatter.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        if scrubbed != message or record.args:
            record.msg = scrubbed
            record.args = None
        for key, value in list(record.__dict__.items()):  # `extra=` fields
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                record.__dict__[key] = self.scrub(value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus `extra=` fields (job_id...)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_text:
            payload["exc"] = record.exc_text
        elif record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def setup_logging(
    level: str = "INFO",
    *,
    json_lines: bool = False,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Configure the root logger once for a process; returns the installed handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request line at INFO; keep it at WARNING unless debugging.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    return handler
