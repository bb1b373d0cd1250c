"""The fault test's checker can fail: fed a corrupted block, a double-running sample, a location
that runs nothing, faults outside their phase, it reports each (fakes only here, in the unit
test of the checker)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from tests.integration.fault_checker import (
    KINDS,
    Sampler,
    Verdict,
    check,
    double_running,
    landed,
    lost_blocks,
    phase_spans,
    schedule,
)

BLOCKS = {1: b"a" * 64, 2: b"b" * 64, 3: b"c" * 64}
EXPECTED = {bid: hashlib.sha256(data).hexdigest() for bid, data in BLOCKS.items()}
SINGLE = [(0.0, ("edge-a",)), (0.1, ("edge-a",)), (0.2, ()), (0.3, ("edge-b",))]


def _run(**over: Any) -> Verdict:
    args: dict[str, Any] = dict(
        landings=[True] * 10, max_missed_fraction=0.1, expected_blocks=EXPECTED,
        read=BLOCKS.__getitem__, samples=SINGLE, location="edge-b", running_hosts=["edge-b"],
        retries_needed=3, completed=10, not_completed=0)
    args.update(over)
    return check(**args)


def test_a_clean_run_passes_with_its_counts() -> None:
    v = _run()
    assert v.problems == []
    assert (v.faults_injected, v.missed, v.lost_blocks, v.blocks, v.double_running_samples,
            v.samples) == (10, 0, 0, 3, 0, 4)


def test_a_corrupted_block_is_reported_lost() -> None:
    corrupted = dict(BLOCKS)
    corrupted[2] = b"b" * 63 + b"X"
    assert lost_blocks(EXPECTED, corrupted.__getitem__) == [2]
    v = _run(read=corrupted.__getitem__)
    assert v.lost_blocks == 1 and any("lost" in p for p in v.problems)


def test_an_unreadable_block_is_reported_lost() -> None:
    def read(bid: int) -> bytes:
        if bid == 3:
            raise OSError("gone")
        return BLOCKS[bid]
    assert lost_blocks(EXPECTED, read) == [3]


def test_a_double_running_sample_is_reported() -> None:
    samples = [*SINGLE, (0.4, ("edge-a", "edge-b")), (0.5, ("edge-b",))]
    assert double_running(samples) == 1
    v = _run(samples=samples)
    assert v.double_running_samples == 1
    assert any("two running" in p for p in v.problems)


def test_no_sample_at_all_fails() -> None:
    assert any("no sample" in p for p in _run(samples=[]).problems)


def test_a_location_without_its_copy_or_with_two_fails() -> None:
    assert not _run(running_hosts=["edge-a"]).location_runs
    assert _run(running_hosts=[]).problems
    assert _run(running_hosts=["edge-a", "edge-b"]).problems


def test_a_migration_not_completed_fails() -> None:
    assert any("not completed" in p for p in _run(not_completed=1).problems)


def test_too_many_missed_faults_fail_a_few_do_not() -> None:
    assert _run(landings=[True] * 9 + [False]).problems == []
    v = _run(landings=[True] * 8 + [False] * 2)
    assert v.missed == 2 and v.faults_injected == 8
    assert any("missed" in p for p in v.problems)


def _line(event: str, phase: str, at: float, migration: str = "m1") -> str:
    return json.dumps({"ts": "x", "event": event, "migration": migration, "phase": phase,
                       "at": at, "outcome": "ok"})


def test_landing_is_inside_the_logged_span_only() -> None:
    lines = [_line("phase_started", "stop", 10.0), "not json", '{"event": "serving"}',
             _line("phase_ended", "stop", 10.5), _line("phase_started", "push", 10.6)]
    spans = phase_spans(lines)
    assert [(s.phase, s.outcome) for s in spans] == [("stop", "ok"), ("push", "")]
    assert landed(10.2, "stop", spans, since=9.0)
    assert not landed(10.55, "stop", spans, since=9.0)   # after the end: missed
    assert not landed(9.9, "stop", spans, since=9.0)     # before the start
    assert not landed(10.2, "stop", spans, since=10.1)   # a span of an earlier migration
    assert not landed(10.2, "push", spans, since=9.0)    # the wrong phase
    assert landed(99.0, "push", spans, since=9.0)        # no end logged: the SMF died in it


def test_a_phase_started_again_without_an_end_closes_as_open() -> None:
    lines = [_line("phase_started", "run", 1.0), _line("phase_started", "run", 5.0),
             _line("phase_ended", "run", 6.0)]
    spans = phase_spans(lines)
    assert sorted((s.started, s.ended) for s in spans) == [(1.0, None), (5.0, 6.0)]


def test_schedule_is_seeded_and_uses_only_the_given_phases() -> None:
    phases = ["stop", "push", "rasp_transfer"]
    a, b = schedule(7, 200, phases), schedule(7, 200, phases)
    assert a == b and a != schedule(8, 200, phases)
    assert {f.phase for f in a} == set(phases) and {f.kind for f in a} == set(KINDS)
    assert all(0 <= f.fraction < 1 for f in a)
    assert all((0.5 <= f.cut_s <= 2.5) == f.kind.startswith("cut") for f in a)


def test_sampler_samples_at_its_interval() -> None:
    calls = iter([["edge-a"], ["edge-a", "edge-b"]] + [["edge-b"]] * 1000)
    s = Sampler(lambda: next(calls), interval=0.01).start()
    time.sleep(0.2)
    s.stop()
    assert len(s.samples) >= 5 and double_running(s.samples) == 1
