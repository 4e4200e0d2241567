"""The portrait crop: a square around the face with room below it for chin and shoulders.

More room below the face (chin, neck, shoulders) than above it, and the face centred
horizontally.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bot.faces import FaceBox

#: Crop side as a multiple of the face box size (the HOG box spans brows to chin).
CROP_FACE_RATIO = 2.4
#: The least crop side, as a multiple of the face box, before padding is used instead.
MIN_CROP_FACE_RATIO = 1.6
#: Where the face centre sits, as a fraction of the crop height from the top.
FACE_CENTER_Y = 0.45


def portrait_crop(image: Image.Image, face: FaceBox) -> tuple[Image.Image, FaceBox]:
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
