"""Face detection behind a small interface.

`FaceDetector` has one method, `detect(rgb) -> list[FaceBox]`; the selfie intake only
depends on that, so a better detector (mediapipe's BlazeFace, YuNet, ...) can replace the
default without touching intake.

The default, `DlibHogDetector`, is dlib-bin's built-in HOG + linear SVM frontal detector:
nothing to download, a 4 MB wheel, and fast enough on a downscaled copy of the photo.
Its raw scores need a threshold; see docs/intake.md for the scores measured.
"""

from __future__ import annotations

import abc
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any

import dlib
import numpy as np
import numpy.typing as npt

RGBArray = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class FaceBox:
    """A detected face: an axis-aligned box in pixel coordinates plus a detector score.

    Scores are detector-specific; only their order and the detector's own threshold
    carry meaning.
    """

    left: int
    top: int
    width: int
    height: int
    score: float

    @property
    def right(self) -> int:
        """One past the last column, like a slice end."""
        return self.left + self.width

    @property
    def bottom(self) -> int:
        """One past the last row, like a slice end."""
        return self.top + self.height

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) of the box centre."""
        return (self.left + self.width / 2, self.top + self.height / 2)

    @property
    def size(self) -> int:
        """The longer side of the box, in pixels."""
        return max(self.width, self.height)

    def scaled(self, factor: float) -> FaceBox:
        """The same box in an image `factor` times as large (score unchanged)."""
        return FaceBox(
            left=round(self.left * factor),
            top=round(self.top * factor),
            width=max(1, round(self.width * factor)),
            height=max(1, round(self.height * factor)),
            score=self.score,
        )

    def translated(self, dx: int, dy: int) -> FaceBox:
        """The same box moved by (dx, dy)."""
        return FaceBox(self.left + dx, self.top + dy, self.width, self.height, self.score)

    def clipped(self, width: int, height: int) -> FaceBox:
        """The part of the box inside a `width` x `height` image (at least 1x1)."""
        left = min(max(self.left, 0), width - 1)
        top = min(max(self.top, 0), height - 1)
        right = min(max(self.right, left + 1), width)
        bottom = min(max(self.bottom, top + 1), height)
        return FaceBox(left, top, right - left, bottom - top, self.score)


class FaceDetector(abc.ABC):
    """Finds faces in an RGB image."""

    @abc.abstractmethod
    def detect(self, rgb: RGBArray) -> list[FaceBox]:
        """Faces in `rgb` (H x W x 3, uint8, RGB), best score first.

        Only faces the detector is confident about are returned; box coordinates are in
        `rgb`'s pixels and may reach past its borders.
        """

    def detect_quick(self, rgb: RGBArray, quarter_turns: int = 0) -> list[FaceBox]:
        """Faces in `rgb` turned `quarter_turns` times counter-clockwise (as `np.rot90`
        turns it), boxes in the turned image's pixels: a cheaper look than `detect` that
        may miss faces it would find (small ones).

        Intake uses it on a photo in which `detect` found no face upright. The default
        turns the photo and calls `detect`.
        """
        return self.detect(np.ascontiguousarray(np.rot90(rgb, quarter_turns)))


class DlibHogDetector(FaceDetector):
    """dlib's built-in HOG frontal face detector, with a score threshold.

    Speed: HOG cost grows with the pixel count and the HOG window is 80 px, so a large
    photo is searched on a copy whose long side is `fast_side` (640 px: a selfie's face
    fills an eighth of the frame or more), and boxes are mapped back. Small images (long
    side <= `upsample_below`) are instead upsampled once, finding faces from ~40 px.
    Only when the fast pass finds nothing is the photo searched again at an effective
    long side of `thorough_side` (downscaled, or upsampled by dlib when smaller), so a
    face that is merely far away is found (and can be reported as too small) rather than
    missed. That second pass costs several times the first and runs only on photos in
    which the first found no face.

    Threshold: the score is the SVM margin. On tests/data/astronaut.jpg the real face
    scores 1.2-1.6 (0.68 tilted by 10 degrees) and a textured patch on the suit
    0.10-0.13; the default `threshold` of 0.4 is three times the worst false hit and well
    below the weakest real face (see docs/intake.md).

    Thread safety and parallelism: dlib documents concurrent use of one object_detector as
    unsafe, so each dlib call borrows a detector from a small pool (one per core by default,
    `max_parallel`), creating one only when all are busy (~0.7 s each, once). The first is
    created with the instance unless `preload` is False (a one-shot command, which then
    refuses an unreadable file without paying for one). dlib releases
    the GIL while it runs, so `detect` through `asyncio.to_thread` keeps the event loop
    free and a burst of selfies is detected on every core.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.4,
        fast_side: int = 640,
        thorough_side: int = 1600,
        upsample_below: int = 400,
        max_parallel: int | None = None,
        preload: bool = True,
    ) -> None:
        if not 0 < fast_side <= thorough_side:
            raise ValueError(
                f"need 0 < fast_side <= thorough_side, got {fast_side} and {thorough_side}"
            )
        self.threshold = threshold
        self.fast_side = fast_side
        self.thorough_side = thorough_side
        self.upsample_below = upsample_below
        self.max_parallel = max(1, max_parallel or os.cpu_count() or 1)
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._created = 0
        self._create_lock = threading.Lock()
        if preload:  # so the first photo does not wait for it
            self._idle.put(dlib.get_frontal_face_detector())
            self._created = 1

    def detect(self, rgb: RGBArray) -> list[FaceBox]:
        faces = self.detect_quick(rgb)
        long_side = max(rgb.shape[0], rgb.shape[1])
        if not faces and long_side > self.upsample_below:
            # Second look for a face that is small in the frame: search the photo at
            # `thorough_side` effective size, upsampling (x2 at most) where it is smaller.
            scale = min(2.0, self.thorough_side / long_side)
            if scale > 1:
                faces = self._detect_at(rgb, scale / 2, upsample=True)
            elif scale > self.fast_side / long_side:
                faces = self._detect_at(rgb, scale, upsample=False)
        return faces

    def detect_quick(self, rgb: RGBArray, quarter_turns: int = 0) -> list[FaceBox]:
        """The fast pass alone: at `fast_side`, or upsampled once when small. A turned
        look shrinks the photo first and turns the small copy (cheaper than turning it)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got {rgb.shape} {rgb.dtype}")
        long_side = max(rgb.shape[0], rgb.shape[1])
        upsample = long_side <= self.upsample_below
        scale = min(1.0, self.fast_side / long_side)
        return self._detect_at(rgb, scale, upsample=upsample, quarter_turns=quarter_turns)

    @property
    def detectors(self) -> int:
        """How many dlib detectors this instance has created so far."""
        return self._created

    def _borrow(self) -> Any:
        """An idle detector; a new one while under `max_parallel`; else wait for one."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._create_lock:
            if self._created < self.max_parallel:
                self._created += 1
                return dlib.get_frontal_face_detector()
        return self._idle.get()

    def _detect_at(
        self, rgb: RGBArray, scale: float, *, upsample: bool, quarter_turns: int = 0
    ) -> list[FaceBox]:
        """Detect on `rgb` resized by `scale` (<= 1), upsampled x2 by dlib if asked, turned
        by `quarter_turns` after resizing; boxes in the turned full-size image's pixels."""
        image = _shrink(rgb, scale) if scale < 1 else rgb
        scale = image.shape[1] / rgb.shape[1]
        image = np.ascontiguousarray(np.rot90(image, quarter_turns) if quarter_turns else image)
        detector = self._borrow()
        try:
            rects, scores, _ = detector.run(image, int(upsample), self.threshold)
        finally:
            self._idle.put(detector)
        boxes = [
            FaceBox(
                left=int(rect.left()),
                top=int(rect.top()),
                width=int(rect.width()),
                height=int(rect.height()),
                score=float(score),
            ).scaled(1 / scale)
            for rect, score in zip(rects, scores, strict=True)
            if score >= self.threshold
        ]
        boxes.sort(key=lambda box: box.score, reverse=True)
        return boxes


def _shrink(rgb: RGBArray, scale: float) -> RGBArray:
    """Area-average `rgb` down by `scale`: halvings (OpenCV's fast 2x path), then the rest."""
    import cv2  # noqa: PLC0415  # on first use: a command refusing a file never loads it

    height, width = rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = rgb
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        half = (image.shape[1] // 2, image.shape[0] // 2)
        image = np.asarray(cv2.resize(image, half, interpolation=cv2.INTER_AREA), np.uint8)
    if (image.shape[1], image.shape[0]) != size:
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
    return image
