"""How much selfie decoding a bot process does at once: a budget of memory, not of requests.

Decoding is where an upload costs memory: a plain-colour 7000 x 7000 PNG is 155 KB on the
wire and ~340 MB once decoded, converted and searched for a face (docs/benchmarks.md,
"Intake under a pixel-bomb flood"). So each decode reserves its worst case before it
starts: the pixels it will decode (read from the header; a JPEG counts at its `draft()`
size) times `BYTES_PER_PIXEL`, the most any allowed format was measured to take. Decodes
run while their reservations fit the budget (and no more than one per core); the rest
wait their turn, in order, up to `wait_s`, and are then told "busy, try later".

The budget also bounds the pixels of one upload: an image whose worst case exceeds the
whole budget could never run, so `pixel_budget` lowers intake's pixel limit to fit.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import threading
import time
from collections.abc import Iterator

from PIL import Image

from bot.faces import FaceDetector
from bot.i18n import N_
from bot.selfie import ALLOWED_FORMATS, IntakeError, IntakeLimits, Selfie, SelfieIntake

#: Peak bytes per decoded pixel over the whole intake (decode, RGB copy, detector input).
#: Measured on 25 Mpx images: RGB PNG 7.2, lossless WEBP 5.4, RGBA/LA PNG 9.2, GIF 11.3,
#: 16-bit grey PNG 12.2.
BYTES_PER_PIXEL = 12
#: How long an upload may wait for its turn before the user is told to try again.
WAIT_S = 20.0


class DecodesBusy(IntakeError):
    """Too many decodes in flight for this process's memory budget; try again later."""

    user_text = N_("I'm very busy right now. Please try again in a minute.")


def pixel_budget(memory_bytes: int, limit: int) -> int:
    """The most pixels one upload may have: `limit`, lowered to fit the whole budget."""
    return max(1, min(limit, memory_bytes // BYTES_PER_PIXEL))


class DecodeBudget:
    """A first-come, first-served budget of bytes (and of parallel decodes) over threads."""

    def __init__(self, memory_bytes: int, max_parallel: int | None = None) -> None:
        if memory_bytes < 1:
            raise ValueError("the decode budget must be positive")
        self.memory_bytes = memory_bytes
        self.max_parallel = max(1, max_parallel or os.cpu_count() or 1)
        self._used = 0
        self._running = 0
        self._turns: collections.deque[object] = collections.deque()
        self._changed = threading.Condition()

    @property
    def in_use(self) -> int:
        """Bytes reserved by decodes running now."""
        return self._used

    @contextlib.contextmanager
    def reserve(self, nbytes: int, wait_s: float) -> Iterator[None]:
        """Hold `nbytes` (capped at the budget) for the block; raises `DecodesBusy` when
        the turn does not come within `wait_s`."""
        nbytes = min(max(0, nbytes), self.memory_bytes)
        turn = object()
        deadline = time.monotonic() + wait_s
        with self._changed:
            self._turns.append(turn)
            try:
                while not (self._turns[0] is turn and self._fits(nbytes)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise DecodesBusy(f"no decode budget for {nbytes} bytes in {wait_s}s")
                    self._changed.wait(left)
            finally:
                self._turns.remove(turn)
                self._changed.notify_all()  # the next in line may fit now
            self._used += nbytes
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._used -= nbytes
                self._running -= 1
                self._changed.notify_all()

    def _fits(self, nbytes: int) -> bool:
        return self._running < self.max_parallel and self._used + nbytes <= self.memory_bytes


class BudgetedIntake(SelfieIntake):
    """`SelfieIntake` whose decodes take their turn in a `DecodeBudget`."""

    def __init__(
        self,
        detector: FaceDetector,
        limits: IntakeLimits,
        budget: DecodeBudget,
        *,
        wait_s: float = WAIT_S,
    ) -> None:
        super().__init__(detector, limits)
        self.budget = budget
        self.wait_s = wait_s

    def process(self, data: bytes) -> Selfie:
        with self.budget.reserve(decode_cost(data, self.limits), self.wait_s):
            return super().process(data)


def decode_cost(data: bytes, limits: IntakeLimits) -> int:
    """The worst-case bytes decoding `data` takes, from its header alone (~0.1 ms).

    Uploads that intake refuses before decoding (too many bytes or pixels) cost nothing;
    a header Pillow cannot read costs the most an allowed image may, as it might be one
    (HEIF before its opener is registered) and fails fast otherwise."""
    if len(data) > limits.max_bytes:
        return 0
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            width, height = image.size
            if width * height > limits.max_pixels or max(width, height) > limits.max_side:
                return 0
            if image.format == "JPEG":
                image.draft(None, (limits.output_max, limits.output_max))
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return 0  # refused from the header too
    except Exception:  # any other unreadable header: assume the worst
        return limits.max_pixels * BYTES_PER_PIXEL
    return width * height * BYTES_PER_PIXEL
