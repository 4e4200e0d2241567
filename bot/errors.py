"""The root of avatarbot's errors. Each layer subclasses it once per decision a caller makes.

Errors that a user may see carry the English source of one friendly line, `user_text`
(a gettext message id, marked with `N_`); `user_message` is that line in the language
of the moment (`bot.i18n`), so the words are chosen where the error is told, not where
it is raised. An error whose line holds values overrides `localized`. Details for
operators go in `str(error)`.
"""

from __future__ import annotations

from typing import ClassVar

from bot.i18n import N_, _


class AvatarbotError(Exception):
    """Root of every error avatarbot raises on purpose."""

    user_text: ClassVar[str] = N_("Something went wrong on our side. Please try again in a moment.")

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.__class__.__name__)
        self._user_message = user_message

    def localized(self) -> str:
        """The line a user reads, in the current language (override to add values)."""
        return _(self.user_text)

    @property
    def user_message(self) -> str:
        """One friendly line for the user: a fixed one given when raised (the command
        line's, which speaks English), else `localized()`."""
        return self._user_message if self._user_message is not None else self.localized()

    @user_message.setter
    def user_message(self, text: str) -> None:
        self._user_message = text
