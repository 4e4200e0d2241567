"""What the conversation answers: platform-neutral replies that adapters render.

The conversation core never speaks a platform's language. It returns a list of
`Reply` values; each adapter turns them into its own messages (a Telegram message with
an inline keyboard, a Discord embed with components, a web chat bubble).

Buttons carry compact callback data (`v1:<action>:<arg>[:<owner>]`), at most 64 bytes
because that is Telegram's limit for `callback_data` (Discord allows 100 for
`custom_id`). Every button answers only the person it was sent to, also in group chats
where everyone sees it:
- job buttons carry the job id, so they keep working after a restart and the
  conversation checks, when one is pressed, that the presser is the job's owner;
- every other button (style picker, variants, "make an avatar") carries its
  recipient's owner tag (`bind`, a short digest of platform and user id; not a secret,
  a binding), and `callback_allows` refuses anyone else.

`error_reply` is the one way an error that escaped the conversation becomes a reply.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot import texts
from bot.errors import AvatarbotError
from bot.i18n import N_
from bot.jobs import MAX_VARIANTS, MIN_VARIANTS, JobStatus, Owner
from bot.likeness import Likeness
from bot.overload import Overloaded, redis_full
from bot.redis_connection import RedisUnavailableError

CALLBACK_VERSION = "v1"
#: Telegram's `callback_data` limit, the tightest of the platforms.
MAX_CALLBACK_BYTES = 64
_ARG = re.compile(r"^[a-z0-9_-]{1,32}$")
_OWNER_TAG = re.compile(r"^[0-9a-f]{10}$")


class Action(enum.StrEnum):
    """What a button does. Job actions carry a job id; PICK a style id; VARIANTS a count."""

    MORE = "more"
    """Same style and selfie, a new seed."""
    STYLE = "style"
    """Pick another style for the same selfie."""
    ORIGINAL = "orig"
    """Send the full-quality labelled file(s) as a document (keeps the C2PA manifest)."""
    FORGET = "forget"
    """Delete the stored selfie now."""
    CANCEL = "cancel"
    """Cancel the job while it waits."""
    PICK = "pick"
    """Choose a style from the picker (arg: style id)."""
    VARIANTS = "n"
    """Set how many variants the next job makes (arg: 1..4)."""
    AVATAR = "avatar"
    """Start over: ask for a selfie (arg: "-")."""
    LANGUAGE = "lang"
    """Speak this language from now on (arg: a lowercase language tag such as "pt-br", or
    "auto" for the language of the user's app)."""

    @property
    def takes_job(self) -> bool:
        return self in _JOB_ACTIONS


_JOB_ACTIONS = frozenset({Action.MORE, Action.STYLE, Action.ORIGINAL, Action.FORGET, Action.CANCEL})


class BadCallbackError(AvatarbotError):
    """Callback data that this version of the bot does not understand (old or forged)."""

    user_text = N_("That button no longer works. Send /avatar to start again.")


def owner_tag(owner: Owner) -> str:
    """The short tag a bound button carries for its recipient (10 hex digits)."""
    key = f"{owner.platform}\0{owner.user_id}".encode()
    return hashlib.blake2b(key, digest_size=5).hexdigest()


@dataclass(frozen=True)
class Button:
    """A button under a message. `arg` is a job id, a style id, a count, or "-";
    `owner` the recipient's `owner_tag` once bound ("" for anyone)."""

    label: str
    action: Action
    arg: str = "-"
    owner: str = ""

    def __post_init__(self) -> None:
        if not _ARG.match(self.arg):
            raise ValueError(f"button arg must match {_ARG.pattern}, got {self.arg!r}")
        if self.owner and not _OWNER_TAG.match(self.owner):
            raise ValueError(f"button owner must be an owner_tag, got {self.owner!r}")

    @property
    def data(self) -> str:
        """The callback data to attach to the platform's button."""
        return format_callback(self.action, self.arg, owner=self.owner)

    def bound_to(self, tag: str) -> Button:
        """This button for one recipient only. Job buttons stay as they are: their job id
        already names the one person who may press them."""
        return self if self.action.takes_job else replace(self, owner=tag)


def format_callback(action: Action, arg: str = "-", *, owner: str = "") -> str:
    """`v1:<action>:<arg>` (`:<owner tag>` when bound); raises ValueError if it would not
    fit in 64 bytes."""
    data = f"{CALLBACK_VERSION}:{action.value}:{arg}" + (f":{owner}" if owner else "")
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data longer than {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def parse_callback(data: str) -> tuple[Action, str]:
    """The (action, arg) in callback data; raises BadCallbackError for anything else."""
    return _parse(data)[:2]


def callback_allows(data: str, presser: Owner) -> bool:
    """False when the data is bound to someone other than `presser` (malformed data is
    left to `parse_callback` to refuse)."""
    try:
        _, _, owner = _parse(data)
    except BadCallbackError:
        return True
    return not owner or owner == owner_tag(presser)


def _parse(data: str) -> tuple[Action, str, str]:
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise BadCallbackError("callback data too long")
    parts = data.split(":")
    if len(parts) not in (3, 4) or parts[0] != CALLBACK_VERSION:
        raise BadCallbackError(f"unknown callback format {data[:20]!r}")
    try:
        action = Action(parts[1])
    except ValueError:
        raise BadCallbackError(f"unknown action {parts[1][:10]!r}") from None
    if not _ARG.match(parts[2]):
        raise BadCallbackError("malformed callback argument")
    owner = parts[3] if len(parts) == 4 else ""
    if len(parts) == 4 and not _OWNER_TAG.match(owner):
        raise BadCallbackError("malformed callback owner")
    return action, parts[2], owner


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Text:
    """A plain message. `ephemeral`: only the presser should see it (a Telegram callback
    alert, a Discord ephemeral reply); adapters without that notion show it normally."""

    text: str
    buttons: tuple[Button, ...] = ()
    ephemeral: bool = False

    def bound_to(self, tag: str) -> Self:
        return replace(self, buttons=tuple(b.bound_to(tag) for b in self.buttons))


@dataclass(frozen=True)
class Failure:
    """Something the user asked for did not work; `text` is one friendly line."""

    text: str
    buttons: tuple[Button, ...] = ()
    ephemeral: bool = False

    def bound_to(self, tag: str) -> Self:
        return replace(self, buttons=tuple(b.bound_to(tag) for b in self.buttons))


@dataclass(frozen=True)
class StyleOption:
    style_id: str
    label: str
    """Emoji and title, e.g. "✏️ Pencil sketch"."""
    description: str
    preview: Path | None
    """A JPEG preview of the style; None when the catalog's style has none."""

    @property
    def button(self) -> Button:
        return Button(self.label, Action.PICK, self.style_id)


@dataclass(frozen=True)
class StylePicker:
    """Choose a style (with previews) and how many variants (1..4)."""

    text: str
    options: tuple[StyleOption, ...]
    variants: int = 1
    """The count currently selected."""
    variant_choices: tuple[int, ...] = tuple(range(MIN_VARIANTS, MAX_VARIANTS + 1))
    owner: str = ""
    """The owner tag its buttons are bound to ("" until `bind`)."""

    @property
    def style_buttons(self) -> tuple[Button, ...]:
        return tuple(o.button.bound_to(self.owner) for o in self.options)

    @property
    def variant_buttons(self) -> tuple[Button, ...]:
        return tuple(
            Button(
                texts.variant_chosen(n) if n == self.variants else str(n),
                Action.VARIANTS,
                str(n),
                owner=self.owner,
            )
            for n in self.variant_choices
        )

    def bound_to(self, tag: str) -> Self:
        return replace(self, owner=tag)


@dataclass(frozen=True)
class Queued:
    """A job's place in the queue. Adapters send it once and edit it as updates arrive
    (`StatusTracker`); `job_id` identifies the message to edit."""

    job_id: str
    style_label: str
    position: int
    """1 = next; 0 = being made now."""
    eta_s: float
    status: JobStatus = JobStatus.QUEUED
    progress: float = 0.0
    text: str = ""
    buttons: tuple[Button, ...] = ()

    def bound_to(self, tag: str) -> Self:
        return replace(self, buttons=tuple(b.bound_to(tag) for b in self.buttons))


@dataclass(frozen=True)
class AvatarImage:
    data: bytes
    mime: str
    width: int
    height: int
    seed: int
    likeness: Likeness | None = None
    """How much it looks like the selfie (None: not measured)."""

    def __repr__(self) -> str:  # never put image bytes in a log line
        return f"AvatarImage({self.width}x{self.height} {self.mime}, {len(self.data)} bytes)"

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(self.mime, "bin")


@dataclass(frozen=True)
class Avatar:
    """Finished avatar(s) to show inline, with the follow-up buttons."""

    job_id: str
    style_id: str
    style_label: str
    images: tuple[AvatarImage, ...]
    caption: str
    buttons: tuple[Button, ...] = ()

    def bound_to(self, tag: str) -> Self:
        return replace(self, buttons=tuple(b.bound_to(tag) for b in self.buttons))


@dataclass(frozen=True)
class OriginalFile:
    """A labelled file to send as a document (not as a photo: chat apps re-encode photos
    and strip the C2PA manifest)."""

    job_id: str
    index: int
    filename: str
    image: AvatarImage
    caption: str = ""

    def bound_to(self, tag: str) -> Self:
        return self  # no buttons


Reply = Text | Failure | StylePicker | Queued | Avatar | OriginalFile


def bind(replies: Iterable[Reply], owner: Owner) -> list[Reply]:
    """The replies with every button bound to `owner` (see the module docstring)."""
    tag = owner_tag(owner)
    return [reply.bound_to(tag) for reply in replies]


def error_reply(exc: BaseException) -> Failure:
    """How an adapter answers an error that escaped the conversation: the error's own
    friendly line, "try again shortly" while Redis is unreachable, else a generic apology.
    The one path from an error to what the user reads."""
    if isinstance(exc, AvatarbotError):
        return Failure(exc.user_message)
    if redis_full(exc):
        return Failure(Overloaded().user_message)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return Failure(RedisUnavailableError().user_message)
    return Failure(AvatarbotError().user_message)
