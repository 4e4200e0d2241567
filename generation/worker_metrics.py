"""What one worker process observes (batch sizes, generation latency per style, jobs finished
by style, failures by reason) and its GPU memory, as Prometheus families for `/metrics`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot import metrics as prom

if TYPE_CHECKING:
    from bot.jobs import ResultImage

log = logging.getLogger(__name__)

BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64)
LIKENESS_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TRIES_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 5, 8)


class WorkerMetrics:
    """What one worker process observes; the worker calls `observe_*`."""

    def __init__(self) -> None:
        self.batch_size = prom.Histogram(
            "avatarbot_worker_batch_size", "Jobs per backend call (one style each).", BATCH_BUCKETS
        )
        self.latency = prom.LabelledHistogram(
            "avatarbot_worker_generation_seconds",
            "Wall time of one backend call (a batch of one style), by style.",
            "style",
        )
        self.likeness = prom.LabelledHistogram(
            "avatarbot_worker_likeness_score",
            "Likeness of each delivered image to its selfie (0..1; 0.5 = same person), by style.",
            "style",
            LIKENESS_BUCKETS,
        )
        self.tries = prom.LabelledHistogram(
            "avatarbot_worker_likeness_tries",
            "Generations each delivered image took (more than 1: re-rolled), by style.",
            "style",
            TRIES_BUCKETS,
        )
        self._finished: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._no_face: dict[str, int] = {}

    def observe_batch(self, style_id: str, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.latency.observe(style_id, seconds)

    def observe_done(self, style_id: str) -> None:
        self._finished[style_id] = self._finished.get(style_id, 0) + 1

    def observe_likeness(self, style_id: str, images: Sequence[ResultImage]) -> None:
        """A delivered job's images: score (or "no face") and tries; unmeasured ones skip."""
        for image in images:
            if image.likeness is None:
                continue
            self.tries.observe(style_id, image.tries)
            score = image.likeness.score
            if score is None:
                self._no_face[style_id] = self._no_face.get(style_id, 0) + 1
            else:
                self.likeness.observe(style_id, score)

    def observe_failure(self, reason: str) -> None:
        self._failures[reason] = self._failures.get(reason, 0) + 1

    def failures(self, reason: str) -> int:
        return self._failures.get(reason, 0)

    def render(self) -> list[str]:
        return [
            *prom.family(
                "avatarbot_worker_jobs_done_total",
                "counter",
                "Jobs this worker finished with a result, by style.",
                [({"style": s}, float(n)) for s, n in sorted(self._finished.items())],
            ),
            *prom.family(
                "avatarbot_worker_failures_total",
                "counter",
                "Jobs this worker failed, by reason.",
                [({"reason": r}, float(n)) for r, n in sorted(self._failures.items())],
            ),
            *prom.family(
                "avatarbot_worker_likeness_no_face_total",
                "counter",
                "Delivered images in which no face was found (no likeness score), by style.",
                [({"style": s}, float(n)) for s, n in sorted(self._no_face.items())],
            ),
            *self.batch_size.render(),
            *self.latency.render(),
            *self.likeness.render(),
            *self.tries.render(),
        ]


def gpu_memory() -> list[tuple[dict[str, str], float]]:
    """(labels, bytes) per CUDA device and kind, when torch is loaded and sees CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        out: list[tuple[dict[str, str], float]] = []
        for i in range(torch.cuda.device_count()):
            device = {"device": f"cuda:{i}"}
            out.append(({**device, "kind": "allocated"}, float(torch.cuda.memory_allocated(i))))
            out.append(({**device, "kind": "reserved"}, float(torch.cuda.memory_reserved(i))))
            free, total = torch.cuda.mem_get_info(i)
            out.append(({**device, "kind": "total"}, float(total)))
            out.append(({**device, "kind": "free"}, float(free)))
        return out
    except Exception:  # a metrics scrape must never take the worker down
        log.debug("reading GPU memory failed", exc_info=True)
        return []
