"""A small Prometheus text exposition (format 0.0.4): counters, gauges, histograms.

Enough for avatarbot's `/metrics` without another dependency. Values observed in this
process (latencies of the results it delivered) live here; queue-wide numbers (jobs by
status, depth, live workers) are read from Redis when scraped and set as gauges.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets (seconds) from a CPU sketch (~10 ms) to a slow GPU queue (minutes).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Histogram:
    """A cumulative histogram with fixed buckets; thread-safe."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS):
        if list(buckets) != sorted(buckets) or not buckets:
            raise ValueError("buckets must be a non-empty increasing sequence")
        self.name = name
        self.help = help_text
        self.buckets = tuple(buckets)
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._sum += value
            self._count += 1
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1

    @property
    def count(self) -> int:
        return self._count

    def render(self) -> list[str]:
        with self._lock:
            lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
            for bound, count in zip(self.buckets, self._counts, strict=True):
                lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {count}')
            lines.append(f'{self.name}_bucket{{le="+Inf"}} {self._count}')
            lines.append(f"{self.name}_sum {_number(self._sum)}")
            lines.append(f"{self.name}_count {self._count}")
        return lines


def family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]
) -> list[str]:
    """One metric family of counters or gauges, e.g. jobs by status."""
    if kind not in ("counter", "gauge"):
        raise ValueError(f"kind must be counter or gauge, got {kind!r}")
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines.extend(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)
    return lines


def exposition(*families: list[str]) -> str:
    return "\n".join(line for fam in families for line in fam) + "\n"


class QueueNumbers(Protocol):
    """What the queue-wide families need (`bot.queue.QueueStats` has it)."""

    @property
    def depth(self) -> int: ...

    @property
    def running(self) -> int: ...

    @property
    def dead_letters(self) -> int: ...

    @property
    def live_workers(self) -> int: ...

    @property
    def oldest_age_s(self) -> float | None: ...


def queue_families(stats: QueueNumbers | None) -> list[list[str]]:
    """The queue-wide families every process (bot and worker) exports, read from Redis at
    scrape time: `avatarbot_up`, and when Redis answered (`stats` not None) jobs by
    state, depth, lag, dead letters and live workers. Defined here only, so a dashboard
    sees the same names and help texts whichever process it scrapes."""
    families = [
        family(
            "avatarbot_up",
            "gauge",
            "1 when Redis answered this scrape.",
            [({}, 1.0 if stats is not None else 0.0)],
        )
    ]
    if stats is None:
        return families
    return [
        *families,
        family(
            "avatarbot_jobs",
            "gauge",
            "Jobs in the queue by state (queued: waiting for a worker).",
            [({"state": "queued"}, stats.depth), ({"state": "running"}, stats.running)],
        ),
        family("avatarbot_queue_depth", "gauge", "Jobs waiting for a worker.", [({}, stats.depth)]),
        family(
            "avatarbot_queue_lag_seconds",
            "gauge",
            "Age of the oldest queued or running job (0 when none).",
            [({}, stats.oldest_age_s or 0.0)],
        ),
        family(
            "avatarbot_dead_letters",
            "gauge",
            "Jobs that failed on every delivery (operator inbox).",
            [({}, stats.dead_letters)],
        ),
        family(
            "avatarbot_workers_alive",
            "gauge",
            "Workers with a fresh heartbeat.",
            [({}, stats.live_workers)],
        ),
    ]


class BotMetrics:
    """What one bot process observes: outcomes it delivered and how long they took."""

    def __init__(self) -> None:
        self.generation_seconds = Histogram(
            "avatarbot_generation_seconds",
            "Time a worker spent generating a delivered job's images.",
        )
        self.turnaround_seconds = Histogram(
            "avatarbot_turnaround_seconds",
            "Time from enqueue to the outcome being delivered to the user.",
        )
        self._delivered: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def observe_delivery(
        self,
        platform: str,
        status: str,
        generation_s: float | None,
        turnaround_s: float | None,
    ) -> None:
        with self._lock:
            key = (platform, status)
            self._delivered[key] = self._delivered.get(key, 0) + 1
        if generation_s is not None:
            self.generation_seconds.observe(generation_s)
        if turnaround_s is not None:
            self.turnaround_seconds.observe(turnaround_s)

    def render(self) -> list[str]:
        with self._lock:
            samples = [
                ({"platform": p, "status": s}, float(n))
                for (p, s), n in sorted(self._delivered.items())
            ]
        return [
            *family(
                "avatarbot_outcomes_delivered_total",
                "counter",
                "Job outcomes this process delivered to users, by platform and status.",
                samples,
            ),
            *self.generation_seconds.render(),
            *self.turnaround_seconds.render(),
        ]


class LabelledHistogram:
    """Histograms of one family split by one label (e.g. latency per style); thread-safe."""

    def __init__(
        self, name: str, help_text: str, label: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        self.name = name
        self.help = help_text
        self.label = label
        self.buckets = tuple(buckets)
        self._series: dict[str, Histogram] = {}
        self._lock = threading.Lock()

    def observe(self, value_of_label: str, value: float) -> None:
        with self._lock:
            series = self._series.get(value_of_label)
            if series is None:
                series = Histogram(self.name, self.help, self.buckets)
                self._series[value_of_label] = series
        series.observe(value)

    def count(self, value_of_label: str) -> int:
        series = self._series.get(value_of_label)
        return series.count if series is not None else 0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted(self._series.items())
        for label_value, series in items:
            labels = {self.label: label_value}
            for line in series.render()[2:]:
                metric, _, value = line.rpartition(" ")
                if "{" in metric:
                    base, _, rest = metric.partition("{")
                    extra = _labels(labels)[1:-1]
                    lines.append(f"{base}{{{extra},{rest} {value}")
                else:
                    lines.append(f"{metric}{_labels(labels)} {value}")
        return lines
