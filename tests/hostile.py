"""Hostile, broken and awkward uploads, built in memory; reusable by any suite.

Every builder returns the bytes of one file. `BAD_FILES` maps a case name to its builder
and the `IntakeError` subclass intake must raise; `GOOD_FILES` maps a case name to a
builder of an awkward-but-valid selfie that intake must accept. Builders are cached, so a
case is built once per test session. Nothing here touches the disk or the network.

The good variants derive from tests/data/astronaut.jpg (NASA portrait of Eileen
Collins, public domain, 512x512, face box ~88 px at (179, 83)). Colour profiles come
from `tests.icc`, which builds them from numbers.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

from bot.selfie import (
    AnimatedImage,
    CorruptImage,
    FaceTooSmall,
    FaceTooSmallToFind,
    FileTooLarge,
    ImageTooLarge,
    ImageTooSmall,
    IntakeError,
    IntakeLimits,
    MultipleFaces,
    NoFaceFound,
    NotAnImage,
    UnsupportedFormat,
)
from tests import icc

ASTRONAUT = Path(__file__).parent / "data" / "astronaut.jpg"


# --------------------------------------------------------------------------- helpers


@functools.cache
def astronaut() -> Image.Image:
    """The upright astronaut portrait as RGB (treat as read-only)."""
    with Image.open(ASTRONAUT) as image:
        return image.convert("RGB")


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("selfie.jpg", ASTRONAUT.read_bytes())
        archive.writestr("readme.txt", "not a photo\n" * 100)
    return out.getvalue()


# --------------------------------------------------------------------------- bad files


def empty() -> bytes:
    return b""


@functools.cache
def random_bytes() -> bytes:
    return np.random.default_rng(1).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes()


def text_named_jpg() -> bytes:
    return ("Dear bot, here is my selfie.\n" * 200).encode()


def html_page() -> bytes:
    return (
        b"<!DOCTYPE html>\n<html><head><title>selfie</title></head><body>"
        + (b'<img src="me.jpg">' * 50)
        + b"</body></html>\n"
    )


@functools.cache
def truncated_jpeg() -> bytes:
    data = ASTRONAUT.read_bytes()
    return data[: len(data) // 2]


@functools.cache
def truncated_png() -> bytes:
    data = encode(astronaut(), "PNG")
    return data[: len(data) // 2]


@functools.cache
def png_bad_crc() -> bytes:
    """A PNG whose IHDR checksum is wrong."""
    data = bytearray(encode(astronaut(), "PNG"))
    data[29] ^= 0xFF  # IHDR: 8 signature + 4 length + 4 type + 13 data -> CRC at 29..32
    return bytes(data)


@functools.cache
def png_bomb(side: int = 12_000) -> bytes:
    """A side x side 8-bit grey PNG of zeros: 144 Mpx decoded, ~140 KB on the wire."""
    compressor = zlib.compressobj(9)
    rows = b"\x00" * ((side + 1) * 100)  # 100 rows of filter byte + pixels
    chunks = [compressor.compress(rows) for _ in range(side // 100)]
    chunks.append(compressor.compress(b"\x00" * ((side + 1) * (side % 100))))
    chunks.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"".join(chunks))
        + png_chunk(b"IEND", b"")
    )


def one_pixel() -> bytes:
    return encode(Image.new("RGB", (1, 1), (200, 150, 120)), "PNG")


def strip_20000x1() -> bytes:
    return encode(Image.new("L", (20_000, 1), 128), "PNG")


@functools.cache
def gif_600_frames(frames: int = 600) -> bytes:
    """A 256x256 GIF of `frames` 1x1 frames: a few KB that naive decoding blows up."""
    header = b"GIF89a" + struct.pack("<HHBBB", 256, 256, 0x80, 0, 0)  # 2-colour table
    palette = b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    body = bytearray()
    for i in range(frames):
        body += b"\x21\xf9\x04\x00\x02\x00\x00\x00"  # graphic control: 20 ms delay
        body += b"\x2c" + struct.pack("<HHHHB", i % 256, i // 256, 1, 1, 0)
        body += b"\x02\x02\x44\x01\x00"  # LZW: one pixel of colour 0
    return header + palette + loop + bytes(body) + b"\x3b"


def _frames() -> list[Image.Image]:
    base = astronaut().resize((256, 256))
    return [base, base.rotate(90), base.rotate(180)]


@functools.cache
def animated_png() -> bytes:
    first, *rest = _frames()
    return encode(first, "PNG", save_all=True, append_images=rest, duration=100)


@functools.cache
def animated_webp() -> bytes:
    first, *rest = _frames()
    return encode(first, "WEBP", save_all=True, append_images=rest, duration=100)


def svg_named_jpg() -> bytes:
    return (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="512" '
        b'height="512"><circle cx="256" cy="256" r="200" fill="tan"/></svg>\n'
    )


@functools.cache
def eps_file() -> bytes:
    return encode(astronaut().resize((256, 256)), "EPS")


@functools.cache
def ico_named_jpg() -> bytes:
    return encode(astronaut().resize((256, 256)), "ICO", sizes=[(256, 256)])


@functools.cache
def tga_named_jpg() -> bytes:
    return encode(astronaut(), "TGA")


@functools.cache
def tiff_file() -> bytes:
    return encode(astronaut(), "TIFF")


@functools.cache
def bmp_file() -> bytes:
    return encode(astronaut(), "BMP")


@functools.cache
def pdf_file() -> bytes:
    return encode(astronaut(), "PDF")


@functools.cache
def zip_file() -> bytes:
    return zip_archive()


@functools.cache
def jpeg_header_then_zip() -> bytes:
    """A JPEG start-of-image and JFIF header followed by a zip archive."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + zip_archive()


def oversize(limit: int = IntakeLimits().max_bytes) -> bytes:
    """One byte over `limit`, starting like a JPEG."""
    return b"\xff\xd8\xff\xe0" + b"\x00" * (limit - 3)


@functools.cache
def no_face_gradient() -> bytes:
    ramp = np.linspace(0, 255, 800, dtype=np.float32)
    pixels = np.stack([np.add.outer(ramp[:600] * 0.5, ramp * 0.5)] * 3, axis=-1)
    pixels[..., 2] = 255 - pixels[..., 2]
    return encode(Image.fromarray(pixels.astype(np.uint8), "RGB"), "JPEG", quality=90)


@functools.cache
def no_face_texture() -> bytes:
    """The busy lower part of the astronaut photo (suit, flag): a real texture, no face."""
    return encode(astronaut().crop((0, 300, 512, 512)).resize((768, 318)), "JPEG", quality=90)


@functools.cache
def two_faces() -> bytes:
    canvas = Image.new("RGB", (1024, 512))
    canvas.paste(astronaut(), (0, 0))
    canvas.paste(astronaut(), (512, 0))
    return encode(canvas, "JPEG", quality=90)


@functools.cache
def tiny_face_on_canvas() -> bytes:
    """The portrait shrunk to 380 px on a 1200 px grey canvas: a ~65 px face, far away."""
    canvas = Image.new("RGB", (1200, 1200), (128, 128, 128))
    canvas.paste(astronaut().resize((380, 380), Image.Resampling.LANCZOS), (410, 300))
    return encode(canvas, "JPEG", quality=90)


@dataclass(frozen=True)
class BadFile:
    make: Callable[[], bytes]
    error: type[IntakeError]


BAD_FILES: dict[str, BadFile] = {
    "empty": BadFile(empty, NotAnImage),
    "random_bytes": BadFile(random_bytes, NotAnImage),
    "text_named_jpg": BadFile(text_named_jpg, NotAnImage),
    "html_page": BadFile(html_page, NotAnImage),
    "pdf": BadFile(pdf_file, NotAnImage),
    "zip": BadFile(zip_file, NotAnImage),
    "truncated_jpeg": BadFile(truncated_jpeg, CorruptImage),
    "truncated_png": BadFile(truncated_png, CorruptImage),
    "png_bad_crc": BadFile(png_bad_crc, CorruptImage),
    "jpeg_header_then_zip": BadFile(jpeg_header_then_zip, CorruptImage),
    "png_bomb_12000": BadFile(png_bomb, ImageTooLarge),
    "strip_20000x1": BadFile(strip_20000x1, ImageTooLarge),
    "one_pixel": BadFile(one_pixel, ImageTooSmall),
    "gif_600_frames": BadFile(gif_600_frames, AnimatedImage),
    "animated_png": BadFile(animated_png, AnimatedImage),
    "animated_webp": BadFile(animated_webp, AnimatedImage),
    "svg_named_jpg": BadFile(svg_named_jpg, UnsupportedFormat),
    "eps": BadFile(eps_file, UnsupportedFormat),
    "ico_named_jpg": BadFile(ico_named_jpg, UnsupportedFormat),
    "tga_named_jpg": BadFile(tga_named_jpg, UnsupportedFormat),
    "tiff": BadFile(tiff_file, UnsupportedFormat),
    "bmp": BadFile(bmp_file, UnsupportedFormat),
    "oversize": BadFile(oversize, FileTooLarge),
    "no_face_gradient": BadFile(no_face_gradient, NoFaceFound),
    "no_face_texture": BadFile(no_face_texture, NoFaceFound),
    "two_faces": BadFile(two_faces, MultipleFaces),
    "tiny_face_on_canvas": BadFile(tiny_face_on_canvas, FaceTooSmall),
}


# --------------------------------------------------------------------------- good files


def exif_rotated(orientation: int) -> bytes:
    """The upper 512x384 of the portrait stored rotated, with the EXIF tag that undoes it.

    Orientation 6 means "rotate 90° clockwise to display", so the pixels are stored turned
    90° counter-clockwise; 8 is the reverse, 3 is upside down.
    """
    upright = astronaut().crop((0, 0, 512, 384))
    stored = {
        3: Image.Transpose.ROTATE_180,
        6: Image.Transpose.ROTATE_90,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(upright.transpose(stored), "JPEG", quality=92, exif=exif.tobytes())


@functools.cache
def rotated_pixels(turn: Image.Transpose) -> bytes:
    """The 512x384 crop of `exif_rotated` with its pixels turned and no EXIF tag to undo
    it (what some editors, screenshots and messaging apps produce)."""
    return encode(astronaut().crop((0, 0, 512, 384)).transpose(turn), "JPEG", quality=92)


@functools.cache
def small_photo_128() -> bytes:
    """The whole portrait at 128x128: a face of ~22 px, under what the detector finds."""
    return encode(astronaut().resize((128, 128), Image.Resampling.LANCZOS), "JPEG", quality=90)


@functools.cache
def upright_landscape() -> bytes:
    """The same 512x384 crop as `exif_rotated`, stored upright (the reference)."""
    return encode(astronaut().crop((0, 0, 512, 384)), "JPEG", quality=92)


@functools.cache
def cmyk_jpeg() -> bytes:
    return encode(astronaut().convert("CMYK"), "JPEG", quality=92)


@functools.cache
def heic() -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(astronaut()).save(out, quality=85)
    return out.getvalue()


@functools.cache
def png_alpha() -> bytes:
    """RGBA: an opaque oval around the head, transparent corners."""
    rgba = astronaut().convert("RGBA")
    yy, xx = np.mgrid[0:512, 0:512]
    inside = ((xx - 256) / 240.0) ** 2 + ((yy - 220) / 250.0) ** 2 <= 1
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    rgba.putalpha(Image.fromarray(alpha, "L"))
    return encode(rgba, "PNG")


@functools.cache
def png_grey16() -> bytes:
    """A true 16-bit grey PNG: 8-bit grey x 257 plus fine detail in the low byte."""
    grey = np.asarray(astronaut().convert("L"), dtype=np.uint32) * 257
    detail = np.random.default_rng(2).integers(0, 200, grey.shape, dtype=np.uint32)
    sixteen = np.clip(grey + detail, 0, 65535).astype(np.uint16)
    return encode(Image.fromarray(sixteen), "PNG")


@functools.cache
def large_4000() -> bytes:
    return encode(astronaut().resize((4000, 4000), Image.Resampling.BICUBIC), "JPEG", quality=85)


@functools.cache
def webp() -> bytes:
    return encode(astronaut(), "WEBP", quality=85)


@functools.cache
def still_gif() -> bytes:
    return encode(astronaut(), "GIF")


@functools.cache
def polyglot_jpeg_zip() -> bytes:
    """A valid JPEG with a zip archive appended (a classic polyglot)."""
    return ASTRONAUT.read_bytes() + zip_archive()


@functools.cache
def huge_exif_jpeg() -> bytes:
    """A JPEG whose EXIF block is near the 64 KB segment maximum (a long description)."""
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010E] = "x" * 65_000  # ImageDescription
    return encode(astronaut(), "JPEG", quality=90, exif=exif.tobytes())


@functools.cache
def png_huge_exif_chunk() -> bytes:
    """A PNG with a 4 MB eXIf chunk of junk after a valid header (before IDAT)."""
    data = encode(astronaut(), "PNG")
    ihdr_end = 8 + 25
    junk = b"MM\x00*\x00\x00\x00\x08" + b"\xa5" * (4 * 1024 * 1024)
    return data[:ihdr_end] + png_chunk(b"eXIf", junk) + data[ihdr_end:]


# --- colour profiles --------------------------------------------------------------------

#: Not an ICC profile at all.
GARBAGE_PROFILE = b"definitely not a colour profile " * 16


@functools.cache
def jpeg_display_p3() -> bytes:
    """The portrait's pixels tagged Display P3 (what an iPhone JPEG carries)."""
    return encode(astronaut(), "JPEG", quality=92, icc_profile=icc.display_p3())


@functools.cache
def heic_display_p3() -> bytes:
    """A HEIC tagged Display P3, like an iPhone photo; same pixels as `heic()`."""
    image = astronaut().copy()
    image.info["icc_profile"] = icc.display_p3()
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, quality=85)
    return out.getvalue()


@functools.cache
def cmyk_jpeg_with_profile() -> bytes:
    """A CMYK print file with its CMYK profile embedded."""
    return encode(astronaut().convert("CMYK"), "JPEG", quality=92, icc_profile=icc.cmyk_profile())


@functools.cache
def png_grey16_with_profile() -> bytes:
    """The 16-bit grey PNG tagged with a linear-light grey profile."""
    with Image.open(io.BytesIO(png_grey16())) as grey:
        grey.load()
        return encode(grey, "PNG", icc_profile=icc.grey_profile(1.0))


@functools.cache
def jpeg_garbage_profile() -> bytes:
    """A JPEG whose ICC segment holds garbage."""
    return encode(astronaut(), "JPEG", quality=92, icc_profile=GARBAGE_PROFILE)


@functools.cache
def png_unusable_profile() -> bytes:
    """A PNG whose RGB profile parses but lacks its colorant tags (unusable)."""
    return encode(astronaut(), "PNG", icc_profile=icc.rgb_profile_without_colorants())


# --- polyglots and disguises, awkward formats that hold no usable face ------------------


@functools.cache
def gifar() -> bytes:
    """A GIF with a zip (a Java archive) appended: a GIFAR polyglot, no face."""
    return encode(Image.new("RGB", (300, 300), (120, 80, 40)), "GIF") + zip_archive()


@functools.cache
def png_php_polyglot() -> bytes:
    """A PNG carrying PHP in a tEXt chunk (upload-to-RCE polyglot), no face."""
    data = encode(Image.new("RGB", (300, 300), (10, 200, 40)), "PNG")
    payload = b"Comment\x00<?php system($_GET['c']); ?>"
    return data[:33] + png_chunk(b"tEXt", payload) + data[33:]


@functools.cache
def jpeg_html_polyglot() -> bytes:
    """A JPEG whose comment segment is a script tag (HTML/JPEG polyglot), no face."""
    return encode(
        Image.new("RGB", (300, 300), (200, 200, 200)), "JPEG", comment=b"<script>alert(1)</script>"
    )


@functools.cache
def jpeg_header_bomb() -> bytes:
    """A tiny JPEG whose frame header claims 60000 x 60000 pixels."""
    data = bytearray(encode(Image.new("L", (64, 64)), "JPEG"))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 60_000, 60_000)
    return bytes(data)


def svg_named_png() -> bytes:
    return (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="4000" '
        b'height="4000"><rect width="100%" height="100%"/></svg>'
    )


@functools.cache
def heic_truncated() -> bytes:
    data = heic()
    return data[: len(data) // 2]


def psd_file() -> bytes:
    """A Photoshop header (recognised, not allowed)."""
    return b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 512, 512, 8, 3) + b"\x00" * 64


@functools.cache
def cmyk_no_face() -> bytes:
    return encode(Image.new("CMYK", (300, 300), (0, 0, 0, 0)), "JPEG")


@functools.cache
def grey16_one_pixel() -> bytes:
    return encode(Image.new("I;16", (1, 1)), "PNG")


@functools.cache
def webp_16000x1() -> bytes:
    return encode(Image.new("RGB", (16_000, 1)), "WEBP")


BAD_FILES.update(
    {
        "gifar": BadFile(gifar, NoFaceFound),
        "png_php_polyglot": BadFile(png_php_polyglot, NoFaceFound),
        "jpeg_html_polyglot": BadFile(jpeg_html_polyglot, NoFaceFound),
        "jpeg_header_bomb": BadFile(jpeg_header_bomb, ImageTooLarge),
        "svg_named_png": BadFile(svg_named_png, UnsupportedFormat),
        "heic_truncated": BadFile(heic_truncated, CorruptImage),
        "psd": BadFile(psd_file, UnsupportedFormat),
        "cmyk_no_face": BadFile(cmyk_no_face, NoFaceFound),
        "grey16_one_pixel": BadFile(grey16_one_pixel, ImageTooSmall),
        "webp_16000x1": BadFile(webp_16000x1, ImageTooSmall),
        "small_photo_128": BadFile(small_photo_128, FaceTooSmallToFind),
    }
)


GOOD_FILES: dict[str, Callable[[], bytes]] = {
    "jpeg": ASTRONAUT.read_bytes,
    "exif_rotated_6": functools.partial(exif_rotated, 6),
    "exif_rotated_8": functools.partial(exif_rotated, 8),
    "exif_rotated_3": functools.partial(exif_rotated, 3),
    "cmyk_jpeg": cmyk_jpeg,
    "heic": heic,
    "png_alpha": png_alpha,
    "png_grey16": png_grey16,
    "large_4000": large_4000,
    "webp": webp,
    "still_gif": still_gif,
    "polyglot_jpeg_zip": polyglot_jpeg_zip,
    "huge_exif_jpeg": huge_exif_jpeg,
    "png_huge_exif_chunk": png_huge_exif_chunk,
    "jpeg_display_p3": jpeg_display_p3,
    "heic_display_p3": heic_display_p3,
    "cmyk_jpeg_with_profile": cmyk_jpeg_with_profile,
    "png_grey16_with_profile": png_grey16_with_profile,
    "jpeg_garbage_profile": jpeg_garbage_profile,
    "png_unusable_profile": png_unusable_profile,
    "rotated_pixels_90": functools.partial(rotated_pixels, Image.Transpose.ROTATE_90),
    "rotated_pixels_180": functools.partial(rotated_pixels, Image.Transpose.ROTATE_180),
    "rotated_pixels_270": functools.partial(rotated_pixels, Image.Transpose.ROTATE_270),
}
