"""Identity embedders for IP-Adapter FaceID variants (the diffusers backend's `face_embedder`).

avatarbot ships none by default: the usual one (insightface's ArcFace `buffalo_l`)
downloads its weights at run time and they are licensed for non-commercial research only.
See docs/diffusers.md.
"""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np
from PIL import Image

from generation.backends.base import BackendUnavailableError, GenerationError


class FaceEmbedder(abc.ABC):
    """Turns a face crop into an identity embedding for IP-Adapter FaceID variants.

    avatarbot ships no implementation by default: the usual one (insightface's ArcFace
    `buffalo_l`) downloads its weights at run time and they are licensed for
    non-commercial research only. See docs/diffusers.md.
    """

    dim: int = 512

    @abc.abstractmethod
    def embed(self, face: Image.Image) -> np.ndarray:
        """Return a float vector of length `dim` (L2-normalised), or raise if no face."""


class InsightFaceEmbedder(FaceEmbedder):
    """ArcFace embeddings from insightface, from model files already on disk.

    Optional and off by default: install `insightface` and `onnxruntime` yourself and put
    the `buffalo_l` model pack under `<root>/models/buffalo_l` (its licence is
    non-commercial). Nothing is downloaded: a missing pack is an error.
    """

    def __init__(self, root: str | Path, *, device: str = "cpu") -> None:
        pack = Path(root) / "models" / "buffalo_l"
        if not pack.is_dir():
            raise BackendUnavailableError(
                f"insightface model pack not found at {pack}; avatarbot never downloads it"
            )
        try:
            from insightface.app import FaceAnalysis  # type: ignore[import-not-found]  # noqa: PLC0415  # optional, not a dependency
        except ImportError as exc:
            raise BackendUnavailableError(
                "FaceID needs the optional 'insightface' and 'onnxruntime' packages"
            ) from exc
        providers = ["CUDAExecutionProvider"] if device.startswith("cuda") else []
        self._app = FaceAnalysis(
            name="buffalo_l", root=str(root), providers=[*providers, "CPUExecutionProvider"]
        )
        self._app.prepare(ctx_id=0 if providers else -1, det_size=(640, 640))

    def embed(self, face: Image.Image) -> np.ndarray:
        bgr = np.asarray(face.convert("RGB"))[:, :, ::-1]
        faces = self._app.get(np.ascontiguousarray(bgr))
        if not faces:
            raise GenerationError("FaceID: no face found in the crop")
        largest = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
        return np.asarray(largest.normed_embedding, dtype=np.float32)
