from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import setup_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup_logging configures the process (root handlers, levels): put everything back,
    so later tests keep pytest's capture and the whole run's leak check."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    httpx_level = logging.getLogger("httpx").level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(httpx_level)


def _capture(**kwargs: object) -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = setup_logging("INFO", stream=stream, **kwargs)  # type: ignore[arg-type]
    return stream, handler


def test_known_secrets_and_token_shapes_are_scrubbed() -> None:
    stream, handler = _capture(secrets=["discord-secret-value"])
    try:
        log = logging.getLogger("t.redact")
        log.info("POST https://api.telegram.org/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe")
        log.info("token %s", "discord-secret-value")
        try:
            raise RuntimeError("failed with 654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
        except RuntimeError:
            log.exception("boom")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in text
    assert "ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in text
    assert "discord-secret-value" not in text
    assert text.count("[REDACTED]") >= 3


def test_json_lines_carry_extra_fields() -> None:
    stream, handler = _capture(json_lines=True)
    try:
        logging.getLogger("t.json").info("job done in %d ms", 12, extra={"job_id": "abc"})
    finally:
        logging.getLogger().removeHandler(handler)
    record = json.loads(stream.getvalue().strip())
    assert record["msg"] == "job done in 12 ms"
    assert record["job_id"] == "abc"
    assert record["level"] == "INFO"
