"""The CPU style engine: the embedded default backend (OpenCV + NumPy, no model weights).

Each style's CPU recipe names an *effect* and its *params* (bot/data/styles.toml); the
effects, what they look like and their params are in `generation.backends.cpu_effects`.
One seed always gives the same pixels; different seeds give visibly different avatars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from bot.jobs import FailureReason
from generation.backends.base import (
    Backend,
    GeneratedImage,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
    ProgressCallback,
)
from generation.backends.cpu_effects import (
    EFFECTS,
    MAX_SIZE,
    MIN_SIZE,
    RGB,
    Effect,
    EffectParamsError,
    Params,
    ParamValue,
)

__all__ = ["EFFECTS", "CpuStyleEngine", "Effect", "ParamValue"]


class CpuStyleEngine(Backend):
    """Renders the CPU recipe of each style with OpenCV and NumPy; needs no weights.

    Thread-safe (no shared mutable state); the worker may call `generate` from a thread.
    OpenCV's own thread count is the caller's choice (`cv2.setNumThreads`).
    """

    name = "cpu"
    device = "cpu"

    def __init__(self, effects: Mapping[str, Effect] | None = None) -> None:
        self.effects: Mapping[str, Effect] = dict(effects if effects is not None else EFFECTS)

    def generate(
        self,
        batch: Sequence[GenerationRequest],
        progress: ProgressCallback | None = None,
    ) -> list[GenerationOutput | GenerationError]:
        results: list[GenerationOutput | GenerationError] = []
        for request in batch:
            try:
                results.append(self._generate_one(request, progress))
            except GenerationError as exc:
                results.append(exc)
        return results

    def render(
        self,
        selfie: Image.Image,
        effect: str,
        params: Mapping[str, ParamValue],
        seed: int,
        size: int = 512,
    ) -> Image.Image:
        """One stylised image. Raises GenerationError (UNKNOWN_STYLE for an unknown effect)."""
        spec = self.effects.get(effect)
        if spec is None:
            raise GenerationError(
                f"the CPU engine has no effect {effect!r}; "
                f"known: {', '.join(sorted(self.effects))}",
                reason=FailureReason.UNKNOWN_STYLE,
            )
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise GenerationError(f"size {size} is outside [{MIN_SIZE}, {MAX_SIZE}]")
        try:
            checked = Params(effect, params, spec.params)
            rgb = _prepare(selfie, size)
            out = spec.fn(rgb, checked, np.random.default_rng(seed))
        except EffectParamsError as exc:
            raise GenerationError(str(exc)) from None
        except (cv2.error, ValueError, TypeError) as exc:
            raise GenerationError(f"effect {effect!r} failed: {exc}") from exc
        if out.shape != (size, size, 3) or out.dtype != np.uint8:
            raise GenerationError(f"effect {effect!r} returned {out.shape} {out.dtype}")
        return Image.fromarray(np.ascontiguousarray(out), "RGB")

    def _generate_one(
        self, request: GenerationRequest, progress: ProgressCallback | None
    ) -> GenerationOutput:
        if not request.seeds:
            raise GenerationError(f"request {request.key} asks for no images")
        recipe = request.style.cpu
        images: list[GeneratedImage] = []
        for i, seed in enumerate(request.seeds):
            image = self.render(request.selfie, recipe.effect, recipe.params, seed, request.size)
            images.append(GeneratedImage(image=image, seed=seed))
            if progress is not None:
                progress(request.key, (i + 1) / len(request.seeds))
        return GenerationOutput(key=request.key, images=tuple(images))


def _prepare(selfie: Image.Image, size: int) -> RGB:
    """The selfie as a size x size RGB array (centre-cropped to square if it is not)."""
    image = selfie.convert("RGB") if selfie.mode != "RGB" else selfie
    w, h = image.size
    if w != h:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image, np.uint8)
