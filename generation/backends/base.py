"""The one interface every generation backend implements.

A backend is loaded once per process and turns a batch of requests into images.
`generate` is synchronous (backends are CPU- or GPU-bound); the worker runs it in a
thread. One bad request never spoils the batch: its slot in the returned list holds a
`GenerationError` while the others hold their outputs.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

from bot.errors import AvatarbotError
from bot.jobs import FailureReason
from bot.likeness import Likeness
from bot.styles import Style

ProgressCallback = Callable[[str, float], None]
"""Called as progress(request_key, fraction_done in [0, 1]); may be called from any thread."""


@dataclass(frozen=True)
class GenerationRequest:
    key: str
    """Identifies the request in the batch (the job id)."""
    selfie: Image.Image
    """Square RGB face crop from intake."""
    style: Style
    seeds: tuple[int, ...]
    """One seed per variant; `len(seeds)` images are expected back."""
    size: int = 512
    """Side of the square output in pixels."""


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    seed: int
    likeness: Likeness | None = None
    """Set by the worker's likeness check (None: not measured)."""
    tries: int = 1
    """Generations the likeness check spent on this image (1: kept the first)."""


@dataclass(frozen=True)
class GenerationOutput:
    key: str
    images: tuple[GeneratedImage, ...]


class GenerationError(AvatarbotError):
    """One request could not be generated. `reason` tells the user what happened."""

    def __init__(
        self, detail: str, *, reason: FailureReason = FailureReason.GENERATION_FAILED
    ) -> None:
        super().__init__(detail)
        self.reason = reason


class BackendUnavailableError(AvatarbotError):
    """The backend cannot start here (a missing extra, no model files); fatal for the worker."""


class Backend(abc.ABC):
    """A generation backend. Subclasses set `name` and `device` and implement `generate`."""

    name: str = "abstract"
    device: str = "cpu"
    rerolls: bool = False
    """True when a new seed can change how much the face looks like the person
    (diffusion): the worker then re-rolls images below the style's minimum likeness.
    Style filters keep the selfie's features whatever the seed: they only report it."""

    def warmup(self) -> None:  # noqa: B027  # optional hook: most backends need no warm-up
        """Do slow one-time work (compilation, first kernel launches) before the first user."""

    @abc.abstractmethod
    def generate(
        self,
        batch: Sequence[GenerationRequest],
        progress: ProgressCallback | None = None,
    ) -> list[GenerationOutput | GenerationError]:
        """Return one entry per request, in order: its output, or the error it alone hit."""

    def describe(self) -> str:
        return f"{self.name} on {self.device}"
