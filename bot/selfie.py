"""Selfie intake: untrusted bytes in, one normalised square RGB JPEG around one face out.

Runs in the bot before anything is queued, so every problem is answered at once with a
typed `IntakeError` whose `user_message` is one plain line.

Decoding untrusted images safely (docs/intake.md has the why and the cost), in this order:
1. byte limit, before anything parses the data;
2. a format allow-list (`Image.open(formats=...)`): JPEG, PNG, WEBP, HEIF/HEIC, AVIF and
   still GIF. Never EPS (Ghostscript), SVG, TIFF, ICO, TGA, BMP, PSD;
3. dimensions read from the header right after `open()`, before any pixel is decoded:
   a per-call pixel and side limit (Pillow's global MAX_IMAGE_PIXELS is not touched; its
   DecompressionBombWarning/Error, should it fire first, also maps to `ImageTooLarge`);
4. animations rejected (still photos only);
5. `draft()` so big JPEGs decode at 1/2, 1/4 or 1/8 scale (never below the output size);
6. truncated or broken data raises `CorruptImage`;
7. EXIF orientation applied, then 16-bit scaled (not clipped) to 8-bit, palettes
   converted, alpha flattened on white;
8. an embedded ICC profile (Display P3 from phones, Adobe RGB from cameras, CMYK print
   profiles, grey profiles) converted to sRGB with littlecms (`PIL.ImageCms`), perceptual
   intent. A profile that is broken, for another colour space than the pixels, or that
   littlecms cannot use is ignored (debug log) and the pixels are taken as sRGB, as they
   are without a profile (CMYK through Pillow's plain conversion): always plain sRGB RGB
   with no profile attached. `SelfieIntake` finds the face on the pixels as decoded (the
   detector needs no exact colour) and converts only the output square, so a 12 Mpx
   photo pays for 1 Mpx at most.

The face crop is square with portrait framing: more room below the face (chin, neck,
shoulders) than above it, and the face centred horizontally.
"""

from __future__ import annotations

import functools
import io
import logging
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from bot.errors import AvatarbotError
from bot.faces import FaceBox, FaceDetector
from bot.i18n import N_, _

#: Formats Pillow may use to open an upload; first frame only, animations are refused.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF", "GIF")
#: Formats that can hold an animation, which intake refuses. A HEIF with several
#: top-level images (bursts) is read through its primary image instead.
_ANIMATABLE = frozenset({"PNG", "WEBP", "AVIF", "GIF"})

#: Crop side as a multiple of the face box size (the HOG box spans brows to chin).
CROP_FACE_RATIO = 2.4
#: The least crop side, as a multiple of the face box, before padding is used instead.
MIN_CROP_FACE_RATIO = 1.6
#: Where the face centre sits, as a fraction of the crop height from the top.
FACE_CENTER_Y = 0.45

# Exceptions Pillow's decoders raise on malformed data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors


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
        ).format(megabytes=_megabytes(self.limit))


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
    """The detector found no face it is confident about."""

    user_text = N_(
        "I couldn't find a face in that photo. Please face the camera, in good light, "
        "with nothing covering your face."
    )


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


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):g}"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class IntakeLimits:
    """What an upload may be, and what intake produces."""

    #: Upload size; checked before any parsing. Telegram's getFile stops at 20 MB.
    max_bytes: int = 20 * 1024 * 1024
    #: Pixel count (width x height) read from the header; a 12000² PNG bomb is 144 Mpx.
    max_pixels: int = 50_000_000
    #: Longest side (panoramas and 20000x1 strips stop here).
    max_side: int = 16_384
    #: Shortest side.
    min_side: int = 128
    #: Face box size (longer side, in decoded pixels) below which the face is too far.
    min_face_px: int = 80
    #: A second face counts only if it is at least this fraction of the main face's size;
    #: smaller ones are people in the background, whom the crop leaves out.
    second_face_ratio: float = 0.5
    #: Output side limit (the output is square).
    output_max: int = 1024
    #: Output JPEG quality.
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_pixels, self.min_side, self.min_face_px) < 1:
            raise ValueError("IntakeLimits values must be positive")
        if not self.min_side <= self.max_side:
            raise ValueError(f"min_side {self.min_side} > max_side {self.max_side}")
        if not 0 < self.second_face_ratio <= 1:
            raise ValueError(f"second_face_ratio must be in (0, 1], got {self.second_face_ratio}")
        if self.output_max < 16:
            raise ValueError(f"output_max must be at least 16, got {self.output_max}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in 1..95, got {self.jpeg_quality}")


@dataclass(frozen=True)
class Selfie:
    """A normalised selfie: a square RGB JPEG and the face box in its coordinates."""

    jpeg: bytes
    width: int
    height: int
    face: FaceBox

    def __repr__(self) -> str:  # never put image bytes in a log line
        return f"Selfie({self.width}x{self.height}, {len(self.jpeg)} bytes, face={self.face})"


# --------------------------------------------------------------------------- decoding


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
    image, to_srgb = _decode(data, limits or IntakeLimits())
    return _apply_srgb_transform(image, to_srgb)


def _decode(
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
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise _identify_rejected(data) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's global check (>89 Mpx warns, >179 Mpx raises) fired inside open();
        # under a warnings-as-errors filter the warning arrives here as an exception.
        raise ImageTooLarge(None, None, limits) from None
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"open failed: {type(exc).__name__}") from None

    with image:
        width, height = image.size
        if width * height > limits.max_pixels or max(width, height) > limits.max_side:
            raise ImageTooLarge(width, height, limits)
        if min(width, height) < limits.min_side:
            raise ImageTooSmall(width, height, limits.min_side)
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
            raise ImageTooLarge(width, height, limits) from None
        except _DECODE_ERRORS as exc:
            raise CorruptImage(f"{format_name} decode failed: {type(exc).__name__}") from None
        _apply_exif_orientation(image)
        pixels, to_srgb = _with_srgb_transform(image)
        pixels.info.pop("icc_profile", None)  # sRGB once `to_srgb` is applied; never kept
        return pixels, to_srgb


def _apply_exif_orientation(image: Image.Image) -> None:
    """Rotate/flip per EXIF Orientation in place; a malformed EXIF block is ignored."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except (*_DECODE_ERRORS, KeyError, TypeError):
        # Broken EXIF in an otherwise good photo: keep the pixels as stored.
        return


_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
#: Decoded modes an ICC profile of each colour space can describe.
_GREY_MODES = _SIXTEEN_BIT_MODES | {"1", "L", "LA", "La", "I", "F"}
_RGB_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "P", "PA"})


# --------------------------------------------------------------------------- colour


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


def _with_srgb_transform(
    image: Image.Image,
) -> tuple[Image.Image, ImageCms.ImageCmsTransform | None]:
    """A loaded image as 8-bit pixels in its profile's mode, with the transform to sRGB;
    or, without a usable profile, as 8-bit RGB taken as sRGB (transform None).

    The pixels are a copy: the caller closes `image`.
    """
    icc = image.info.get("icc_profile")
    if not icc or not isinstance(icc, bytes):
        return _to_rgb(image), None
    try:
        source_mode, transform = _srgb_transform(icc)
        if source_mode == "RGB" and image.mode in _RGB_MODES:
            return _to_rgb(image), transform
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
        return _to_rgb(image), None


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


def _apply_srgb_transform(
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
        return _to_rgb(image)
    converted.info.pop("icc_profile", None)  # Pillow attaches the output (sRGB) profile
    return converted


def _to_rgb(image: Image.Image) -> Image.Image:
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


# Signatures for naming what was sent when no allowed format opened it.
# (prefix, offset, name, is_image)
_SIGNATURES: tuple[tuple[bytes, int, str, bool], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG", True),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", True),
    (b"GIF87a", 0, "GIF", True),
    (b"GIF89a", 0, "GIF", True),
    (b"WEBP", 8, "WEBP", True),
    (b"II*\x00", 0, "TIFF", True),
    (b"MM\x00*", 0, "TIFF", True),
    (b"\x00\x00\x01\x00", 0, "ICO", True),
    (b"8BPS", 0, "PSD", True),
    (b"%!PS", 0, "EPS", True),
    (b"\xc5\xd0\xd3\xc6", 0, "EPS", True),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "JPEG 2000", True),
    (b"\xff\x4f\xff\x51", 0, "JPEG 2000", True),
    (b"\xff\x0a", 0, "JPEG XL", True),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "JPEG XL", True),
    (b"qoif", 0, "QOI", True),
    (b"DDS ", 0, "DDS", True),
    (b"%PDF", 0, N_("a PDF document"), False),
    (b"PK\x03\x04", 0, N_("a ZIP archive"), False),
    (b"PK\x05\x06", 0, N_("a ZIP archive"), False),
    (b"\x1f\x8b", 0, N_("a compressed archive"), False),
    (b"Rar!", 0, N_("a compressed archive"), False),
    (b"7z\xbc\xaf\x27\x1c", 0, N_("a compressed archive"), False),
)
_SUPPORTED_NAMES = frozenset({"JPEG", "PNG", "GIF", "WEBP"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"})


def _identify_rejected(data: bytes) -> IntakeError:  # noqa: PLR0911  # one return per kind
    """The error for bytes that no allowed format would open: name what they are."""
    if data[-18:] == b"TRUEVISION-XFILE.\x00":  # TGA has no magic at the start
        return UnsupportedFormat("TGA")
    for prefix, offset, name, is_image in _SIGNATURES:
        if data[offset : offset + len(prefix)] == prefix:
            if name in _SUPPORTED_NAMES:
                return CorruptImage(f"{name} signature but unreadable")
            return UnsupportedFormat(name) if is_image else NotAnImage(name)
    if data[4:8] == b"ftyp":
        if data[8:12] in _HEIF_BRANDS:
            return CorruptImage("HEIF/AVIF signature but unreadable")
        return NotAnImage(N_("a video"))
    if data[:2] == b"BM" and len(data) >= 26 and data[6:10] == b"\x00\x00\x00\x00":
        return UnsupportedFormat("BMP")
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head:
        return UnsupportedFormat("SVG")
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return NotAnImage(N_("a web page"))
    if _looks_like_text(data[:4096]):
        return NotAnImage(N_("a text file"))
    return NotAnImage(None)


def _looks_like_text(sample: bytes) -> bool:
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return bool(text) and printable / len(text) > 0.95


# --------------------------------------------------------------------------- intake


class SelfieIntake:
    """Turns an upload into a `Selfie`: safe decode, exactly one face, square crop.

    Synchronous and CPU-bound (~tens of ms); the bot calls `process` through
    `asyncio.to_thread`. Thread safety follows the detector's (see `DlibHogDetector`).
    """

    def __init__(self, detector: FaceDetector, limits: IntakeLimits | None = None) -> None:
        self.detector = detector
        self.limits = limits or IntakeLimits()

    def process(self, data: bytes) -> Selfie:
        """Validate and normalise one upload; raises an `IntakeError` subclass if unusable."""
        image, to_srgb = _decode(data, self.limits)
        # Grey or CMYK pixels with a profile: a plain RGB view is good enough to find a face.
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        face = self._single_face(self.detector.detect(rgb))
        crop, crop_face = _portrait_crop(image, face)
        side = min(crop.width, self.limits.output_max)
        if crop.width > side:
            crop_face = crop_face.scaled(side / crop.width)
            crop = crop.resize((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        crop = _apply_srgb_transform(crop, to_srgb)  # on the output pixels only: cheapest
        out = io.BytesIO()
        crop.save(out, "JPEG", quality=self.limits.jpeg_quality, optimize=True)
        return Selfie(
            jpeg=out.getvalue(),
            width=crop.width,
            height=crop.height,
            face=crop_face.clipped(crop.width, crop.height),
        )

    def _single_face(self, faces: list[FaceBox]) -> FaceBox:
        """The one face to use, or the error that says why there isn't one."""
        if not faces:
            raise NoFaceFound("no face above the detector threshold")
        main = max(faces, key=lambda f: (f.size, f.score))
        prominent = [f for f in faces if f.size >= self.limits.second_face_ratio * main.size]
        if len(prominent) > 1:
            raise MultipleFaces(len(prominent))
        if main.size < self.limits.min_face_px:
            raise FaceTooSmall(main.size, self.limits.min_face_px)
        return main


def _portrait_crop(image: Image.Image, face: FaceBox) -> tuple[Image.Image, FaceBox]:
    """A square crop around `face` with portrait framing, and the face in its pixels.

    The crop is CROP_FACE_RATIO times the face, shrunk to fit the image where it can stay
    at least MIN_CROP_FACE_RATIO times the face, and moved inside the image; only a face
    that nearly fills the photo gets its square padded (with the photo's edge colour).
    """
    width, height = image.size
    side = round(CROP_FACE_RATIO * face.size)
    if side > min(width, height):
        side = max(min(width, height), round(MIN_CROP_FACE_RATIO * face.size))
    center_x, center_y = face.center
    left = _place(round(center_x - side / 2), side, width)
    top = _place(round(center_y - FACE_CENTER_Y * side), side, height)
    box = (left, top, left + side, top + side)
    if left >= 0 and top >= 0 and left + side <= width and top + side <= height:
        crop = image.crop(box)
    else:
        inner = (max(left, 0), max(top, 0), min(left + side, width), min(top + side, height))
        part = image.crop(inner)
        crop = Image.new(image.mode, (side, side), _edge_colour(part))
        crop.paste(part, (inner[0] - left, inner[1] - top))
    return crop, face.translated(-left, -top)


def _place(start: int, side: int, limit: int) -> int:
    """Move a window [start, start+side) inside [0, limit) when it fits, else keep it."""
    if side <= limit:
        return min(max(start, 0), limit - side)
    return start


def _edge_colour(image: Image.Image) -> tuple[int, ...]:
    """The mean colour of an image's outermost rows and columns (for padding), per band."""
    pixels = np.asarray(image).astype(np.float64).reshape(image.height, image.width, -1)
    edges = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return tuple(int(v) for v in np.rint(edges.mean(axis=0)))


def load_selfie(jpeg: bytes) -> Image.Image:
    """Load a `Selfie.jpeg` (our own normalised output) as a plain RGB image (worker side)."""
    try:
        with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as image:
            image.load()
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise CorruptImage(f"stored selfie unreadable: {type(exc).__name__}") from None
