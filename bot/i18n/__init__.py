"""Languages: gettext catalogs, the language of the moment, and each user's choice.

- `catalogs`: the compiled catalogs under `bot/locales/<locale>/LC_MESSAGES/avatarbot.mo`,
  loaded once per process; a language is available when its catalog is there (adding
  one needs no code change, see docs/languages.md). English is the source language.
- `locales`: turning what a platform says (`pt-br`, `es-419`, an Accept-Language header)
  into one of the available locales, with regional fallbacks, else English.
- `translation`: the locale of the moment (a context variable an adapter sets once per
  event, the delivery pump per job) and `_`, `ngettext`, `pgettext` in it.
- `preferences`: each user's /language choice, in Redis.

Messages are whole sentences with `{placeholder}` fields filled with `str.format` after
translation (never an f-string before it); counts go through `ngettext`.
"""

from bot.i18n.catalogs import DOMAIN, SOURCE_LOCALE, Catalogs, catalogs
from bot.i18n.locales import (
    bcp47,
    from_accept_language,
    language_code,
    negotiate,
    text_direction,
)
from bot.i18n.preferences import LanguagePreferences
from bot.i18n.translation import (
    N_,
    _,
    activate,
    app_locale,
    current_locale,
    language_name,
    ngettext,
    pgettext,
    use,
)

__all__ = [
    "DOMAIN",
    "N_",
    "SOURCE_LOCALE",
    "Catalogs",
    "LanguagePreferences",
    "_",
    "activate",
    "app_locale",
    "bcp47",
    "catalogs",
    "current_locale",
    "from_accept_language",
    "language_code",
    "language_name",
    "negotiate",
    "ngettext",
    "pgettext",
    "text_direction",
    "use",
]
