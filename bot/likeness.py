"""Likeness: how much an avatar looks like the person in its selfie.

Measured by the worker with a face-recognition model (dlib's ResNet, see
`generation.face_identity`) as the Euclidean distance between the 128-D embeddings of
the selfie's face and the avatar's main face. dlib calls two faces the same person below
0.6 (99.38 % on LFW); docs/benchmarks.md checks that on our own photos.

The raw distance is kept; the score users and operators read maps it linearly onto 0..1:

    score = clamp(1 - distance / (2 * SAME_PERSON_DISTANCE), 0, 1)

so 1.0 is the same embedding, 0.5 is the "same person" line (distance 0.6) and 0.0 is
distance 1.2 or more (photos of different people measure 0.67-0.86). An image in which
no face is found has no distance and no score: "no face", never a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SAME_PERSON_DISTANCE = 0.6
"""dlib's threshold: embeddings closer than this are the same person."""

SAME_PERSON_SCORE = 0.5
"""The score at SAME_PERSON_DISTANCE."""


def score_of(distance: float) -> float:
    """The 0..1 likeness score of an embedding distance (see the module docstring)."""
    return min(1.0, max(0.0, 1.0 - distance / (2 * SAME_PERSON_DISTANCE)))


@dataclass(frozen=True)
class Likeness:
    """One image's likeness to its selfie. `distance` None: no face found in the image."""

    distance: float | None

    def __post_init__(self) -> None:
        if self.distance is not None and not self.distance >= 0:  # also rejects NaN
            raise ValueError(f"distance must be >= 0, got {self.distance}")

    @property
    def score(self) -> float | None:
        return None if self.distance is None else score_of(self.distance)

    @property
    def same_person(self) -> bool:
        return self.distance is not None and self.distance < SAME_PERSON_DISTANCE

    @property
    def percent(self) -> str:
        """The score as a percentage, "72%", or "no face" (in English: logs and the command
        line; a user reads `bot.job_texts.likeness_score`, in their language)."""
        score = self.score
        return "no face" if score is None else f"{round(score * 100)}%"

    def to_json(self) -> dict[str, float | None]:
        """The header form: both numbers, the score for readers that do not know the map."""
        score = self.score
        return {
            "distance": None if self.distance is None else round(self.distance, 4),
            "score": None if score is None else round(score, 4),
        }

    @classmethod
    def from_json(cls, raw: Any) -> Likeness:
        """Read `to_json`'s form; the score is derived again from the distance."""
        if not isinstance(raw, dict):
            raise ValueError(f"likeness must be an object, got {type(raw).__name__}")
        distance = raw.get("distance")
        return cls(None if distance is None else float(distance))
