"""Where a Discord job's result goes: the interaction it came from, and the fallbacks.

Stored in the job's `Route.data` (flat strings, in Redis), so a restarted bot can still
answer: the interaction token edits the status message and sends the result as a
followup while it lives (15 minutes); after that the result goes to the user by DM, or to
the channel with a mention. The token is a short-lived credential for this one
interaction: it is never logged (`__repr__` leaves it out).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

#: Discord interaction tokens are valid for 15 minutes.
TOKEN_LIFETIME_S = 15 * 60
#: Stop using a token this long before it dies (clock skew, a slow upload).
TOKEN_MARGIN_S = 60
#: The upload limit for a bot's messages outside an interaction (no boosts assumed).
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024


class RouteDataError(ValueError):
    """A job's route data is not a Discord route (a bug or a foreign job)."""


@dataclass(frozen=True)
class DiscordRoute:
    application_id: int
    interaction_id: int
    token: str
    created_at: float
    """When the interaction was created (epoch seconds, from its snowflake)."""
    user_id: int
    channel_id: int
    guild_id: int | None
    upload_limit: int = DEFAULT_UPLOAD_LIMIT

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        return (
            f"DiscordRoute(interaction={self.interaction_id}, user={self.user_id}, "
            f"channel={self.channel_id}, guild={self.guild_id})"
        )

    def token_alive(self, now: float | None = None) -> bool:
        age = (time.time() if now is None else now) - self.created_at
        return age < TOKEN_LIFETIME_S - TOKEN_MARGIN_S

    @property
    def in_dm(self) -> bool:
        return self.guild_id is None

    def to_data(self) -> dict[str, str]:
        data = {
            "application_id": str(self.application_id),
            "interaction_id": str(self.interaction_id),
            "interaction_token": self.token,
            "created_at": repr(self.created_at),
            "user_id": str(self.user_id),
            "channel_id": str(self.channel_id),
            "upload_limit": str(self.upload_limit),
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, str]) -> DiscordRoute:
        try:
            guild = data.get("guild_id")
            return cls(
                application_id=int(data["application_id"]),
                interaction_id=int(data["interaction_id"]),
                token=data["interaction_token"],
                created_at=float(data["created_at"]),
                user_id=int(data["user_id"]),
                channel_id=int(data["channel_id"]),
                guild_id=int(guild) if guild else None,
                upload_limit=int(data.get("upload_limit", DEFAULT_UPLOAD_LIMIT)),
            )
        except (KeyError, ValueError) as exc:
            fields = sorted(k for k in data if k != "interaction_token")
            raise RouteDataError(f"not a Discord route (fields: {fields})") from exc
