"""Which language a user is answered in: their /language choice, else their app's.

An adapter calls `use` at the start of each event, so every reply to it is in the user's
language; `/language` shows the choices (each named in itself, and "automatic") and
`choose` stores one (removed by /forgetme with the rest of the user's data).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from bot import i18n, texts
from bot.i18n import LanguagePreferences
from bot.jobs import Owner
from bot.replies import Action, Button, Reply, Text


class LanguageChoice:
    def __init__(self, languages: LanguagePreferences) -> None:
        self.languages = languages

    async def use(self, sender: Owner, app_language: str | None) -> str:
        """Speak `sender`'s language for the rest of this event: their /language choice,
        else what their app asks for (`app_language`: Telegram's `language_code`,
        Discord's locale, a browser's Accept-Language), else English. Call it at the start
        of the task that handles the event; returns the locale."""
        app = i18n.negotiate(app_language) or i18n.SOURCE_LOCALE
        try:
            chosen = await self.languages.get(sender)
        except (aioredis.ConnectionError, aioredis.TimeoutError):
            chosen = None  # the answer will say Redis is away; in the app's language
        locale = chosen if chosen in i18n.catalogs().locales else app
        i18n.activate(locale, app_locale=app)
        return locale

    async def choose(self, sender: Owner, choice: str) -> list[Reply]:
        """Speak `choice` (a language tag, or "auto" for the app's language) from now on;
        the answer already speaks it."""
        if choice.lower() == "auto":
            await self.languages.clear(sender)
            locale = i18n.app_locale()
            i18n.activate(locale, app_locale=locale)
            return [Text(texts.language_automatic_set(locale))]
        found = i18n.negotiate(choice)
        if found is None:
            return [self.picker(texts.language_unknown())]
        await self.languages.set(sender, found)
        i18n.activate(found, app_locale=i18n.app_locale())
        return [Text(texts.language_set(found))]

    def picker(self, text: str) -> Text:
        """`text` with one button per language, and "automatic"."""
        buttons = [
            Button(texts.language_choice(locale), Action.LANGUAGE, i18n.bcp47(locale).lower())
            for locale in i18n.catalogs().locales
        ]
        buttons.append(Button(texts.language_automatic(), Action.LANGUAGE, "auto"))
        return Text(text, buttons=tuple(buttons))
