"""What Telegram shows of the bot before anyone talks to it, in every language we speak.

At start the adapter sets, for each available language (Telegram keys these by a
two-letter ISO 639-1 `language_code`), the command menu (`setMyCommands`), the
description shown in an empty chat (`setMyDescription`) and the short description of
the profile page and shared links (`setMyShortDescription`). The English ones are set
without a language code: Telegram shows them to everyone whose language has none.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot, BotCommand
from telegram.error import TelegramError

from bot import i18n, platform_texts
from bot.chat_commands import MENU

log = logging.getLogger(__name__)

#: Telegram's limits on the two descriptions.
MAX_DESCRIPTION = 512
MAX_SHORT_DESCRIPTION = 120


def profile_languages() -> dict[str, str]:
    """Telegram language code -> our locale, one locale per code (`pt_BR` serves "pt";
    a language's own catalog wins over a regional one)."""
    chosen: dict[str, str] = {}
    for locale in sorted(i18n.catalogs().locales, key=lambda loc: (len(loc), loc)):
        if locale != i18n.SOURCE_LOCALE:
            chosen.setdefault(i18n.language_code(locale), locale)
    return chosen


async def set_profile(bot: Bot) -> None:
    """The menu and descriptions in English for everyone, then in each other language.
    A failure is cosmetic: logged once, never raised."""
    try:
        await _set_in(bot, i18n.SOURCE_LOCALE, "")
        await asyncio.gather(
            *(_set_in(bot, loc, code) for code, loc in profile_languages().items())
        )
    except TelegramError as exc:
        log.warning("telegram: could not set the command menu (%s)", type(exc).__name__)


async def _set_in(bot: Bot, locale: str, code: str) -> None:
    with i18n.use(locale):
        commands = [BotCommand(c.name, c.summary) for c in MENU]
        description = platform_texts.bot_description()[:MAX_DESCRIPTION]
        short = platform_texts.bot_short_description()[:MAX_SHORT_DESCRIPTION]
    language = code or None
    await bot.set_my_commands(commands, language_code=language)
    await bot.set_my_description(description, language_code=language)
    await bot.set_my_short_description(short, language_code=language)
