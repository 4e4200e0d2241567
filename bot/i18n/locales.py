"""From what a platform says about a user's language to one of our locales.

Telegram gives an IETF tag (`language_code`: "es", "pt-br"), Discord a locale
("pt-BR", "es-419", "en-US"), a browser an Accept-Language header. `negotiate` picks the
best available locale: the exact one (`pt-BR` -> `pt_BR`), else the language alone
(`es-419` -> `es`, `en-US` -> `en`), else another region of the same language (`pt-PT`
-> `pt_BR`), else nothing (the caller falls back to English).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from bot.i18n.catalogs import catalogs

#: Languages written right to left (their scripts' direction, not a per-catalog choice):
#: Arabic, Hebrew, Persian, Urdu, Pashto, Sindhi, Uyghur, Yiddish, Dhivehi, Central Kurdish.
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur", "ps", "sd", "ug", "yi", "dv", "ckb"})
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
#: Accept-Language entries considered (the header is the client's to make as long as it likes).
_MAX_ACCEPT_ENTRIES = 16
_MAX_TAG = 35


def normalize(tag: str) -> str | None:
    """`pt-br` -> `pt_BR`, `es-419` -> `es_419`, `zh-hant-tw` -> `zh_Hant_TW`; None when
    `tag` is no language tag at all."""
    tag = tag.strip()
    if not tag or len(tag) > _MAX_TAG or not _TAG.match(tag):
        return None
    language, *rest = re.split(r"[-_]", tag)
    parts = [language.lower()]
    for sub in rest:
        if len(sub) == 4 and sub.isalpha():
            parts.append(sub.title())  # a script
        elif (len(sub) == 2 and sub.isalpha()) or (len(sub) == 3 and sub.isdigit()):
            parts.append(sub.upper())  # a region
        # variants and extensions (-u-..., -x-...) say nothing we use
    return "_".join(parts)


def negotiate(tag: str | None, available: Collection[str] | None = None) -> str | None:
    """The available locale that best serves `tag`, or None."""
    if not tag:
        return None
    wanted = normalize(tag)
    if wanted is None:
        return None
    pool = available if available is not None else catalogs().locales
    parts = wanted.split("_")
    for n in range(len(parts), 0, -1):  # pt_BR, then pt
        candidate = "_".join(parts[:n])
        if candidate in pool:
            return candidate
    same_language = sorted(loc for loc in pool if loc.split("_")[0] == parts[0])
    return same_language[0] if same_language else None


def from_accept_language(
    header: str | None, available: Collection[str] | None = None
) -> str | None:
    """The best available locale for an HTTP Accept-Language header (by its q values)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, entry in enumerate(header.split(",")[:_MAX_ACCEPT_ENTRIES]):
        tag, _, params = entry.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if tag.strip() and tag.strip() != "*" and 0 < q <= 1:
            ranked.append((-q, i, tag.strip()))
    for _, _, tag in sorted(ranked):
        found = negotiate(tag, available)
        if found is not None:
            return found
    return None


def bcp47(locale: str) -> str:
    """`pt_BR` -> `pt-BR` (HTML's `lang`, HTTP's Content-Language)."""
    return locale.replace("_", "-")


def language_code(locale: str) -> str:
    """The two-letter ISO 639-1 code Telegram's per-language bot settings take."""
    return locale.split("_", maxsplit=1)[0]


def text_direction(locale: str) -> str:
    """ "rtl" for languages written right to left, else "ltr"."""
    return "rtl" if locale.split("_", maxsplit=1)[0] in RTL_LANGUAGES else "ltr"
