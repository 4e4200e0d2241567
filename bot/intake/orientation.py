"""Finding a face in a photo whose pixels are stored sideways or upside down.

EXIF orientation is applied at decoding, but some editors, screenshots and messaging apps
rotate the pixels and drop the tag, and a frontal detector finds no face in a face on its
side. So when none is found upright, the other three orientations are searched, sideways
first (a phone held the other way), then upside down, each with the detector's quick
look (`FaceDetector.detect_quick`: a face far away in a turned photo is not looked for).
A photo with an upright face pays nothing; only one in which no face is found upright
pays for up to three more looks (see docs/intake.md for the cost).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from bot.faces import FaceBox, FaceDetector, RGBArray

#: The turns tried after upright, in order, as (Pillow transpose, counter-clockwise
#: quarter turns, as `np.rot90` and `FaceDetector.detect_quick` count them).
TURNS: tuple[tuple[Image.Transpose, int], ...] = (
    (Image.Transpose.ROTATE_90, 1),
    (Image.Transpose.ROTATE_270, 3),
    (Image.Transpose.ROTATE_180, 2),
)


@dataclass(frozen=True)
class OrientedFaces:
    """The faces found, in the pixels of the photo turned by `turn` (None: as stored)."""

    faces: list[FaceBox]
    turn: Image.Transpose | None = None

    def upright(self, image: Image.Image) -> Image.Image:
        """`image` turned the way its faces were found (itself when upright)."""
        return image if self.turn is None else image.transpose(self.turn)


def find_faces(detector: FaceDetector, rgb: RGBArray) -> OrientedFaces:
    """Faces in `rgb` as stored; if none, in the first other orientation that has any
    (quick looks only)."""
    faces = detector.detect(rgb)
    if faces:
        return OrientedFaces(faces)
    for turn, quarter_turns in TURNS:
        faces = detector.detect_quick(rgb, quarter_turns)
        if faces:
            return OrientedFaces(faces, turn)
    return OrientedFaces([])
