"""The fault suite's short scenario (bench/faults.py runs the long one): real worker and bot
processes and a real Redis with AOF, while a worker is SIGKILLed, Redis restarts, a bot
process is SIGKILLed and restarted and a poison job kills workers. Every request must be
answered exactly once; nothing lost, nothing orphaned; only the poison is dead-lettered.

The stuck bound's floor is set to ten minutes: every job a dead worker held (the SIGKILLed
one's, and those beside the poison job) can only have been recovered through the dead
worker's lapsed liveness record, with the liveness settings at their defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import Scenario, run_scenario


@pytest.mark.slow
async def test_short_fault_scenario_answers_every_request_exactly_once(tmp_path: Path) -> None:
    scenario = Scenario(
        jobs=40,
        users=10,
        workers=2,
        bots=2,
        worker_kills=1,
        redis_restarts=1,
        bot_restarts=1,
        poison=1,
        reclaim_idle_s=1.0,  # a bot's outcome lease: the restarted bot's are sent soon
        reclaim_interval_s=0.5,
        stuck_min_s=600.0,
        answer_timeout_s=60.0,
    )
    report = await run_scenario(scenario, tmp_path)
    assert report.requests == 41, report.render()
    assert report.answered_once == 41, report.render()
    assert report.lost == 0
    assert report.duplicates == 0
    assert report.wrong_outcome == 0
    assert report.orphaned_selfies == 0
    assert report.dead_letters == 1
    assert report.unconfirmed_outcomes == 0
    assert (report.worker_kills, report.redis_restarts, report.bot_restarts) == (1, 1, 1)
    assert report.worker_deaths >= 1 + scenario.max_deliveries  # the kill and the poison's
    assert report.clean_exits == report.processes_stopped, report.render()
    assert report.recoveries.unanswered == 0, report.render()
    assert len(report.recoveries.answered_s) == report.recoveries.held
    assert report.notes == [], report.render()
