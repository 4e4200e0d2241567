"""The compiled gettext catalogs, loaded once per process.

Layout (what `make i18n` maintains): `bot/locales/avatarbot.pot` is the template
extracted from the code; `bot/locales/<locale>/LC_MESSAGES/avatarbot.po` the
translations and `.mo` beside it their compiled form, committed so that running the bot
needs no build step. A locale is available when its `.mo` is there; English, the source
language, needs none (the message ids are its text).
"""

from __future__ import annotations

import functools
import gettext
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

DOMAIN = "avatarbot"
SOURCE_LOCALE = "en"
#: A catalog's folder name: language, then optionally a script or a region (`pt_BR`,
#: `es_419`, `zh_Hant`).
_LOCALE_DIR = re.compile(r"^[a-z]{2,3}(?:_(?:[A-Z][a-z]{3}|[A-Z]{2}|[0-9]{3}))?$")


class CatalogError(Exception):
    """A catalog file that cannot be read; the message says which."""


@dataclass(frozen=True)
class Catalogs:
    """Every available locale's translations (the source locale translates to itself)."""

    translations: Mapping[str, gettext.NullTranslations]

    @classmethod
    def load(cls, root: Traversable | None = None) -> Catalogs:
        """Read every `<locale>/LC_MESSAGES/avatarbot.mo` under `root` (default: the
        catalogs shipped in `bot/locales`)."""
        folder = root if root is not None else resources.files("bot").joinpath("locales")
        found: dict[str, gettext.NullTranslations] = {SOURCE_LOCALE: gettext.NullTranslations()}
        if not folder.is_dir():
            return cls(found)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            mo = entry.joinpath("LC_MESSAGES", f"{DOMAIN}.mo")
            if not _LOCALE_DIR.match(entry.name) or not mo.is_file():
                continue
            try:
                found[entry.name] = gettext.GNUTranslations(io.BytesIO(mo.read_bytes()))
            except (OSError, ValueError) as exc:
                raise CatalogError(f"cannot read the {entry.name} catalog: {exc}") from None
        return cls(found)

    @property
    def locales(self) -> tuple[str, ...]:
        """Available locales: the source first, then the others by name."""
        return (SOURCE_LOCALE, *sorted(k for k in self.translations if k != SOURCE_LOCALE))

    def get(self, locale: str) -> gettext.NullTranslations:
        """The translations of `locale`; the source language's (identity) for any other."""
        found = self.translations.get(locale)
        return found if found is not None else self.translations[SOURCE_LOCALE]


@functools.cache
def catalogs() -> Catalogs:
    """The shipped catalogs, read on first use and kept for the life of the process."""
    return Catalogs.load()
