"""Pixel bombs: small files that decode into huge images, built without holding the image
(for tests/test_intake_budget.py and bench/pixel_bomb_bench.py)."""

from __future__ import annotations

import struct
import zlib


def plain_png(side: int, colour: bytes = b"\xc8\xb4\xa0") -> bytes:
    """A one-colour RGB PNG of `side` x `side`, compressed row by row (never in memory
    whole): 7000 x 7000 is ~157 KB on the wire and 147 MB of pixels."""
    row = b"\0" + colour * side
    packer = zlib.compressobj(9)
    return png(side, b"".join(packer.compress(row) for _ in range(side)) + packer.flush())


def png(side: int, idat: bytes = b"") -> bytes:
    """A PNG of `side` x `side` RGB pixels around `idat` (empty: a header alone)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
