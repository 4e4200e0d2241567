"""Every way an upload can fail to become a selfie: one `IntakeError` subclass each.

Each error carries the data of its decision (sizes, limits, the format's name) and one
friendly line: its English source is a gettext message id (`user_text`, marked with
`N_`), or, for a line that holds values, a `localized()` that fills `{placeholders}`
with `str.format` after translation. `user_message` is that line in the language of the
moment (`bot.errors.AvatarbotError`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import AvatarbotError
from bot.i18n import N_, _

if TYPE_CHECKING:
    from bot.intake.limits import IntakeLimits


class IntakeError(AvatarbotError):
    """The upload cannot become a selfie; `user_message` says why in one line."""

    user_text = N_("I couldn't use that picture. Please send a clear photo of your face.")


class NotAnImage(IntakeError):
    """The bytes are not an image at all (empty, text, a web page, a PDF, an archive...).

    `kind` is an English message id (marked with `N_`), translated where it is told."""

    def __init__(self, kind: str | None = None) -> None:
        self.kind = kind
        super().__init__(f"not an image: {kind or 'unrecognised data'}")

    def localized(self) -> str:
        if self.kind:
            return _(
                "That looks like {kind}, not a photo. Please send a photo of your face."
            ).format(kind=_(self.kind))
        return _(
            "That file isn't a picture I can read. "
            "Please send a photo of your face (JPEG, PNG, WEBP or HEIC)."
        )


class UnsupportedFormat(IntakeError):
    """An image in a format intake does not decode (EPS, SVG, TIFF, ICO, TGA, ...)."""

    def __init__(self, format_name: str) -> None:
        self.format_name = format_name
        super().__init__(f"unsupported image format: {format_name}")

    def localized(self) -> str:
        return _(
            "{format} images aren't supported. Please send a JPEG, PNG, WEBP or HEIC photo."
        ).format(format=self.format_name)


class FileTooLarge(IntakeError):
    """More bytes than `IntakeLimits.max_bytes`; nothing was parsed."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"file of {size} bytes exceeds the {limit}-byte limit")

    def localized(self) -> str:
        return _(
            "That file is too big (the limit is {megabytes} MB). Please send a smaller photo."
        ).format(megabytes=megabytes(self.limit))


class ImageTooLarge(IntakeError):
    """Too many pixels or too long a side (a decompression bomb, or just huge).

    `width`/`height` are None when Pillow's own bomb check fired before ours.
    """

    def __init__(self, width: int | None, height: int | None, limits: IntakeLimits) -> None:
        self.width = width
        self.height = height
        self.max_pixels = limits.max_pixels
        self.max_side = limits.max_side
        size = f"{width}x{height}" if width is not None else "unknown size"
        super().__init__(
            f"image dimensions {size} exceed {limits.max_pixels} pixels "
            f"or {limits.max_side} px a side"
        )

    def localized(self) -> str:
        return _(
            "That image is too large (the limit is {megapixels} megapixels and "
            "{side} pixels a side). Please send a normal photo."
        ).format(megapixels=f"{self.max_pixels / 1e6:g}", side=self.max_side)


class ImageTooSmall(IntakeError):
    """A side shorter than `IntakeLimits.min_side`."""

    def __init__(self, width: int, height: int, min_side: int) -> None:
        self.width = width
        self.height = height
        self.min_side = min_side
        super().__init__(f"image {width}x{height} is smaller than {min_side} px a side")

    def localized(self) -> str:
        return _(
            "That image is too small. Please send a photo of at least {side} × {side} pixels."
        ).format(side=self.min_side)


class AnimatedImage(IntakeError):
    """An animation (GIF, APNG, animated WEBP/AVIF)."""

    user_text = N_("That's an animation. Please send a still photo of your face.")

    def __init__(self, format_name: str) -> None:
        self.format_name = format_name
        super().__init__(f"animated {format_name}")


class CorruptImage(IntakeError):
    """Looks like a supported image but is truncated or broken."""

    user_text = N_(
        "That picture seems damaged or incomplete. Please send it again or try another photo."
    )


class NoFaceFound(IntakeError):
    """The detector found no face it is confident about, in any orientation."""

    user_text = N_(
        "I couldn't find a face in that photo. Please face the camera, in good light, "
        "with nothing covering your face."
    )


class FaceTooSmallToFind(NoFaceFound):
    """No face found in a photo too small for one to be found (`small_photo_side`):
    any face in it is under what the detector sees, so say what size works."""

    def __init__(self, width: int, height: int, side: int) -> None:
        self.width = width
        self.height = height
        self.side = side
        super().__init__(f"no face found in a {width}x{height} photo (under {side} px a side)")

    def localized(self) -> str:
        return _(
            "That photo is small ({width} × {height} pixels), so your face may be too small "
            "or too far for me to find. Please send one of at least {side} × {side} pixels, "
            "with your face filling a third of it."
        ).format(width=self.width, height=self.height, side=self.side)


class MultipleFaces(IntakeError):
    """More than one prominent face."""

    user_text = N_("I found more than one face in that photo. Please send a photo of just you.")

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(f"{count} prominent faces")


class FaceTooSmall(IntakeError):
    """The face is smaller than `IntakeLimits.min_face_px` (too far from the camera)."""

    user_text = N_(
        "Your face is too small in that photo. Please come closer to the camera "
        "so your face fills more of the picture."
    )

    def __init__(self, face_px: int, min_face_px: int) -> None:
        self.face_px = face_px
        self.min_face_px = min_face_px
        super().__init__(f"face of {face_px} px is smaller than {min_face_px} px")


def megabytes(n: int) -> str:
    """A byte count in MB as users read it ("20"), for "{megabytes} MB"."""
    return f"{n / (1024 * 1024):g}"
