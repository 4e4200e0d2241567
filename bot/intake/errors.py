"""Every way an upload can fail to become a selfie: one `IntakeError` subclass each.

Each error carries the data of its decision (sizes, limits, the format's name) and a
`user_message`: one plain line. The lines are templates with `{placeholders}`, filled in
with `str.format`, so they can be translated as they stand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import AvatarbotError

if TYPE_CHECKING:
    from bot.intake.limits import IntakeLimits

#: What users are told they may send.
FRIENDLY_FORMATS = "JPEG, PNG, WEBP or HEIC"

NOT_AN_IMAGE_KIND = "That looks like {kind}, not a photo. Please send a photo of your face."
NOT_AN_IMAGE = "That file isn't a picture I can read. Please send a photo of your face ({formats})."
UNSUPPORTED_FORMAT = "{format_name} images aren't supported. Please send a {formats} photo."
FILE_TOO_LARGE = "That file is too big (the limit is {limit}). Please send a smaller photo."
IMAGE_TOO_LARGE = (
    "That image is too large (the limit is {megapixels} megapixels and {max_side} pixels "
    "a side). Please send a normal photo."
)
IMAGE_TOO_SMALL = "That image is too small. Please send a photo of at least {side} × {side} pixels."
ANIMATED_IMAGE = "That's an animation. Please send a still photo of your face."
CORRUPT_IMAGE = (
    "That picture seems damaged or incomplete. Please send it again or try another photo."
)
NO_FACE_FOUND = (
    "I couldn't find a face in that photo. Please face the camera, in good light, "
    "with nothing covering your face."
)
FACE_TOO_SMALL_TO_FIND = (
    "That photo is small ({width} × {height} pixels), so your face may be too small or too "
    "far for me to find. Please send one of at least {side} × {side} pixels, with your "
    "face filling a third of it."
)
MULTIPLE_FACES = "I found more than one face in that photo. Please send a photo of just you."
FACE_TOO_SMALL = (
    "Your face is too small in that photo (about {face_px} pixels across; I need "
    "{min_face_px}). Please come closer to the camera or send a larger photo."
)


class IntakeError(AvatarbotError):
    """The upload cannot become a selfie; `user_message` says why in one line."""

    user_message = "I couldn't use that picture. Please send a clear photo of your face."


class NotAnImage(IntakeError):
    """The bytes are not an image at all (empty, text, a web page, a PDF, an archive...)."""

    def __init__(self, kind: str | None = None) -> None:
        self.kind = kind
        if kind:
            message = NOT_AN_IMAGE_KIND.format(kind=kind)
        else:
            message = NOT_AN_IMAGE.format(formats=FRIENDLY_FORMATS)
        super().__init__(f"not an image: {kind or 'unrecognised data'}", user_message=message)


class UnsupportedFormat(IntakeError):
    """An image in a format intake does not decode (EPS, SVG, TIFF, ICO, TGA, ...)."""

    def __init__(self, format_name: str) -> None:
        self.format_name = format_name
        super().__init__(
            f"unsupported image format: {format_name}",
            user_message=UNSUPPORTED_FORMAT.format(
                format_name=format_name, formats=FRIENDLY_FORMATS
            ),
        )


class FileTooLarge(IntakeError):
    """More bytes than `IntakeLimits.max_bytes`; nothing was parsed."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"file of {size} bytes exceeds the {limit}-byte limit",
            user_message=FILE_TOO_LARGE.format(limit=megabytes(limit)),
        )


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
            f"or {limits.max_side} px a side",
            user_message=IMAGE_TOO_LARGE.format(
                megapixels=f"{limits.max_pixels / 1e6:g}", max_side=limits.max_side
            ),
        )


class ImageTooSmall(IntakeError):
    """A side shorter than `IntakeLimits.min_side`."""

    def __init__(self, width: int, height: int, min_side: int) -> None:
        self.width = width
        self.height = height
        self.min_side = min_side
        super().__init__(
            f"image {width}x{height} is smaller than {min_side} px a side",
            user_message=IMAGE_TOO_SMALL.format(side=min_side),
        )


class AnimatedImage(IntakeError):
    """An animation (GIF, APNG, animated WEBP/AVIF)."""

    def __init__(self, format_name: str) -> None:
        self.format_name = format_name
        super().__init__(f"animated {format_name}", user_message=ANIMATED_IMAGE)


class CorruptImage(IntakeError):
    """Looks like a supported image but is truncated or broken."""

    user_message = CORRUPT_IMAGE


class NoFaceFound(IntakeError):
    """The detector found no face it is confident about, in any orientation."""

    user_message = NO_FACE_FOUND


class FaceTooSmallToFind(NoFaceFound):
    """No face found in a photo too small for one to be found (`small_photo_side`):
    any face in it is under what the detector sees, so say what size works."""

    def __init__(self, width: int, height: int, side: int) -> None:
        self.width = width
        self.height = height
        self.side = side
        super().__init__(
            f"no face found in a {width}x{height} photo (under {side} px a side)",
            user_message=FACE_TOO_SMALL_TO_FIND.format(width=width, height=height, side=side),
        )


class MultipleFaces(IntakeError):
    """More than one prominent face."""

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(f"{count} prominent faces", user_message=MULTIPLE_FACES)


class FaceTooSmall(IntakeError):
    """The face is smaller than `IntakeLimits.min_face_px` (too far from the camera)."""

    def __init__(self, face_px: int, min_face_px: int) -> None:
        self.face_px = face_px
        self.min_face_px = min_face_px
        super().__init__(
            f"face of {face_px} px is smaller than {min_face_px} px",
            user_message=FACE_TOO_SMALL.format(face_px=face_px, min_face_px=min_face_px),
        )


def megabytes(n: int) -> str:
    """A byte count as users read it: "20 MB"."""
    return f"{n / (1024 * 1024):g} MB"
