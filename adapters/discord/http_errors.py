"""What the Discord adapter makes of Discord's errors, and the errors it raises itself."""

from __future__ import annotations

import discord

from bot.errors import AvatarbotError

# HTTP statuses / Discord error codes that mean "this interaction token no longer works".
_TOKEN_DEAD_STATUSES = frozenset({401})
_TOKEN_DEAD_CODES = frozenset({10015, 10062, 50027})  # unknown webhook/interaction, bad token
UNKNOWN_MESSAGE = 10008


class DiscordStartError(AvatarbotError):
    """The Discord client could not log in or connect; the message says why."""


class DiscordDeliveryError(AvatarbotError):
    """Sending a result failed in a way a later try may fix (the pump retries)."""


def token_dead(exc: discord.HTTPException) -> bool:
    return exc.status in _TOKEN_DEAD_STATUSES or exc.code in _TOKEN_DEAD_CODES


def describe(exc: discord.HTTPException | BaseException) -> str:
    """Status, Discord error code and message: never a URL (interaction URLs hold tokens)."""
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status}, code {exc.code}: {exc.text[:200]}"
    return type(exc).__name__
