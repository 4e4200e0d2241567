"""ICC v2 colour profiles built from numbers, for tests (Pillow can only create sRGB, LAB
and XYZ profiles, and no free profile ships with the repository).

- `rgb_profile`: a display-class matrix/TRC RGB profile from xy primaries, a white point
  and a pure gamma curve (`display_p3()` and `adobe_rgb()` are the usual ones);
- `grey_profile`: a grey TRC profile (`grey_profile(1.0)` is linear light);
- `cmyk_profile`: an output-class CMYK profile whose A2B0 lut16 (9 nodes per ink, 39 KB)
  models an ideal press in linear light: red = (1 - C)(1 - K), green = (1 - M)(1 - K),
  blue = (1 - Y)(1 - K), sRGB primaries. Its sRGB colour is `cmyk_model_srgb`; littlecms
  lands within a level or two of it in light and mid tones (interpolation errors grow in
  deep shadows), far from Pillow's naive CMYK conversion, which applies the same
  products to gamma-encoded values;
- `rgb_profile_without_colorants`: parses, but littlecms cannot build a transform from it.

Colorants are adapted to the D50 connection space with the Bradford transform, as ICC
requires. Layout follows ICC.1:2001-04 (version 2.1).
"""

from __future__ import annotations

import functools
import struct
from typing import Any

import numpy as np

D50 = (0.9642, 1.0, 0.8249)
D65_XY = (0.3127, 0.3290)
SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
DISPLAY_P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_RGB_PRIMARIES = ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060))

_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)

Floats = np.ndarray[Any, np.dtype[np.float64]]


def xy_to_xyz(x: float, y: float) -> Floats:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(primaries: tuple[tuple[float, float], ...], white: tuple[float, float]) -> Floats:
    """Linear RGB -> XYZ (white Y = 1) in the white point's own adaptation."""
    columns = np.stack([xy_to_xyz(x, y) for x, y in primaries], axis=1)
    scale = np.linalg.solve(columns, xy_to_xyz(*white))
    matrix: Floats = columns * scale
    return matrix


def bradford(source_white: Floats) -> Floats:
    """XYZ under `source_white` -> XYZ under D50."""
    cone_src = _BRADFORD @ source_white
    cone_dst = _BRADFORD @ np.array(D50)
    adapt: Floats = np.linalg.inv(_BRADFORD) @ np.diag(cone_dst / cone_src) @ _BRADFORD
    return adapt


def srgb_encode(linear: Floats) -> Floats:
    """Linear light 0..1 -> sRGB 0..255 (float; the IEC 61966-2-1 curve)."""
    v = np.clip(linear, 0.0, 1.0)
    encoded = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
    scaled: Floats = encoded * 255.0
    return scaled


# --------------------------------------------------------------------------- encoding


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: tuple[float, float, float] | Floats) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15f16(float(v)) for v in xyz)


def _gamma_tag(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)  # no Unicode description
        + struct.pack(">HB", 0, 0)  # no ScriptCode description
        + b"\0" * 67
    )


def _text_tag(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def _lut16_tag(inputs: int, outputs: int, grid: int, clut: Floats) -> bytes:
    """A lut16Type with identity 2-entry input/output curves around a CLUT of 0..1 floats."""
    identity = struct.pack(">HH", 0, 65535)
    table = np.clip(np.rint(clut.reshape(-1) * 65535), 0, 65535).astype(">u2").tobytes()
    matrix = b"".join(_s15f16(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return (
        b"mft2\0\0\0\0"
        + struct.pack(">BBBB", inputs, outputs, grid, 0)
        + matrix
        + struct.pack(">HH", 2, 2)
        + identity * inputs
        + table
        + identity * outputs
    )


def build_profile(
    device_class: bytes, colour_space: bytes, tags: list[tuple[bytes, bytes]]
) -> bytes:
    """Header + tag table + 4-byte aligned tag data; identical payloads share one copy."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries = []
    data = b""
    placed: dict[bytes, tuple[int, int]] = {}
    for signature, payload in tags:
        if payload not in placed:
            data += b"\0" * (-len(data) % 4)
            placed[payload] = (offset + len(data), len(payload))
            data += payload
        entries.append(signature + struct.pack(">II", *placed[payload]))
    body = struct.pack(">I", len(tags)) + b"".join(entries) + data
    size = 128 + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"  # preferred CMM
        + struct.pack(">I", 0x02100000)
        + device_class
        + colour_space
        + b"XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 4  # platform
        + struct.pack(">I", 0)  # flags
        + b"\0" * 8  # manufacturer, model
        + b"\0" * 8  # attributes
        + struct.pack(">I", 0)  # perceptual
        + b"".join(_s15f16(v) for v in D50)
        + b"\0" * 4  # creator
        + b"\0" * 44  # profile id (v4) and reserved
    )
    assert len(header) == 128
    return header + body


# --------------------------------------------------------------------------- profiles


def rgb_profile(
    primaries: tuple[tuple[float, float], ...],
    gamma: float,
    description: str,
    white: tuple[float, float] = D65_XY,
) -> bytes:
    """A matrix/TRC display profile: linear = encoded ** gamma, then the primaries."""
    adapted = bradford(xy_to_xyz(*white)) @ rgb_to_xyz(primaries, white)
    curve = _gamma_tag(gamma)
    return build_profile(
        b"mntr",
        b"RGB ",
        [
            (b"desc", _desc_tag(description)),
            (b"cprt", _text_tag("No copyright, test data")),
            (b"wtpt", _xyz_tag(D50)),
            (b"rXYZ", _xyz_tag(adapted[:, 0])),
            (b"gXYZ", _xyz_tag(adapted[:, 1])),
            (b"bXYZ", _xyz_tag(adapted[:, 2])),
            (b"rTRC", curve),
            (b"gTRC", curve),
            (b"bTRC", curve),
        ],
    )


def rgb_profile_without_colorants() -> bytes:
    """An RGB profile that parses but cannot be used: no rXYZ/gXYZ/bXYZ tags."""
    return build_profile(
        b"mntr",
        b"RGB ",
        [
            (b"desc", _desc_tag("Test broken RGB")),
            (b"wtpt", _xyz_tag(D50)),
            (b"rTRC", _gamma_tag(2.2)),
            (b"gTRC", _gamma_tag(2.2)),
            (b"bTRC", _gamma_tag(2.2)),
        ],
    )


@functools.cache
def display_p3(gamma: float = 2.2) -> bytes:
    """Display P3 primaries, D65, a pure gamma curve (Apple's uses the sRGB curve)."""
    return rgb_profile(DISPLAY_P3_PRIMARIES, gamma, "Test Display P3")


@functools.cache
def srgb_like(gamma: float = 2.2) -> bytes:
    """sRGB primaries with a pure gamma curve: what many old 'sRGB' profiles amount to."""
    return rgb_profile(SRGB_PRIMARIES, gamma, "Test sRGB gamma")


@functools.cache
def adobe_rgb() -> bytes:
    return rgb_profile(ADOBE_RGB_PRIMARIES, 563 / 256, "Test Adobe RGB (1998)")


@functools.cache
def grey_profile(gamma: float) -> bytes:
    return build_profile(
        b"mntr",
        b"GRAY",
        [
            (b"desc", _desc_tag(f"Test grey gamma {gamma:g}")),
            (b"cprt", _text_tag("No copyright, test data")),
            (b"wtpt", _xyz_tag(D50)),
            (b"kTRC", _gamma_tag(gamma)),
        ],
    )


#: CLUT nodes per ink (9^4 x 3 entries, 39 KB: a small real-world size).
_CMYK_GRID = 9


@functools.cache
def cmyk_profile() -> bytes:
    """The ideal linear-light press described in the module docstring (A2B0 only)."""
    to_xyz = bradford(xy_to_xyz(*D65_XY)) @ rgb_to_xyz(SRGB_PRIMARIES, D65_XY)
    nodes = np.linspace(0.0, 1.0, _CMYK_GRID)
    c, m, y, k = np.meshgrid(nodes, nodes, nodes, nodes, indexing="ij")
    linear = np.stack([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)], axis=-1)
    xyz = linear @ to_xyz.T
    # lut16 XYZ encoding is u1.15: 1.0 is 0x8000.
    clut = xyz * (32768 / 65535)
    return build_profile(
        b"prtr",
        b"CMYK",
        [
            (b"desc", _desc_tag("Test ideal linear press")),
            (b"cprt", _text_tag("No copyright, test data")),
            (b"wtpt", _xyz_tag(D50)),
            (b"A2B0", _lut16_tag(4, 3, _CMYK_GRID, clut)),
        ],
    )


def cmyk_model_srgb(cmyk: tuple[int, int, int, int]) -> tuple[float, float, float]:
    """The sRGB colour (0..255 floats) `cmyk_profile` gives ink amounts 0..255."""
    c, m, y, k = (v / 255 for v in cmyk)
    linear = np.array([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)])
    r, g, b = (float(v) for v in srgb_encode(linear))
    return (r, g, b)
