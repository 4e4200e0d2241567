"""The face-identity embedder: who is in a picture, as a 128-D vector, on the CPU.

`FaceIdentity` has one method, `identify(rgb) -> Identity | None` (an embedding and where
the face is); the likeness check only depends on that (and on `likeness`, built on it),
so another recognizer can replace the default without touching the worker.

The default, `DlibFaceIdentity`, is dlib's face-recognition ResNet (128-D, 99.38 % on
LFW; two faces closer than 0.6 are the same person):

1. detect with the project's HOG detector (`bot.faces`), searching a 256 px copy first
   and the image at 512 px only when that finds nothing (a face that fills a quarter of
   the picture, like one panel of a pop-art avatar);
2. take the main face (largest box, then best score: the rule intake uses); in an avatar,
   when none is found, take a weaker detection where its selfie's face was;
3. align it with dlib's 5-point landmark model into the 150 px chip the network was
   trained on (`dlib.get_face_chip`, padding 0.25);
4. embed the chip.

Both models come from the `face-recognition-models` package (CC0), installed from the
package registry like any dependency: nothing is downloaded at run time. That package
also holds a 68-point landmark model trained on data licensed for non-commercial use
only; it is never loaded.

Cost, load and thread safety: see `DlibFaceIdentity`.
"""

from __future__ import annotations

import abc
import importlib.util
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import numpy as np
import numpy.typing as npt

from bot.errors import AvatarbotError
from bot.faces import DlibHogDetector, FaceBox, RGBArray
from bot.likeness import Likeness

Embedding = npt.NDArray[np.float64]

MODELS_PACKAGE = "face_recognition_models"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNIZER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
"""The aligned face chip dlib's ResNet was trained on (150 x 150, padding 0.25)."""
CHIP_PADDING = 0.25


class FaceIdentityUnavailableError(AvatarbotError):
    """The recognizer's model files are not installed; fatal where likeness is scored."""


Region = tuple[float, float, float, float]
"""A face's box as fractions of the image: (left, top, right, bottom)."""


@dataclass(frozen=True)
class Identity:
    """A face's identity embedding, and where in its image the face is."""

    embedding: Embedding
    region: Region


def distance(a: Embedding, b: Embedding) -> float:
    """Euclidean distance between two embeddings (dlib: < 0.6 is the same person)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def main_face(faces: list[FaceBox]) -> FaceBox | None:
    """The face a picture is of: the largest, then the best scored (as intake picks)."""
    return max(faces, key=lambda f: (f.size, f.score)) if faces else None


def region_of(face: FaceBox, width: int, height: int) -> Region:
    return (face.left / width, face.top / height, face.right / width, face.bottom / height)


def overlap(a: Region, b: Region) -> float:
    """Intersection over union of two regions (0: apart, 1: the same)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceIdentity(abc.ABC):
    """Finds the main face of an RGB image and embeds its identity."""

    @abc.abstractmethod
    def identify(self, rgb: RGBArray, *, near: Region | None = None) -> Identity | None:
        """The main face's identity, or None when no face is found in `rgb` (H x W x 3,
        uint8, RGB). `near`: where a face is expected (an avatar keeps its selfie's
        framing), so a weaker detection that overlaps it counts too."""

    def likeness(self, reference: Identity, rgb: RGBArray) -> Likeness:
        """How much the main face of `rgb` looks like `reference` ("no face" when none)."""
        found = self.identify(rgb, near=reference.region)
        return Likeness(None if found is None else distance(reference.embedding, found.embedding))


def models_dir() -> Path:
    """Where `face-recognition-models` installed its model files (found without importing
    the package: its `__init__` needs `pkg_resources`, which new setuptools no longer has)."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise FaceIdentityUnavailableError(
            "the face-recognition models are not installed",
            user_message="the face-recognition models are missing: "
            "pip install face-recognition-models (or reinstall avatarbot)",
        )
    return Path(locations[0]) / "models"


@dataclass(frozen=True)
class _Models:
    """One loaded set of dlib models; dlib objects are not safe to share between threads."""

    landmarks: Any
    recognizer: Any


class DlibFaceIdentity(FaceIdentity):
    """dlib's ResNet face recognizer on 5-point aligned chips (see the module docstring).

    Detection: the HOG detector's usual threshold (0.4) first. When that finds nothing and
    a region is expected (`near`), a second look at `guided_threshold` accepts the best
    box overlapping it by at least `guided_overlap` (IoU): strong styles (pencil, halftone)
    lower the HOG score of a face any person sees at once, and the avatar keeps the
    selfie's framing. A face-less output finds nothing there either: "no face".

    Cost on one core: the embedding is a fixed ~75 ms (the network sees a 150 px chip,
    whatever the image size), detection on the 256 px copy a few ms; the 512 px second
    look runs only when the first finds nothing. Measured in bench/likeness_bench.py.

    Load once per process: one set of models (~0.4 s, ~30 MB) is loaded at construction.
    Thread safety and parallelism as `DlibHogDetector`: each call borrows a set of models
    from a pool, creating another (up to `max_parallel`, one per core by default) only
    when all are busy.
    """

    def __init__(
        self,
        *,
        models: Path | None = None,
        max_parallel: int | None = None,
        guided_threshold: float = -0.5,
        guided_overlap: float = 0.4,
    ) -> None:
        folder = models if models is not None else models_dir()
        self._landmarks_path = folder / LANDMARKS_FILE
        self._recognizer_path = folder / RECOGNIZER_FILE
        for path in (self._landmarks_path, self._recognizer_path):
            if not path.is_file():
                raise FaceIdentityUnavailableError(
                    f"model file missing: {path}",
                    user_message=f"the face-recognition model file {path.name} is missing: "
                    "reinstall face-recognition-models",
                )
        self.detector = DlibHogDetector(
            fast_side=256, thorough_side=512, upsample_below=160, max_parallel=max_parallel
        )
        self.guided = DlibHogDetector(
            threshold=guided_threshold,
            fast_side=256,
            thorough_side=512,
            upsample_below=160,
            max_parallel=max_parallel,
        )
        self.guided_overlap = guided_overlap
        self.max_parallel = max(1, max_parallel or os.cpu_count() or 1)
        self._idle: queue.SimpleQueue[_Models] = queue.SimpleQueue()
        self._idle.put(self._load())
        self._created = 1
        self._create_lock = threading.Lock()

    @property
    def loaded(self) -> int:
        """How many sets of models this instance has loaded so far."""
        return self._created

    def identify(self, rgb: RGBArray, *, near: Region | None = None) -> Identity | None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[:2]
        face = main_face(self.detector.detect(rgb))
        if face is None and near is not None:
            face = self._near(rgb, near)
        if face is None:
            return None
        return Identity(
            self._embed(np.ascontiguousarray(rgb), face), region_of(face, width, height)
        )

    def _near(self, rgb: RGBArray, expected: Region) -> FaceBox | None:
        """The best weaker detection overlapping the expected region, if any."""
        height, width = rgb.shape[:2]
        close = [
            f
            for f in self.guided.detect(rgb)
            if overlap(region_of(f, width, height), expected) >= self.guided_overlap
        ]
        return max(close, key=lambda f: f.score) if close else None

    def _embed(self, image: RGBArray, face: FaceBox) -> Embedding:
        # The box may reach past the borders; dlib reads outside pixels as black.
        box = dlib.rectangle(face.left, face.top, face.right - 1, face.bottom - 1)
        models = self._borrow()
        try:
            shape = models.landmarks(image, box)
            chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
            vector = models.recognizer.compute_face_descriptor(chip)
        finally:
            self._idle.put(models)
        return np.asarray(vector, np.float64)

    def _load(self) -> _Models:
        return _Models(
            landmarks=dlib.shape_predictor(str(self._landmarks_path)),
            recognizer=dlib.face_recognition_model_v1(str(self._recognizer_path)),
        )

    def _borrow(self) -> _Models:
        """An idle set of models; a new one while under `max_parallel`; else wait."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._create_lock:
            if self._created < self.max_parallel:
                self._created += 1
                return self._load()
        return self._idle.get()
