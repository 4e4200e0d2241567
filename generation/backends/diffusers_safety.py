"""Safety checking of generated images: which must not reach a user (their request fails
with `BLOCKED_CONTENT` and one friendly line)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

BLOCKED_MESSAGE = (
    "The safety filter blocked that avatar. Please try another style or another photo."
)


class SafetyChecker(abc.ABC):
    """Decides which generated images must not reach a user."""

    @abc.abstractmethod
    def __call__(self, images: Sequence[Image.Image]) -> list[bool]:
        """Return one flag per image: True means unsafe (blocked)."""


class ModelSafetyChecker(SafetyChecker):
    """The safety checker a Stable Diffusion model ships (CLIP concept scores)."""

    def __init__(
        self, module: Any, feature_extractor: Any, device: str, dtype: torch.dtype
    ) -> None:
        self._module = module.to(device=device, dtype=dtype)
        self._features = feature_extractor
        self._device = device
        self._dtype = dtype

    def __call__(self, images: Sequence[Image.Image]) -> list[bool]:
        if not images:
            return []
        pixels = self._features(list(images), return_tensors="pt").pixel_values
        placeholders = np.zeros((len(images), 1, 1, 3), dtype=np.float32)  # the checker
        # blackens its `images` argument in place; we block whole requests instead.
        with torch.inference_mode():
            _, flags = self._module(
                clip_input=pixels.to(device=self._device, dtype=self._dtype), images=placeholders
            )
        return [bool(f) for f in flags]
