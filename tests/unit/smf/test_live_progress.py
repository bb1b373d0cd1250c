"""Live phase reporting: `MigrationPlan.run(on_record=...)` reports each record as its outcome
is known, in the order of the records it returns (or MigrationFailed carries); `PhaseStream`
hands them across threads, bounded, and a reader that leaves never blocks the migration."""

from __future__ import annotations

import threading

import pytest

from agents.smf.domain import (
    MigrationFailed,
    MigrationPlan,
    MigrationState,
    Phase,
    PhaseOutcome,
    PhaseRecord,
    PhaseResult,
)
from agents.smf.progress import PhaseStream


def _boom(_: object) -> PhaseResult:
    raise RuntimeError("node agent gone")


def _ok(name: str, seen: list[str] | None = None) -> Phase:
    def run(_: MigrationState) -> PhaseResult:
        if seen is not None:
            seen.append(f"ran {name}")
        return PhaseResult(detail=f"{name} done")
    return Phase(name, run)


def test_records_are_reported_as_each_phase_ends_in_the_returned_order() -> None:
    log: list[str] = []
    plan = MigrationPlan([_ok("a", log), _ok("b", log), _ok("c", log)])
    records = plan.run(None, lambda r: log.append(f"saw {r.phase} {r.outcome}"))  # type: ignore[arg-type]
    # each report comes after its phase ran and before the next one starts
    assert log == ["ran a", "saw a ok", "ran b", "saw b ok", "ran c", "saw c ok"]
    assert [r.phase for r in records] == ["a", "b", "c"]


def test_a_failure_reports_the_failed_the_skipped_then_the_compensation() -> None:
    seen: list[PhaseRecord] = []
    plan = MigrationPlan([_ok("stop"), Phase("push", _boom), _ok("pull"), _ok("run")])
    plan.on_failure.append(lambda st, phase, exc: [
        PhaseRecord("abort", outcome=PhaseOutcome.OK, detail=f"after {phase}")])
    with pytest.raises(MigrationFailed) as failed:
        plan.run(None, seen.append)  # type: ignore[arg-type]
    assert [(r.phase, r.outcome) for r in seen] == [
        ("stop", PhaseOutcome.OK), ("push", PhaseOutcome.FAILED),
        ("pull", PhaseOutcome.SKIPPED), ("run", PhaseOutcome.SKIPPED),
        ("abort", PhaseOutcome.OK)]
    assert seen == failed.value.records


def test_an_observer_that_raises_changes_nothing() -> None:
    def bad(_: PhaseRecord) -> None:
        raise ValueError("observer bug")

    records = MigrationPlan([_ok("a"), _ok("b")]).run(None, bad)  # type: ignore[arg-type]
    assert [(r.phase, r.outcome) for r in records] == [("a", PhaseOutcome.OK),
                                                       ("b", PhaseOutcome.OK)]


def _records(n: int, gate: threading.Event | None = None) -> PhaseStream[str]:
    def work(on_phase: object) -> str:
        for i in range(n):
            if gate is not None and i == 1:
                gate.wait(5)
            on_phase(PhaseRecord(f"p{i}", outcome=PhaseOutcome.OK))  # type: ignore[operator]
        return f"{n} phases"
    return PhaseStream(work, name="test-progress", max_queued=2, poll_s=0.01)


def test_the_reader_gets_every_record_in_order_then_the_result() -> None:
    run = _records(7).start()  # more than the queue holds: the worker waits for the reader
    assert [r.phase for r in run.records()] == [f"p{i}" for i in range(7)]
    assert run.result() == "7 phases"
    run.thread.join(2)
    assert not run.thread.is_alive()


def test_the_work_s_exception_is_raised_by_result() -> None:
    def work(_: object) -> str:
        raise LookupError("no such service")

    run: PhaseStream[str] = PhaseStream(work, poll_s=0.01).start()
    assert list(run.records()) == []
    with pytest.raises(LookupError, match="no such service"):
        run.result()


def test_a_reader_that_leaves_never_blocks_the_migration() -> None:
    gate = threading.Event()
    run = _records(50, gate).start()
    first = next(iter(run.records()))
    assert first.phase == "p0"
    run.close()  # the reader goes away; 49 records would overflow the queue of 2
    gate.set()
    run.thread.join(5)
    assert not run.thread.is_alive() and run.finished
    assert run.result() == "50 phases"  # the work ran to its end


def test_a_reader_whose_caller_is_gone_stops_and_abandons() -> None:
    gate = threading.Event()
    run = _records(3, gate).start()
    alive = [True]
    got = []
    for record in run.records(alive=lambda: alive[0]):
        got.append(record.phase)
        alive[0] = False  # the client cancelled after the first phase
    assert got == ["p0"] and not run.finished
    gate.set()
    run.thread.join(5)
    assert not run.thread.is_alive()
