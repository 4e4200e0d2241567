from __future__ import annotations

import pytest

from bot.jobs import (
    FailureReason,
    Job,
    JobRequest,
    JobResult,
    JobStatus,
    Outcome,
    Owner,
    ResultImage,
    Route,
    variant_seeds,
)

OWNER = Owner(platform="telegram", user_id="42", chat_id="-100")
ROUTE = Route(bot="main", data={"message_id": "7"})


def test_job_round_trips_through_redis_fields() -> None:
    job = Job.from_request(JobRequest(OWNER, ROUTE, "sketch", variants=3, seed=5))
    job = job.with_status(JobStatus.FAILED, attempts=2, failure=FailureReason.DEAD_LETTER)
    wire = {k.encode(): v.encode() for k, v in job.to_fields().items()}
    assert Job.from_fields(wire) == job


def test_variants_and_seed_are_validated() -> None:
    with pytest.raises(ValueError, match="variants"):
        JobRequest(OWNER, ROUTE, "sketch", variants=5)
    with pytest.raises(ValueError, match="seed"):
        JobRequest(OWNER, ROUTE, "sketch", seed=-1)


def test_variant_seeds_are_distinct_and_reproducible() -> None:
    seeds = variant_seeds(2**32 - 1, 4)
    assert len(set(seeds)) == 4
    assert seeds == variant_seeds(2**32 - 1, 4)
    assert all(0 <= s < 2**32 for s in seeds)


def test_result_round_trip_keeps_bytes() -> None:
    result = JobResult(
        job_id="abc",
        style_id="oil",
        images=(ResultImage(b"\x89PNG\x00\xff", "image/png", 512, 512, 9),),
        backend="cpu",
        elapsed_s=0.25,
        meta={"k": "v"},
    )
    assert JobResult.from_fields(result.to_fields()) == result


def test_outcome_round_trip() -> None:
    o = Outcome("abc", JobStatus.DEAD, FailureReason.DEAD_LETTER)
    assert Outcome.from_fields({k.encode(): v.encode() for k, v in o.to_fields().items()}) == o


def test_malformed_job_record_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="malformed"):
        Job.from_fields({"id": "x"})
