"""Generation backends for queue and worker tests: real `Backend` subclasses, no models.

`FakeBackend` makes a flat image per seed (its colour derived from the style and seed, so
results are checkable) and can be told to be slow (sleeping, as a GPU batch waits, or
spinning in pure Python, as a CPU-bound style), to fail every request of one style, or
to kill its whole process on one style (a "poison" job, as a segfaulting model would).
Every batch it sees is recorded, in-process in `batches` and, when `log_path` is given, one
JSON line per batch in that file (for worker processes that tests kill).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from generation.backends.base import (
    Backend,
    GeneratedImage,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
    ProgressCallback,
)


def colour(style_id: str, seed: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{style_id}:{seed}".encode()).digest()
    return digest[0], digest[1], digest[2]


class FakeBackend(Backend):
    name = "fake"
    device = "cpu"

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        spin_s: float = 0.0,
        fail_style: str | None = None,
        poison_style: str | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.spin_s = spin_s
        self.fail_style = fail_style
        self.poison_style = poison_style
        self.log_path = log_path
        self.batches: list[list[tuple[str, str]]] = []
        self._lock = threading.Lock()

    def generate(
        self,
        batch: Sequence[GenerationRequest],
        progress: ProgressCallback | None = None,
    ) -> list[GenerationOutput | GenerationError]:
        record = [(r.key, r.style.id) for r in batch]
        with self._lock:
            self.batches.append(record)
            if self.log_path is not None:
                with self.log_path.open("a") as f:
                    f.write(json.dumps({"pid": os.getpid(), "batch": record}) + "\n")
        if any(r.style.id == self.poison_style for r in batch):
            os._exit(3)  # a crash no exception handler can catch
        steps = 4
        for step in range(1, steps + 1):
            if self.delay_s:
                time.sleep(self.delay_s / steps)
            if self.spin_s:
                _spin(self.spin_s / steps)
            if progress is not None:
                for r in batch:
                    progress(r.key, step / steps)
        out: list[GenerationOutput | GenerationError] = []
        for r in batch:
            if r.style.id == self.fail_style:
                out.append(GenerationError(f"style {r.style.id} fails on purpose"))
                continue
            images = tuple(
                GeneratedImage(Image.new("RGB", (r.size, r.size), colour(r.style.id, s)), s)
                for s in r.seeds
            )
            out.append(GenerationOutput(key=r.key, images=images))
        return out

    @property
    def keys_seen(self) -> list[str]:
        with self._lock:
            return [key for batch in self.batches for key, _style in batch]


def _spin(seconds: float) -> None:
    """Keep the CPU busy in Python bytecode (holding the GIL between switches)."""
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n = (n * 31 + 7) % 1_000_003


class RaisingBackend(Backend):
    """Breaks the contract: raises out of `generate` (a backend bug)."""

    name = "raising"

    def generate(
        self,
        batch: Sequence[GenerationRequest],
        progress: ProgressCallback | None = None,
    ) -> list[GenerationOutput | GenerationError]:
        raise RuntimeError("backend blew up")


FaceChooser = Callable[[GenerationRequest, int], Image.Image | None]
"""What a `FaceBackend` draws for (request, seed): a face photo, or None for no face."""


class FaceBackend(Backend):
    """Returns a real face photo per seed (the request's own selfie, another person's
    photo, or none at all), as `choose` says, so the likeness check sees real faces.

    `rerolls` as diffusion (a new seed may change the face) unless told otherwise. Every
    call is recorded as [(key, seeds), ...] in `calls`."""

    name = "face"
    rerolls = True

    def __init__(self, choose: FaceChooser, *, rerolls: bool = True) -> None:
        self.choose = choose
        self.rerolls = rerolls
        self.calls: list[list[tuple[str, tuple[int, ...]]]] = []

    def generate(
        self,
        batch: Sequence[GenerationRequest],
        progress: ProgressCallback | None = None,
    ) -> list[GenerationOutput | GenerationError]:
        self.calls.append([(r.key, r.seeds) for r in batch])
        out: list[GenerationOutput | GenerationError] = []
        for r in batch:
            images = []
            for seed in r.seeds:
                face = self.choose(r, seed)
                image = (
                    Image.new("RGB", (r.size, r.size), colour("blank", seed))
                    if face is None
                    else face.convert("RGB").resize((r.size, r.size), Image.Resampling.LANCZOS)
                )
                images.append(GeneratedImage(image, seed))
            out.append(GenerationOutput(key=r.key, images=tuple(images)))
        return out
