"""Whether the Bot API can be reached: its network errors become `PlatformUnreachable`,
so the bot process keeps its other surfaces and starts Telegram again later
(`bot.chat_adapter`); a rejected token or a refused webhook URL stays a setting to fix."""

from __future__ import annotations

from telegram import Bot
from telegram.error import NetworkError, RetryAfter

from bot.chat_adapter import PlatformUnreachable

#: Bot API errors that a later try may not meet (TimedOut is a NetworkError).
UNREACHABLE = (NetworkError, RetryAfter)


def unreachable(exc: BaseException) -> PlatformUnreachable:
    return PlatformUnreachable(f"telegram: {type(exc).__name__}")


async def check_bot_api(bot: Bot) -> None:
    """getMe; raises `PlatformUnreachable` when the Bot API does not answer."""
    try:
        await bot.get_me()
    except UNREACHABLE as exc:
        raise unreachable(exc) from exc
