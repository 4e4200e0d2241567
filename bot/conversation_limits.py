"""What one conversation is configured with, read once from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings

#: How long an idle session (stage, variant choice) is kept.
SESSION_TTL_S = 24 * 3600


@dataclass(frozen=True)
class ConversationLimits:
    bot_name: str
    """This deployment's name: results for jobs enqueued here come back to it."""
    selfie_ttl_s: int
    session_ttl_s: int = SESSION_TTL_S
    likeness_in_caption: bool = False
    """Add each image's likeness score to the avatar's caption."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ConversationLimits:
        return cls(
            bot_name=settings.bot_name,
            selfie_ttl_s=settings.selfie_ttl_s,
            likeness_in_caption=settings.likeness_in_caption,
        )
