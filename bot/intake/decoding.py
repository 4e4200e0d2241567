"""Decoding untrusted image bytes safely (docs/intake.md has the why and the cost), in this order:

1. byte limit, before anything parses the data;
2. a format allow-list (`Image.open(formats=...)`): JPEG, PNG, WEBP, HEIF/HEIC, AVIF and
   still GIF. Never EPS (Ghostscript), SVG, TIFF, ICO, TGA, BMP, PSD;
3. dimensions read from the header right after `open()`, before any pixel is decoded:
   a per-call pixel and side limit (Pillow's global MAX_IMAGE_PIXELS is not touched; its
   DecompressionBombWarning/Error, should it fire first, also maps to `ImageTooLarge`);
4. animations rejected (still photos only);
5. `draft()` so big JPEGs decode at 1/2, 1/4 or 1/8 scale (never below the output size);
6. truncated or broken data raises `CorruptImage`;
7. EXIF orientation applied, then the pixels made 8-bit with the transform from their
   embedded colour profile to sRGB (`bot.intake.colour`).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from bot.i18n import N_
from bot.intake.colour import apply_srgb_transform, with_srgb_transform
from bot.intake.errors import (
    AnimatedImage,
    CorruptImage,
    FileTooLarge,
    ImageTooLarge,
    ImageTooSmall,
    IntakeError,
    NotAnImage,
)
from bot.intake.limits import IntakeLimits
from bot.intake.signatures import identify_rejected

#: Formats Pillow may use to open an upload; first frame only, animations are refused.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF", "GIF")
#: Formats that can hold an animation, which intake refuses. A HEIF with several
#: top-level images (bursts) is read through its primary image instead.
_ANIMATABLE = frozenset({"PNG", "WEBP", "AVIF", "GIF"})

#: Exceptions Pillow's decoders raise on malformed data.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIF/HEIC, once, when intake first decodes (not at import elsewhere)."""
    import pillow_heif  # noqa: PLC0415  # registered lazily, only where intake runs

    pillow_heif.register_heif_opener()


def decode_image(data: bytes, limits: IntakeLimits | None = None) -> Image.Image:
    """Decode an untrusted upload into a loaded, upright, 8-bit sRGB image.

    Raises an `IntakeError` subclass for every way the upload can be unusable. Big JPEGs
    come back reduced by `draft()` (never below `limits.output_max` on the short side).
    An embedded colour profile is converted to sRGB; the result carries none.
    """
    image, to_srgb = decode(data, limits or IntakeLimits())
    return apply_srgb_transform(image, to_srgb)


def decode(
    data: bytes, limits: IntakeLimits
) -> tuple[Image.Image, ImageCms.ImageCmsTransform | None]:
    """`decode_image` less the colour conversion: the decoded pixels, and the transform
    from their embedded profile to sRGB still to apply (None: they are sRGB already).

    Without a transform the pixels are 8-bit RGB; with one they are in its input mode
    (8-bit RGB, L or CMYK). Intake applies it to the output square only.
    """
    if len(data) > limits.max_bytes:
        raise FileTooLarge(len(data), limits.max_bytes)
    if not data:
        raise NotAnImage(N_("an empty file"))
    _register_heif()
    with _open(data, limits) as image:
        _check_header(image, limits)
        _load(image, limits)
        _apply_exif_orientation(image)
        pixels, to_srgb = with_srgb_transform(image)
    pixels.info.pop("icc_profile", None)  # sRGB once `to_srgb` is applied; never kept
    return pixels, to_srgb


def _open(data: bytes, limits: IntakeLimits) -> Image.Image:
    """Open (header only) with the allowed formats; every failure as an `IntakeError`."""
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise identify_rejected(data) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's global check (>89 Mpx warns, >179 Mpx raises) fired inside open();
        # under a warnings-as-errors filter the warning arrives here as an exception.
        raise ImageTooLarge(None, None, limits) from None
    except DECODE_ERRORS as exc:
        raise CorruptImage(f"open failed: {type(exc).__name__}") from None


def _check_header(image: Image.Image, limits: IntakeLimits) -> None:
    """Refuse by the header's size, before any pixel is decoded."""
    width, height = image.size
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        raise ImageTooLarge(width, height, limits)
    if min(width, height) < limits.min_side:
        raise ImageTooSmall(width, height, limits.min_side)


def _load(image: Image.Image, limits: IntakeLimits) -> None:
    """Decode the first frame's pixels (JPEG drafted down towards the output size)."""
    format_name = image.format or "image"
    try:
        if format_name in _ANIMATABLE and getattr(image, "is_animated", False):
            raise AnimatedImage(format_name)
        if format_name == "JPEG":
            image.draft(None, (limits.output_max, limits.output_max))
        image.load()
    except IntakeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(image.width, image.height, limits) from None
    except DECODE_ERRORS as exc:
        raise CorruptImage(f"{format_name} decode failed: {type(exc).__name__}") from None


def _apply_exif_orientation(image: Image.Image) -> None:
    """Rotate/flip per EXIF Orientation in place; a malformed EXIF block is ignored."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except (*DECODE_ERRORS, KeyError, TypeError):
        # Broken EXIF in an otherwise good photo: keep the pixels as stored.
        return
