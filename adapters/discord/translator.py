"""Slash commands in every language we have a catalog for, through discord.py's Translator.

discord.py asks the translator, while syncing, for each Discord locale and each string
of the commands (`locale_str`; plain strings are converted); what it returns becomes
`name_localizations` / `description_localizations`. This one answers from the gettext
catalogs (`bot.i18n`): descriptions by their English text (a message id), option names
by `platform_texts.option_name`, style choices by the style catalog's own translations.
Command names stay the same in every language: the bot's messages name its commands ("send
/avatar"), as Telegram's must, so each command has one name everywhere. Discord locales
without a catalog of ours (and English ones) get no localisation: Discord shows English.
"""

from __future__ import annotations

import re
from typing import Any

from discord import Locale, app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot import i18n, platform_texts
from bot.styles import StyleCatalog

#: Discord's rule for command and option names (lowercase where a letter has a case).
_NAME = re.compile(r"^[-_\w]{1,32}$")
_DESCRIPTION_MAX = 100


class CatalogTranslator(app_commands.Translator):
    def __init__(self, styles: StyleCatalog) -> None:
        super().__init__()
        self.styles = styles

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        ours = i18n.negotiate(locale.value)
        if ours is None or ours == i18n.SOURCE_LOCALE:
            return None
        with i18n.use(ours):
            text = self._translate(string.message, context.location, context.data)
        return text if text and text != string.message else None

    def _translate(self, message: str, where: Where, data: Any) -> str | None:
        if where in (Where.command_name, Where.group_name):
            return None
        if where is Where.parameter_name:
            name = platform_texts.option_name(message)
            return name.lower() if name and _NAME.match(name) else None
        if where is Where.choice_name:
            value = getattr(data, "value", None)
            if isinstance(value, str) and value in self.styles:
                return self.styles.get(value).label[:_DESCRIPTION_MAX]
            return None
        return i18n._(message)[:_DESCRIPTION_MAX]  # descriptions: the text is the message id
