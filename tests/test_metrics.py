"""The Prometheus text exposition written for /metrics."""

from __future__ import annotations

import pytest

from bot.metrics import BotMetrics, Histogram, exposition, family


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    histogram = Histogram("x_seconds", "X.", buckets=(0.1, 1.0))
    for value in (0.05, 0.5, 0.7, 3.0):
        histogram.observe(value)
    assert histogram.render() == [
        "# HELP x_seconds X.",
        "# TYPE x_seconds histogram",
        'x_seconds_bucket{le="0.1"} 1',
        'x_seconds_bucket{le="1"} 3',
        'x_seconds_bucket{le="+Inf"} 4',
        "x_seconds_sum 4.25",
        "x_seconds_count 4",
    ]
    with pytest.raises(ValueError, match="increasing"):
        Histogram("bad", "B.", buckets=(1.0, 0.5))


def test_families_escape_labels_and_bot_metrics_count_deliveries() -> None:
    lines = family("jobs", "gauge", "Jobs.", [({"state": 'a"b\\c'}, 2)])
    assert lines[-1] == 'jobs{state="a\\"b\\\\c"} 2'
    metrics = BotMetrics()
    metrics.observe_delivery("web", "done", 0.2, 1.5)
    metrics.observe_delivery("web", "done", None, 2.0)
    metrics.observe_delivery("telegram", "failed", None, None)
    text = exposition(metrics.render())
    assert 'avatarbot_outcomes_delivered_total{platform="web",status="done"} 2\n' in text
    assert 'avatarbot_outcomes_delivered_total{platform="telegram",status="failed"} 1\n' in text
    assert "avatarbot_generation_seconds_count 1\n" in text
    assert "avatarbot_turnaround_seconds_count 2\n" in text
    assert text.endswith("\n")
