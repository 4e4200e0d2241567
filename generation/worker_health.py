"""A worker's answers for its process's `/healthz` and `/metrics` (the server itself is the
composition root's, shared with the bot process).

- health: ok while the worker's loops run (Redis is asked by the server first);
- metrics: this worker's jobs in hand, what it observed (`WorkerMetrics`: batch sizes,
  generation latency per style, failures by reason, jobs finished by style) and GPU
  memory when torch with CUDA is loaded in this process (never imported just for this).
  Queue-wide families (lag, depth, jobs by state) come from the server.
"""

from __future__ import annotations

from bot import metrics as prom
from bot.health import Health
from generation.worker import Worker
from generation.worker_metrics import gpu_memory


class WorkerHealth:
    """Health probe and metric families of one worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def probe(self) -> Health:
        details: dict[str, object] = {
            "worker": self.worker.consumer,
            "backend": self.worker.backend.name,
            "in_hand": self.worker.in_hand,
            "processed": self.worker.processed,
        }
        if not self.worker.running:
            return Health(ok=False, details=details, reason="not running")
        return Health(ok=True, details=details)

    def families(self) -> list[str]:
        lines = [
            *prom.family(
                "avatarbot_worker_jobs_in_hand",
                "gauge",
                "Jobs this worker is generating now.",
                [({}, float(self.worker.in_hand))],
            ),
            *self.worker.metrics.render(),
        ]
        gpu = gpu_memory()
        if gpu:
            lines += prom.family(
                "avatarbot_gpu_memory_bytes",
                "gauge",
                "CUDA memory of this worker's process, by device and kind.",
                gpu,
            )
        return lines
