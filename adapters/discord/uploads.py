"""Fitting result images into one Discord message's upload limit.

Discord refuses a message whose files exceed the limit (`interaction.filesize_limit`,
10 MiB unless the server is boosted). Rather than fail, the images are sent as they are
when they fit; otherwise re-encoded as JPEG (stepping the quality down); otherwise fewer
variants are sent and the caption says so (the "Original file" button still has them).
A JPEG re-encode drops the C2PA manifest (chat apps strip it from photos anyway); the
invisible watermark survives JPEG, which is why it exists.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from bot.replies import AvatarImage

#: Room left for the multipart framing and the JSON payload in the same request.
FRAMING_BYTES = 64 * 1024
JPEG_QUALITIES = (92, 85, 75, 60)


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes

    def __repr__(self) -> str:  # never image bytes in a log line
        return f"Upload({self.filename!r}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class FittedUploads:
    uploads: tuple[Upload, ...]
    dropped: int
    """Variants left out because even as JPEGs they did not fit."""
    reencoded: bool
    """True when the images were re-encoded as JPEG to fit."""


def fit_images(
    images: Sequence[AvatarImage], limit: int, stem: str, *, reencode: bool = True
) -> FittedUploads:
    """The most of `images` that fits in `limit` bytes, as files named `{stem}-{n}.ext`.

    With `reencode=False` (labelled originals) the bytes are never changed: only the
    number of files shrinks."""
    budget = max(0, limit - FRAMING_BYTES)
    originals = tuple(
        Upload(f"{stem}-{i + 1}.{im.extension}", im.data) for i, im in enumerate(images)
    )
    if _total(originals) <= budget:
        return FittedUploads(originals, dropped=0, reencoded=False)
    if not reencode:
        return _first_that_fit(originals, budget, reencoded=False)
    jpegs: tuple[Upload, ...] = ()
    for quality in JPEG_QUALITIES:
        jpegs = tuple(
            Upload(f"{stem}-{i + 1}.jpg", to_jpeg(im.data, quality)) for i, im in enumerate(images)
        )
        if _total(jpegs) <= budget:
            return FittedUploads(jpegs, dropped=0, reencoded=True)
    # Even the smallest JPEGs do not all fit: keep as many as do, in order.
    return _first_that_fit(jpegs, budget, reencoded=True)


def _first_that_fit(uploads: Sequence[Upload], budget: int, *, reencoded: bool) -> FittedUploads:
    kept: list[Upload] = []
    for upload in uploads:
        if _total(kept) + len(upload.data) > budget:
            break
        kept.append(upload)
    return FittedUploads(tuple(kept), dropped=len(uploads) - len(kept), reencoded=reencoded)


def to_jpeg(data: bytes, quality: int) -> bytes:
    """Re-encode one of our own result images (trusted bytes) as an RGB JPEG."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def _total(uploads: Sequence[Upload]) -> int:
    return sum(len(u.data) for u in uploads)
