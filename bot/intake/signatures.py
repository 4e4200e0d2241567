"""Naming what was sent when no allowed image format opened it (a PDF, a TIFF, a web page).

`identify_rejected` reads only leading (and, for TGA, trailing) bytes: it never parses.
What a non-image is called ("a PDF document") is a message id, translated where it is told.
"""

from __future__ import annotations

from bot.i18n import N_
from bot.intake.errors import CorruptImage, IntakeError, NotAnImage, UnsupportedFormat

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


def identify_rejected(data: bytes) -> IntakeError:  # noqa: PLR0911  # one return per kind
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
