"""Selfie intake: untrusted bytes in, one normalised square RGB JPEG around one face out.

Runs in the bot before anything is queued, so every problem is answered at once with a
typed `IntakeError` whose `user_message` is one plain line. The steps live in
`bot.intake`: safe decoding (`decoding`), colour (`colour`), finding the face in any
orientation (`orientation`), the portrait crop (`framing`). `SelfieIntake` finds the face
on the pixels as decoded (the detector needs no exact colour) and converts only the
output square to sRGB, so a 12 Mpx photo pays for 1 Mpx at most.

`load_selfie` is the other side: the worker's (and the CLI's) load of a `Selfie.jpeg`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from bot.faces import FaceBox, FaceDetector
from bot.intake.colour import apply_srgb_transform
from bot.intake.decoding import ALLOWED_FORMATS, DECODE_ERRORS, decode, decode_image
from bot.intake.errors import (
    AnimatedImage,
    CorruptImage,
    FaceTooSmall,
    FaceTooSmallToFind,
    FileTooLarge,
    ImageTooLarge,
    ImageTooSmall,
    IntakeError,
    MultipleFaces,
    NoFaceFound,
    NotAnImage,
    UnsupportedFormat,
)
from bot.intake.framing import portrait_crop
from bot.intake.limits import IntakeLimits
from bot.intake.orientation import find_faces

__all__ = [
    "ALLOWED_FORMATS",
    "AnimatedImage",
    "CorruptImage",
    "FaceTooSmall",
    "FaceTooSmallToFind",
    "FileTooLarge",
    "ImageTooLarge",
    "ImageTooSmall",
    "IntakeError",
    "IntakeLimits",
    "MultipleFaces",
    "NoFaceFound",
    "NotAnImage",
    "Selfie",
    "SelfieIntake",
    "UnsupportedFormat",
    "decode_image",
    "load_selfie",
]


@dataclass(frozen=True)
class Selfie:
    """A normalised selfie: a square RGB JPEG and the face box in its coordinates."""

    jpeg: bytes
    width: int
    height: int
    face: FaceBox

    def __repr__(self) -> str:  # never put image bytes in a log line
        return f"Selfie({self.width}x{self.height}, {len(self.jpeg)} bytes, face={self.face})"


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
        image, to_srgb = decode(data, self.limits)
        # Grey or CMYK pixels with a profile: a plain RGB view is good enough to find a face.
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        found = find_faces(self.detector, rgb)
        face = self._single_face(found.faces, image.size)
        crop, crop_face = portrait_crop(found.upright(image), face)
        side = min(crop.width, self.limits.output_max)
        if crop.width > side:
            crop_face = crop_face.scaled(side / crop.width)
            crop = crop.resize((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        crop = apply_srgb_transform(crop, to_srgb)  # on the output pixels only: cheapest
        out = io.BytesIO()
        crop.save(out, "JPEG", quality=self.limits.jpeg_quality, optimize=True)
        return Selfie(
            jpeg=out.getvalue(),
            width=crop.width,
            height=crop.height,
            face=crop_face.clipped(crop.width, crop.height),
        )

    def _single_face(self, faces: list[FaceBox], size: tuple[int, int]) -> FaceBox:
        """The one face to use, or the error that says why there isn't one."""
        if not faces:
            if min(size) < self.limits.small_photo_side:
                raise FaceTooSmallToFind(*size, self.limits.small_photo_side)
            raise NoFaceFound("no face above the detector threshold in any orientation")
        main = max(faces, key=lambda f: (f.size, f.score))
        prominent = [f for f in faces if f.size >= self.limits.second_face_ratio * main.size]
        if len(prominent) > 1:
            raise MultipleFaces(len(prominent))
        if main.size < self.limits.min_face_px:
            raise FaceTooSmall(main.size, self.limits.min_face_px)
        return main


def load_selfie(jpeg: bytes) -> Image.Image:
    """Load a `Selfie.jpeg` (our own normalised output) as a plain RGB image.

    The worker's and the CLI's way in: anything but a readable JPEG raises `CorruptImage`.
    """
    try:
        with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as image:
            image.load()
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except (UnidentifiedImageError, Image.DecompressionBombError, *DECODE_ERRORS) as exc:
        raise CorruptImage(f"stored selfie unreadable: {type(exc).__name__}") from None
