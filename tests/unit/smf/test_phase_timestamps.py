"""Phase records carry when each phase started and ended on the host clock, and the plan logs
phase_started / phase_ended with those instants (what the fault test confirms landings with)."""

from __future__ import annotations

import io
import itertools
import json
import logging

import pytest

from agents.common.logging import JsonLineFormatter
from agents.smf.domain import MigrationFailed, MigrationPlan, Phase, PhaseOutcome, PhaseResult


def _boom(_: object) -> PhaseResult:
    raise RuntimeError("node agent gone")


def test_started_and_ended_follow_the_host_clock_and_reach_the_history() -> None:
    wall = itertools.count(100.0, 1.0)
    plan = MigrationPlan([Phase("stop", lambda s: None), Phase("push", lambda s: None)],
                         wall=lambda: next(wall))
    records = plan.run(None)  # type: ignore[arg-type]
    assert [(r.started_at, r.ended_at) for r in records] == [(100.0, 101.0), (102.0, 103.0)]
    assert records[1].as_dict()["started_at"] == 102.0
    assert records[1].as_dict()["ended_at"] == 103.0


def test_a_failed_phase_ends_and_the_skipped_ones_never_start() -> None:
    wall = itertools.count(10.0, 1.0)
    plan = MigrationPlan([Phase("stop", lambda s: None), Phase("push", _boom),
                          Phase("pull", lambda s: None)], wall=lambda: next(wall))
    with pytest.raises(MigrationFailed) as failed:
        plan.run(None)  # type: ignore[arg-type]
    stop, push, pull = failed.value.records[:3]
    assert (push.outcome, push.started_at, push.ended_at) == (PhaseOutcome.FAILED, 12.0, 13.0)
    assert stop.ended_at == 11.0
    assert (pull.outcome, pull.started_at, pull.ended_at) == (PhaseOutcome.SKIPPED, 0.0, 0.0)


def test_the_plan_logs_each_start_and_end_with_its_instant() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter("smf"))
    logger = logging.getLogger("edgeferry.smf.plan")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        wall = itertools.count(5.0, 0.5)
        plan = MigrationPlan([Phase("commit", lambda s: None)], wall=lambda: next(wall))
        plan.run(None)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    events = [json.loads(line) for line in stream.getvalue().splitlines()
              if '"phase_' in line]
    assert [(e["event"], e["phase"], e["at"]) for e in events] == [
        ("phase_started", "commit", 5.0), ("phase_ended", "commit", 5.5)]
