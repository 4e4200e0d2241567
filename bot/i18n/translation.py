"""The language of the moment, and gettext in it.

The locale lives in a context variable. An adapter sets it once for each event it handles
(`activate`, at the start of the task that handles the event, the way aiogram's I18n
middleware does; each event runs in its own task, so nothing leaks between users); the
delivery pump and the status tracker set it around each job (`use`, with the locale the
job was enqueued in). `_`, `ngettext` and `pgettext` translate into it.

Mark a message that is translated later (a class attribute, a table) with `N_`: it
returns its argument unchanged and tells `pybabel extract` to collect it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from bot.i18n.catalogs import SOURCE_LOCALE, catalogs

#: (what the bot speaks now, what the user's app asks for: the language spoken when the
#: user chose none).
_SPEAKING: ContextVar[tuple[str, str]] = ContextVar(
    "avatarbot_locale", default=(SOURCE_LOCALE, SOURCE_LOCALE)
)


def activate(locale: str, *, app_locale: str | None = None) -> None:
    """Speak `locale` for the rest of the current task (the handling of one event)."""
    _SPEAKING.set((locale or SOURCE_LOCALE, app_locale or locale or SOURCE_LOCALE))


@contextlib.contextmanager
def use(locale: str) -> Iterator[None]:
    """Speak `locale` inside the block only (e.g. a job's messages, in the job's locale)."""
    token = _SPEAKING.set((locale or SOURCE_LOCALE, _SPEAKING.get()[1]))
    try:
        yield
    finally:
        _SPEAKING.reset(token)


def current_locale() -> str:
    return _SPEAKING.get()[0]


def app_locale() -> str:
    """The locale the user's app asks for (what `/language` "automatic" goes back to)."""
    return _SPEAKING.get()[1]


def _(message: str) -> str:
    """`message` in the current locale."""
    return catalogs().get(_SPEAKING.get()[0]).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of a counted message that fits `n` in the current locale."""
    return catalogs().get(_SPEAKING.get()[0]).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """`message` in the current locale, told apart from the same words elsewhere."""
    return catalogs().get(_SPEAKING.get()[0]).pgettext(context, message)


def N_(message: str) -> str:  # gettext's conventional name for the marker
    """Mark `message` for extraction; it is translated where it is shown."""
    return message


def language_name(locale: str) -> str:
    """A locale's own name for its language ("Español", "Deutsch"), from its catalog."""
    # Translators: not "English": the name of YOUR language, written in it
    # (Español, Deutsch, Русский). It names your language on the /language buttons.
    return catalogs().get(locale).pgettext("the name of this language, in this language", "English")
