"""The queue's limits and timings, read once from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.queue.keys import DAY_S

if TYPE_CHECKING:
    from bot.config import Settings


@dataclass(frozen=True)
class QueueConfig:
    prefix: str = "avatarbot"
    queue_cap: int = 500
    daily_quota: int = 20
    max_deliveries: int = 3
    reclaim_idle_s: float = 30.0
    """A bot's outcome lease, and how long a dead bot's pending outcomes wait for another."""
    reclaim_by_liveness: bool = True
    """Hand the jobs of a worker whose liveness record lapsed to the living at once; off,
    they wait until idle past their stuck bound (the behaviour before liveness records)."""
    liveness_ttl_s: float = 2.0
    """A worker's liveness record lapses this long after its last renewal."""
    liveness_refresh_s: float = 0.5
    """How often a worker renews its record (from its own thread); it looks for workers
    whose record lapsed twice as often (`watch_interval_s`)."""
    stuck_factor: float = 4.0
    """A job in a live worker's hands longer than this many times its expected time (the
    style's measured average, summed over the batch it came in) is taken over."""
    stuck_min_s: float = 30.0
    """The stuck bound's floor (also the bound of a job whose worker set none)."""
    stuck_max_s: float = 600.0
    """The stuck bound's ceiling."""
    selfie_ttl_s: int = 3600
    result_ttl_s: int = DAY_S
    job_ttl_s: int = DAY_S
    default_job_s: float = 15.0
    """Per-job duration assumed for ETAs until workers have recorded some."""
    maintenance_interval_s: float = 60.0
    """How often the reclaim path trims dead letters and prunes indexes."""
    consumer_idle_s: float = 3600.0
    """A worker consumer with nothing pending and idle this long is removed from the group."""
    delivery_lease_s: float = 30.0
    """How long a bot's claim to deliver an outcome lasts unless renewed; after that (the
    bot died before confirming) another bot process may deliver it."""

    @property
    def watch_interval_s(self) -> float:
        """How often a worker looks for workers whose liveness record lapsed (and for
        jobs given back), and the longest its reads wait on an empty queue."""
        return self.liveness_refresh_s / 2

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueConfig:
        return cls(
            prefix=settings.key_prefix,
            queue_cap=settings.queue_cap,
            daily_quota=settings.daily_quota,
            max_deliveries=settings.max_deliveries,
            reclaim_idle_s=settings.reclaim_idle_s,
            reclaim_by_liveness=settings.reclaim_by_liveness,
            liveness_ttl_s=settings.liveness_ttl_s,
            liveness_refresh_s=settings.liveness_refresh_s,
            stuck_factor=settings.stuck_factor,
            stuck_min_s=settings.stuck_min_s,
            stuck_max_s=settings.stuck_max_s,
            selfie_ttl_s=settings.selfie_ttl_s,
            result_ttl_s=settings.result_ttl_s,
            job_ttl_s=settings.job_ttl_s,
            maintenance_interval_s=max(settings.reclaim_interval_s, 60.0),
            delivery_lease_s=settings.reclaim_idle_s,
        )
