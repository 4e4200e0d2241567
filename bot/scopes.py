"""Scopes: how the access policy names who or where, as one short string.

- `PLATFORM:USER_ID` — one user: `telegram:42`, `discord:81234`, `web:3f2a...`, `cli:alice`
  (`avatarbot submit` runs as `cli:<unix user>`).
- `PLATFORM:*` — every user of a platform (`web:*`).
- `PLATFORM-chat:CHAT_ID` — everyone in one chat: `telegram-chat:-1001234567890`.
- `PLATFORM-guild:ID` — everyone in a community the chat belongs to: `discord-guild:987`.

A request matches its user, its platform's `*`, its chat, and its guild (when the adapter
knows one: `Owner.space`). Platform names are lower-case letters, digits and `_`; ids
are letters, digits and `-_.@+` (at most 128 characters).
"""

from __future__ import annotations

import re

from bot import operator_texts
from bot.errors import AvatarbotError
from bot.jobs import Owner

_PLATFORM = r"[a-z][a-z0-9_]{0,31}"
_ID = r"[A-Za-z0-9_.@+-]{1,128}"
_USER = re.compile(rf"^{_PLATFORM}:{_ID}$")
_SCOPE = re.compile(rf"^{_PLATFORM}(?:-chat|-guild)?:{_ID}$|^{_PLATFORM}:\*$")

EXAMPLES = "telegram:42, telegram-chat:-100123, discord-guild:987, web:*"


class ScopeError(AvatarbotError):
    """Not a scope (or not a user where one is needed); the message shows the forms."""

    def __init__(self, text: str, *, user: bool = False) -> None:
        super().__init__(f"not a {'user' if user else 'scope'}: {text!r}")
        self.text = text
        self.user = user

    def localized(self) -> str:
        if self.user:
            return operator_texts.bad_user(repr(self.text))
        return operator_texts.bad_scope(repr(self.text), EXAMPLES)


def is_user_scope(text: str) -> bool:
    """True for one user, `platform:user_id` (no wildcard, no chat or guild)."""
    return bool(_USER.match(text))


def parse_scope(text: str) -> str:
    """`text` as a scope; raises ScopeError."""
    scope = text.strip()
    if not _SCOPE.match(scope):
        raise ScopeError(scope)
    return scope


def parse_user(text: str) -> str:
    """`text` as one user, `platform:user_id`; raises ScopeError."""
    user = text.strip()
    if not is_user_scope(user):
        raise ScopeError(user, user=True)
    return user


def owner_of_user(user: str) -> Owner:
    """The `Owner` a user scope names (no chat): enough for per-user queue operations."""
    platform, user_id = parse_user(user).split(":", 1)
    return Owner(platform=platform, user_id=user_id, chat_id="")


def scopes_of(owner: Owner) -> list[str]:
    """Every scope a request from `owner` matches, the user first."""
    scopes = [owner.key, f"{owner.platform}:*"]
    if owner.chat_id:
        scopes.append(f"{owner.platform}-chat:{owner.chat_id}")
    if owner.space:
        scopes.append(f"{owner.platform}-guild:{owner.space}")
    return scopes
