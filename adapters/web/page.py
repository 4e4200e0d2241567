"""The web chat's page in the current language: `lang`, `dir` and its own words.

index.html is a template: `{{key}}` fields are filled (HTML-escaped) with the page's
words from `bot.platform_texts.web_page`, the language and its direction. The words
app.js needs travel in the page as a JSON data block (not a script: the Content-Security-Policy
allows no inline script, and none runs).
"""

from __future__ import annotations

import functools
import html
import json
import re
from importlib.abc import Traversable

from bot import i18n, platform_texts
from bot.selfie import FileTooLarge

_FIELD = re.compile(r"\{\{(\w+)\}\}")


def render(static: Traversable, max_upload_bytes: int) -> bytes:
    """index.html in the current language."""
    template = static.joinpath("index.html").read_text("utf-8")
    return _render(template, i18n.current_locale(), max_upload_bytes)


@functools.lru_cache(maxsize=64)
def _render(template: str, locale: str, max_upload_bytes: int) -> bytes:
    with i18n.use(locale):
        words = platform_texts.web_page()
        words["too_big"] = FileTooLarge(max_upload_bytes + 1, max_upload_bytes).user_message
    values = {
        **words,
        "lang": i18n.bcp47(locale),
        "dir": i18n.text_direction(locale),
        # JSON inside HTML: no "<" can close the element early.
        "ui_json": json.dumps(words, ensure_ascii=False).replace("<", "\\u003c"),
    }
    page = _FIELD.sub(lambda m: _fill(values, m[1]), template)
    return page.encode("utf-8")


def _fill(values: dict[str, str], key: str) -> str:
    value = values[key]  # a field the page names but we lack is a bug: fail loudly
    return value if key == "ui_json" else html.escape(value)
