"""What an upload may be, and what intake produces."""

from __future__ import annotations

from dataclasses import dataclass


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
    #: A photo whose short side is below this, and in which no face is found, is answered
    #: as too small to find a face in (not as "no face"): the detector misses faces under
    #: ~40 px, and a head-and-shoulders photo this size holds a face of `min_face_px`.
    small_photo_side: int = 256
    #: A second face counts only if it is at least this fraction of the main face's size;
    #: smaller ones are people in the background, whom the crop leaves out.
    second_face_ratio: float = 0.5
    #: Output side limit (the output is square).
    output_max: int = 1024
    #: Output JPEG quality.
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        positive = (self.max_bytes, self.max_pixels, self.min_side, self.min_face_px)
        if min(*positive, self.small_photo_side) < 1:
            raise ValueError("IntakeLimits values must be positive")
        if not self.min_side <= self.max_side:
            raise ValueError(f"min_side {self.min_side} > max_side {self.max_side}")
        if not 0 < self.second_face_ratio <= 1:
            raise ValueError(f"second_face_ratio must be in (0, 1], got {self.second_face_ratio}")
        if self.output_max < 16:
            raise ValueError(f"output_max must be at least 16, got {self.output_max}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in 1..95, got {self.jpeg_quality}")
