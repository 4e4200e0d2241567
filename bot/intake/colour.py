"""Decoded pixels to plain 8-bit sRGB: modes, bit depths, alpha and ICC profiles.

An embedded ICC profile (Display P3 from phones, Adobe RGB from cameras, CMYK print
profiles, grey profiles) is converted to sRGB with littlecms (`PIL.ImageCms`), perceptual
intent. A profile that is broken, for another colour space than the pixels, or that
littlecms cannot use is ignored (debug log) and the pixels are taken as sRGB, as they are
without a profile (CMYK through Pillow's plain conversion). 16-bit data is scaled (not
clipped) to 8-bit, palettes converted, alpha flattened on white.
"""

from __future__ import annotations

import functools
import io
import logging

import numpy as np
from PIL import Image, ImageCms

from bot.intake.errors import CorruptImage

log = logging.getLogger(__name__)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
#: Decoded modes an ICC profile of each colour space can describe.
_GREY_MODES = _SIXTEEN_BIT_MODES | {"1", "L", "LA", "La", "I", "F"}
_RGB_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "P", "PA"})


class _ProfileNotApplicable(Exception):
    """An embedded ICC profile intake does not convert from (reason in the message)."""


#: The transform's source mode for each ICC colour space intake converts from.
_PROFILE_SPACES = {"RGB ": "RGB", "GRAY": "L", "CMYK": "CMYK"}
#: Profiles up to this size keep their transform in `_cached_srgb_transform` (phone and
#: camera profiles are 0.5-4 KB and repeat from photo to photo); bigger ones (CMYK press
#: profiles, 0.5-3 MB, rare in selfies) are built per upload, so the cache stays small.
_CACHED_PROFILE_BYTES = 64 * 1024
#: A transform that moves no probe colour by more than this is taken as the identity
#: (sRGB-tagged photos from Android phones and cameras are then not converted at all).
_IDENTITY_TOLERANCE = 1


def with_srgb_transform(
    image: Image.Image,
) -> tuple[Image.Image, ImageCms.ImageCmsTransform | None]:
    """A loaded image as 8-bit pixels in its profile's mode, with the transform to sRGB;
    or, without a usable profile, as 8-bit RGB taken as sRGB (transform None).

    The pixels are a copy: the caller closes `image`.
    """
    icc = image.info.get("icc_profile")
    if not icc or not isinstance(icc, bytes):
        return to_rgb(image), None
    try:
        source_mode, transform = _srgb_transform(icc)
        if source_mode == "RGB" and image.mode in _RGB_MODES:
            return to_rgb(image), transform
        if source_mode == "L" and image.mode in _GREY_MODES:
            return _to_grey(image), transform
        if source_mode == "CMYK" and image.mode == "CMYK":
            return image.copy(), transform
        raise _ProfileNotApplicable(f"{source_mode} profile on {image.mode} pixels")
    except (_ProfileNotApplicable, OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
        # Never the profile's bytes or text: both come from the upload.
        log.debug(
            "embedded ICC profile (%d bytes) ignored, pixels taken as sRGB: %s: %s",
            len(icc),
            type(exc).__name__,
            exc,
        )
        return to_rgb(image), None


def _srgb_transform(icc: bytes) -> tuple[str, ImageCms.ImageCmsTransform | None]:
    """The source mode and the transform to sRGB for an embedded profile (None: identity,
    only for RGB). Raises if littlecms cannot parse or use the profile.
    """
    if len(icc) <= _CACHED_PROFILE_BYTES:
        return _cached_srgb_transform(icc)
    return _build_srgb_transform(icc)


def _build_srgb_transform(icc: bytes) -> tuple[str, ImageCms.ImageCmsTransform | None]:
    """Parse, build and probe (see `_srgb_transform`); ~5 ms for a matrix/TRC profile."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    space = profile.profile.xcolor_space
    source_mode = _PROFILE_SPACES.get(space)
    if source_mode is None:
        raise _ProfileNotApplicable(f"colour space {space.strip()!r}")
    transform = ImageCms.buildTransform(
        profile,
        _srgb_profile(),
        source_mode,
        "RGB",
        renderingIntent=ImageCms.Intent.PERCEPTUAL,
        # No 1-pixel cache: then one transform may serve several threads at once.
        flags=ImageCms.Flags.NOCACHE,
    )
    if source_mode == "RGB":
        probe = _probe_colours()
        moved = np.abs(
            np.asarray(transform.apply(probe), dtype=np.int16) - np.asarray(probe, dtype=np.int16)
        )
        if int(moved.max()) <= _IDENTITY_TOLERANCE:
            return source_mode, None
    return source_mode, transform


# Exceptions are not cached: a broken profile is parsed again (it fails fast).
_cached_srgb_transform = functools.lru_cache(maxsize=32)(_build_srgb_transform)


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def _probe_colours() -> Image.Image:
    """4096 colours: every combination of 16 levels from 0 to 255 (read-only)."""
    levels = np.arange(0, 256, 17, dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
    return Image.fromarray(grid.reshape(64, 64, 3), "RGB")


def apply_srgb_transform(
    image: Image.Image, transform: ImageCms.ImageCmsTransform | None
) -> Image.Image:
    """`image` converted by `transform` (from `_srgb_transform`) to RGB with no profile
    attached; an image without a transform is RGB and taken as sRGB already."""
    if transform is None:
        return image
    try:
        converted = transform.apply(image)
    except (OSError, ValueError, ImageCms.PyCMSError) as exc:  # a bug, not bad input
        log.warning("ICC transform failed, pixels taken as sRGB: %s", type(exc).__name__)
        return to_rgb(image)
    converted.info.pop("icc_profile", None)  # Pillow attaches the output (sRGB) profile
    return converted


def to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded mode to 8-bit RGB: 16-bit and float scaled, alpha flattened on white."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _to_grey(image).convert("RGB")
    if mode == "P":
        mode = "RGBA" if "transparency" in image.info else "RGB"
        image = image.convert(mode)
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise CorruptImage(f"cannot convert mode {mode} to RGB") from exc


def _to_grey(image: Image.Image) -> Image.Image:
    """A grey mode (see `_GREY_MODES`) to 8-bit L: 16-bit scaled, alpha flattened on white."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return Image.fromarray(_grey_to_8bit(image), "L")
    if image.mode in ("LA", "La"):
        la = image.convert("LA")
        flat = Image.new("L", la.size, 255)
        flat.paste(la.getchannel("L"), mask=la.getchannel("A"))
        return flat
    return image.convert("L")


def _grey_to_8bit(image: Image.Image) -> np.ndarray[tuple[int, int], np.dtype[np.uint8]]:
    """Scale a 16-bit, 32-bit integer or float grey image to 0..255 (not clip it).

    16-bit data spans 0..65535. Mode "I" holds 16-bit data when any value exceeds 255
    (PNG), else 8-bit data; mode "F" is taken as 0..1 when it stays within it.
    """
    values = np.asarray(image).astype(np.float32)
    peak = float(values.max()) if values.size else 0.0
    if image.mode in _SIXTEEN_BIT_MODES or peak > 255:
        scale = 255 / 65535
    elif image.mode == "F" and peak <= 1.0:
        scale = 255.0
    else:
        scale = 1.0
    scaled: np.ndarray[tuple[int, int], np.dtype[np.uint8]] = np.clip(
        values * scale + 0.5, 0, 255
    ).astype(np.uint8)
    return scaled
