"""Selfie intake: untrusted bytes in, one normalised square RGB JPEG around one face out.

Runs in the bot before anything is queued, so every problem is answered at once with a
typed `IntakeError` whose `user_message` is one plain line.

Decoding untrusted images safely (DESIGN.md §5), in this order:
1. byte limit, before anything parses the data;
2. a format allow-list (`Image.open(formats=...)`): JPEG, PNG, WEBP, HEIF/HEIC, AVIF and
   still GIF. Never EPS (Ghostscript), SVG, TIFF, ICO, TGA, BMP, PSD;
3. dimensions read from the header right after `open()`, before any pixel is decoded:
   a per-call pixel and side limit (Pillow's global MAX_IMAGE_PIXELS is not touched; its
   DecompressionBombWarning/Error, should it fire first, also maps to `ImageTooLarge`);
4. animations rejected (still photos only);
5. `draft()` so big JPEGs decode at 1/2, 1/4 or 1/8 scale (never below the output size);
6. truncated or broken data raises `CorruptImage`;
7. EXIF orientation applied, then 16-bit scaled (not clipped) to 8-bit, CMYK and palettes
   converted, alpha flattened on white: always plain RGB.

The face crop is square with portrait framing: more room below the face (chin, neck,
shoulders) than above it, and the face centred horizontally.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bot.errors import AvatarbotError
from bot.faces import FaceBox, FaceDetector

#: Formats Pillow may use to open an upload; first frame only, animations are refused.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF", "GIF")
#: Formats that can hold an animation, which intake refuses. A HEIF with several
#: top-level images (bursts) is read through its primary image instead.
_ANIMATABLE = frozenset({"PNG", "WEBP", "AVIF", "GIF"})
#: What users are told they may send.
_FRIENDLY_FORMATS = "JPEG, PNG, WEBP or HEIC"

#: Crop side as a multiple of the face box size (the HOG box spans brows to chin).
CROP_FACE_RATIO = 2.4
#: The least crop side, as a multiple of the face box, before padding is used instead.
MIN_CROP_FACE_RATIO = 1.6
#: Where the face centre sits, as a fraction of the crop height from the top.
FACE_CENTER_Y = 0.45

# Exceptions Pillow's decoders raise on malformed data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


# --------------------------------------------------------------------------- errors


class IntakeError(AvatarbotError):
    """The upload cannot become a selfie; `user_message` says why in one line."""

    user_message = "I couldn't use that picture. Please send a clear photo of your face."


class NotAnImage(IntakeError):
    """The bytes are not an image at all (empty, text, a web page, a PDF, an archive...)."""

    def __init__(self, kind: str | None = None) -> None:
        self.kind = kind
        if kind:
            message = f"That looks like {kind}, not a photo. Please send a photo of your face."
        else:
            message = (
                "That file isn't a picture I can read. "
                f"Please send a photo of your face ({_FRIENDLY_FORMATS})."
            )
        super().__init__(f"not an image: {kind or 'unrecognised data'}", user_message=message)


class UnsupportedFormat(IntakeError):
    """An image in a format intake does not decode (EPS, SVG, TIFF, ICO, TGA, ...)."""

    def __init__(self, format_name: str) -> None:
        self.format_name = format_name
        super().__init__(
            f"unsupported image format: {format_name}",
            user_message=(
                f"{format_name} images aren't supported. Please send a {_FRIENDLY_FORMATS} photo."
            ),
        )


class FileTooLarge(IntakeError):
    """More bytes than `IntakeLimits.max_bytes`; nothing was parsed."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"file of {size} bytes exceeds the {limit}-byte limit",
            user_message=(
                f"That file is too big (the limit is {_megabytes(limit)}). "
                "Please send a smaller photo."
            ),
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
            user_message=(
                "That image is too large "
                f"(the limit is {limits.max_pixels / 1e6:g} megapixels and "
                f"{limits.max_side} pixels a side). Please send a normal photo."
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
            user_message=(
                f"That image is too small. Please send a photo of at least "
                f"{min_side} × {min_side} pixels."
            ),
        )


class AnimatedImage(IntakeError):
    """An animation (GIF, APNG, animated WEBP/AVIF)."""

    def __init__(self, format_name: str) -> None:
        self.format_name = format_name
        super().__init__(
            f"animated {format_name}",
            user_message="That's an animation. Please send a still photo of your face.",
        )


class CorruptImage(IntakeError):
    """Looks like a supported image but is truncated or broken."""

    user_message = (
        "That picture seems damaged or incomplete. Please send it again or try another photo."
    )


class NoFaceFound(IntakeError):
    """The detector found no face it is confident about."""

    user_message = (
        "I couldn't find a face in that photo. Please face the camera, in good light, "
        "with nothing covering your face."
    )


class MultipleFaces(IntakeError):
    """More than one prominent face."""

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(
            f"{count} prominent faces",
            user_message=(
                "I found more than one face in that photo. Please send a photo of just you."
            ),
        )


class FaceTooSmall(IntakeError):
    """The face is smaller than `IntakeLimits.min_face_px` (too far from the camera)."""

    def __init__(self, face_px: int, min_face_px: int) -> None:
        self.face_px = face_px
        self.min_face_px = min_face_px
        super().__init__(
            f"face of {face_px} px is smaller than {min_face_px} px",
            user_message=(
                "Your face is too small in that photo. Please come closer to the camera "
                "so your face fills more of the picture."
            ),
        )


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


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
    """Decode an untrusted upload into a loaded, upright, 8-bit RGB image.

    Raises an `IntakeError` subclass for every way the upload can be unusable. Big JPEGs
    come back reduced by `draft()` (never below `limits.output_max` on the short side).
    """
    limits = limits or IntakeLimits()
    if len(data) > limits.max_bytes:
        raise FileTooLarge(len(data), limits.max_bytes)
    if not data:
        raise NotAnImage("an empty file")
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
        return _to_rgb(image)


def _apply_exif_orientation(image: Image.Image) -> None:
    """Rotate/flip per EXIF Orientation in place; a malformed EXIF block is ignored."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except (*_DECODE_ERRORS, KeyError, TypeError):
        # Broken EXIF in an otherwise good photo: keep the pixels as stored.
        return


_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded mode to 8-bit RGB: 16-bit and float scaled, alpha flattened on white."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return Image.fromarray(_grey_to_8bit(image), "L").convert("RGB")
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
    (b"%PDF", 0, "a PDF document", False),
    (b"PK\x03\x04", 0, "a ZIP archive", False),
    (b"PK\x05\x06", 0, "a ZIP archive", False),
    (b"\x1f\x8b", 0, "a compressed archive", False),
    (b"Rar!", 0, "a compressed archive", False),
    (b"7z\xbc\xaf\x27\x1c", 0, "a compressed archive", False),
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
        return NotAnImage("a video")
    if data[:2] == b"BM" and len(data) >= 26 and data[6:10] == b"\x00\x00\x00\x00":
        return UnsupportedFormat("BMP")
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head:
        return UnsupportedFormat("SVG")
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return NotAnImage("a web page")
    if _looks_like_text(data[:4096]):
        return NotAnImage("a text file")
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
        image = decode_image(data, self.limits)
        rgb = np.asarray(image)
        face = self._single_face(self.detector.detect(rgb))
        crop, crop_face = _portrait_crop(image, face)
        side = min(crop.width, self.limits.output_max)
        if crop.width > side:
            crop_face = crop_face.scaled(side / crop.width)
            crop = crop.resize((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
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
        crop = Image.new("RGB", (side, side), _edge_colour(part))
        crop.paste(part, (inner[0] - left, inner[1] - top))
    return crop, face.translated(-left, -top)


def _place(start: int, side: int, limit: int) -> int:
    """Move a window [start, start+side) inside [0, limit) when it fits, else keep it."""
    if side <= limit:
        return min(max(start, 0), limit - side)
    return start


def _edge_colour(image: Image.Image) -> tuple[int, int, int]:
    """The mean colour of an image's outermost rows and columns (for padding)."""
    pixels = np.asarray(image).astype(np.float64)
    edges = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    r, g, b = (int(v) for v in np.rint(edges.mean(axis=0)))
    return (r, g, b)


def load_selfie(jpeg: bytes) -> Image.Image:
    """Load a `Selfie.jpeg` (our own normalised output) as a plain RGB image (worker side)."""
    try:
        with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as image:
            image.load()
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise CorruptImage(f"stored selfie unreadable: {type(exc).__name__}") from None
