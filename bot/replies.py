"""What the conversation answers: platform-neutral replies that adapters render.

The conversation core never speaks a platform's language. It returns a list of
`Reply` values; each adapter turns them into its own messages (a Telegram message with
an inline keyboard, a Discord embed with components, a web chat bubble).

Buttons carry compact callback data (`v1:<action>:<arg>`), at most 64 bytes because
that is Telegram's limit for `callback_data` (Discord allows 100 for `custom_id`). Job
buttons carry the job id, so they keep working after a restart and the conversation
can check, when one is pressed, that the presser is the job's owner.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from bot.errors import AvatarbotError
from bot.jobs import MAX_VARIANTS, MIN_VARIANTS, JobStatus
from bot.likeness import Likeness

CALLBACK_VERSION = "v1"
#: Telegram's `callback_data` limit, the tightest of the platforms.
MAX_CALLBACK_BYTES = 64
_ARG = re.compile(r"^[a-z0-9_-]{1,32}$")


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

    @property
    def takes_job(self) -> bool:
        return self in _JOB_ACTIONS


_JOB_ACTIONS = frozenset({Action.MORE, Action.STYLE, Action.ORIGINAL, Action.FORGET, Action.CANCEL})


class BadCallbackError(AvatarbotError):
    """Callback data that this version of the bot does not understand (old or forged)."""

    user_message = "That button no longer works. Send /avatar to start again."


@dataclass(frozen=True)
class Button:
    """A button under a message. `arg` is a job id, a style id, a count, or "-"."""

    label: str
    action: Action
    arg: str = "-"

    def __post_init__(self) -> None:
        if not _ARG.match(self.arg):
            raise ValueError(f"button arg must match {_ARG.pattern}, got {self.arg!r}")

    @property
    def data(self) -> str:
        """The callback data to attach to the platform's button."""
        return format_callback(self.action, self.arg)


def format_callback(action: Action, arg: str = "-") -> str:
    """`v1:<action>:<arg>`; raises ValueError if it would not fit in 64 bytes."""
    data = f"{CALLBACK_VERSION}:{action.value}:{arg}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data longer than {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def parse_callback(data: str) -> tuple[Action, str]:
    """The (action, arg) in callback data; raises BadCallbackError for anything else."""
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise BadCallbackError("callback data too long")
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != CALLBACK_VERSION:
        raise BadCallbackError(f"unknown callback format {data[:20]!r}")
    try:
        action = Action(parts[1])
    except ValueError:
        raise BadCallbackError(f"unknown action {parts[1][:10]!r}") from None
    if not _ARG.match(parts[2]):
        raise BadCallbackError("malformed callback argument")
    return action, parts[2]


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Text:
    """A plain message. `ephemeral`: only the presser should see it (a Telegram callback
    alert, a Discord ephemeral reply); adapters without that notion show it normally."""

    text: str
    buttons: tuple[Button, ...] = ()
    ephemeral: bool = False


@dataclass(frozen=True)
class Failure:
    """Something the user asked for did not work; `text` is one friendly line."""

    text: str
    buttons: tuple[Button, ...] = ()
    ephemeral: bool = False


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

    @property
    def variant_buttons(self) -> tuple[Button, ...]:
        return tuple(
            Button(f"✓ {n}" if n == self.variants else str(n), Action.VARIANTS, str(n))
            for n in self.variant_choices
        )


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


@dataclass(frozen=True)
class OriginalFile:
    """A labelled file to send as a document (not as a photo: chat apps re-encode photos
    and strip the C2PA manifest)."""

    job_id: str
    index: int
    filename: str
    image: AvatarImage
    caption: str = ""


Reply = Text | Failure | StylePicker | Queued | Avatar | OriginalFile
