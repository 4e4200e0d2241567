"""What a process's `/healthz` answers: healthy or not, why not, and a few numbers.

Each process has its own probe: a bot is healthy when a worker is alive to take its
jobs; a worker when its loops run. The HTTP server asks Redis first (an unreachable Redis
is unhealthy for everyone), then the probe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.metrics import QueueNumbers


@dataclass(frozen=True)
class Health:
    ok: bool
    details: dict[str, object] = field(default_factory=dict)
    reason: str = ""
    """Why not healthy (empty when ok)."""

    def body(self) -> dict[str, object]:
        """The JSON body: `{"status": "ok", ...}` or `{"status": "unavailable", "reason"...}`."""
        if self.ok:
            return {"status": "ok", **self.details}
        return {"status": "unavailable", "reason": self.reason, **self.details}


HealthProbe = Callable[[], Awaitable[Health]]


def queue_probe(stats: Callable[[], Awaitable[QueueNumbers]]) -> HealthProbe:
    """A bot's probe: healthy while at least one worker is alive to take its jobs."""

    async def probe() -> Health:
        numbers = await stats()
        details: dict[str, object] = {
            "queued": numbers.depth,
            "running": numbers.running,
            "workers": numbers.live_workers,
        }
        if numbers.live_workers < 1:
            return Health(ok=False, details=details, reason="no live worker")
        return Health(ok=True, details=details)

    return probe
