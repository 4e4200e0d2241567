"""The worker's likeness check: every avatar scored against its selfie, and re-rolled
where a new seed can make it look more like the person.

Per backend call (one style): each job's selfie is embedded once and every output image
gets a `Likeness` (`bot.likeness`). On a backend that `rerolls` (diffusion), an image
below its style's `min_likeness`, or in which no face is found, is generated again with a
new seed; all such images of the batch go in one backend call per round, for at most
`max_tries` generations per image, and a round starts only while the rounds so far plus
one more (as long as the last) fit in `budget_s`. The best image is kept (highest score;
"no face" ranks lowest), with its likeness and the number of generations it took.

CPU style filters keep the selfie's features whatever the seed: they are scored, never
re-rolled. Re-roll seeds derive from the image's own seed, so a job run again (after a
worker crash) makes the same choices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from bot.jobs import SEED_SPACE
from bot.likeness import Likeness
from generation.backends.base import (
    Backend,
    GeneratedImage,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
)
from generation.face_identity import FaceIdentity, Identity

log = logging.getLogger(__name__)

_SEED_STEP = 0x9E3779B1  # odd, far from the variant step: re-roll seeds never repeat a variant's


def reroll_seed(seed: int, attempt: int) -> int:
    """The seed of re-roll `attempt` (1, 2, ...) of the image first made with `seed`."""
    return (seed + attempt * _SEED_STEP) % SEED_SPACE


def rank(likeness: Likeness | None) -> float:
    """Orders images by likeness: the score, with "no face" (and unmeasured) below 0."""
    score = likeness.score if likeness is not None else None
    return -1.0 if score is None else score


@dataclass(frozen=True)
class RerollPolicy:
    """How hard the worker tries for a likeness above the style's minimum."""

    max_tries: int = 3
    """Generations per image at most, the first included (1: never re-roll)."""
    budget_s: float = 10.0
    """Seconds one batch may spend re-rolling (generation and scoring)."""

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries}")
        if self.budget_s < 0:
            raise ValueError(f"budget_s must be >= 0, got {self.budget_s}")


@dataclass
class _Job:
    """One request's images while the check runs (mutable: rounds replace images)."""

    request: GenerationRequest
    reference: Identity | None
    images: list[GeneratedImage]
    first_seeds: tuple[int, ...]

    def low(self) -> list[int]:
        """Indexes of the images below the style's minimum (or without a face)."""
        if self.reference is None:
            return []
        minimum = self.request.style.min_likeness
        return [i for i, im in enumerate(self.images) if rank(im.likeness) < minimum]

    def output(self) -> GenerationOutput:
        return GenerationOutput(key=self.request.key, images=tuple(self.images))


class LikenessCheck:
    """Scores (and where it helps, re-rolls) a backend call's outputs. Thread-safe as its
    `FaceIdentity`; the worker runs it in its generation thread."""

    def __init__(
        self,
        identity: FaceIdentity,
        policy: RerollPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self.policy = policy or RerollPolicy()
        self._clock = clock

    def check(
        self,
        backend: Backend,
        requests: Sequence[GenerationRequest],
        outputs: Sequence[GenerationOutput | GenerationError],
        generation_s: float,
    ) -> list[GenerationOutput | GenerationError]:
        """`outputs` (one per request, as the backend returned them) with every image's
        likeness set, low ones re-rolled on a backend that `rerolls`. `generation_s`: how
        long the backend took for them (the first guess at a round's cost).

        Never costs a user their avatar: if measuring fails, the outputs come back as they
        were (likeness not measured) and the error goes to the log."""
        try:
            return self._check(backend, requests, outputs, generation_s)
        except Exception:
            log.exception("likeness check failed; the avatars go out unmeasured")
            return list(outputs)

    def _check(
        self,
        backend: Backend,
        requests: Sequence[GenerationRequest],
        outputs: Sequence[GenerationOutput | GenerationError],
        generation_s: float,
    ) -> list[GenerationOutput | GenerationError]:
        jobs: dict[int, _Job] = {}
        for index, (request, output) in enumerate(zip(requests, outputs, strict=True)):
            if isinstance(output, GenerationOutput):
                jobs[index] = self._scored(request, output)
        if backend.rerolls and self.policy.max_tries > 1:
            self._reroll(backend, list(jobs.values()), generation_s)
        for job in jobs.values():
            log.info(
                "job %s likeness %s", job.request.key, describe(job.images),
                extra={"job_id": job.request.key},
            )  # fmt: skip
        return [jobs[i].output() if i in jobs else output for i, output in enumerate(outputs)]

    def _scored(self, request: GenerationRequest, output: GenerationOutput) -> _Job:
        reference = self.identity.identify(np.asarray(request.selfie.convert("RGB")))
        if reference is None:
            log.warning(
                "job %s: no face found in the selfie; likeness not measured", request.key,
                extra={"job_id": request.key},
            )  # fmt: skip
            images = list(output.images)
        else:
            images = [self._measured(reference, im) for im in output.images]
        return _Job(request, reference, images, tuple(im.seed for im in output.images))

    def _measured(self, reference: Identity, image: GeneratedImage) -> GeneratedImage:
        likeness = self.identity.likeness(reference, np.asarray(image.image.convert("RGB")))
        return replace(image, likeness=likeness)

    def _reroll(self, backend: Backend, jobs: list[_Job], generation_s: float) -> None:
        started = self._clock()
        round_s = generation_s
        for attempt in range(1, self.policy.max_tries):
            todo = [(job, low) for job in jobs if (low := job.low())]
            if not todo:
                return
            spent = self._clock() - started
            if spent + round_s > self.policy.budget_s:
                log.info(
                    "likeness re-roll stopped by its time budget (%.1f s spent, %.1f s left,"
                    " a round takes ~%.1f s)", spent, self.policy.budget_s - spent, round_s,
                )  # fmt: skip
                return
            round_started = self._clock()
            self._round(backend, todo, attempt)
            round_s = self._clock() - round_started

    def _round(self, backend: Backend, todo: list[tuple[_Job, list[int]]], attempt: int) -> None:
        """One backend call for every low image of the batch; keep the better of each."""
        requests = [
            replace(job.request, seeds=tuple(reroll_seed(job.first_seeds[i], attempt) for i in low))
            for job, low in todo
        ]
        try:
            outputs = backend.generate(requests)
        except Exception:
            log.exception("likeness re-roll: the backend failed; keeping the images made")
            outputs = [GenerationError("re-roll failed") for _ in requests]
        for (job, low), output in zip(todo, outputs, strict=True):
            if isinstance(output, GenerationError):
                log.warning("job %s: a re-roll failed (%s)", job.request.key, output)
            for position, i in enumerate(low):
                current = job.images[i]
                best = current
                if isinstance(output, GenerationOutput) and position < len(output.images):
                    assert job.reference is not None  # noqa: S101  # low() is empty without one
                    fresh = self._measured(job.reference, output.images[position])
                    if rank(fresh.likeness) > rank(current.likeness):
                        best = fresh
                job.images[i] = replace(best, tries=current.tries + 1)


def describe(images: Sequence[GeneratedImage]) -> str:
    """One log phrase for a job's images: '72% (0.34), no face; tries 1, 3'."""
    parts = []
    for image in images:
        likeness = image.likeness
        if likeness is None:
            parts.append("not measured")
        elif likeness.distance is None:
            parts.append("no face")
        else:
            parts.append(f"{likeness.percent} ({likeness.distance:.2f})")
    tries = ", ".join(str(im.tries) for im in images)
    return f"{', '.join(parts)}; tries {tries}"
