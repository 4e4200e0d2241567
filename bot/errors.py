"""The root of avatarbot's errors. Each layer subclasses it once per decision a caller makes.

Errors that a user may see carry `user_message`: one friendly line, translated into
platform words only at the adapter. Details for operators go in `str(error)`.
"""

from __future__ import annotations


class AvatarbotError(Exception):
    """Root of every error avatarbot raises on purpose."""

    user_message: str = "Something went wrong on our side. Please try again in a moment."

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.__class__.__name__)
        if user_message is not None:
            self.user_message = user_message
