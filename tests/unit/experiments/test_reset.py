"""The untimed reset between migration trials: it moves the service back to its source, after
waiting (bounded) for the source's CPU use to read below the policy's cHRcu when asked to."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from edgeferry.experiments.scenarios import migration_common
from edgeferry.experiments.scenarios.migration_common import reset_to


class _Eco:
    def __init__(self, readings: list[float], where: str = "edge2", migrated: bool = True):
        self.readings, self.where, self.ok = list(readings), where, migrated
        self.reported: list[float] = []
        self.moved_at: list[tuple[str, float]] = []

    def location(self, handle: Any) -> str:
        return self.where

    def report_edge_state(self) -> dict[str, tuple[float, float]]:
        cpu = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        self.reported.append(cpu)
        return {"edge1": (cpu, 30.0), "edge2": (5.0, 30.0)}

    def migrate(self, handle: Any, destination: str) -> Any:
        self.moved_at.append((destination, self.reported[-1]))
        return SimpleNamespace(migrated=self.ok, error_code="", error_message="")


@pytest.fixture
def ctx() -> Any:
    logs: list[str] = []
    return SimpleNamespace(log=logs.append, logs=logs)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [0.0]
    monkeypatch.setattr(migration_common.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    monkeypatch.setattr(migration_common.time, "monotonic", lambda: now[0])
    return now


def test_the_reset_waits_for_the_source_to_settle_then_moves(ctx: Any, clock: list[float]):
    eco = _Eco([90.0, 75.0, 61.0, 40.0])
    reset_to(ctx, eco, SimpleNamespace(name="svc"), "edge1", settle_cpu_below=60.0)
    assert eco.moved_at == [("edge1", 40.0)]  # moved once, on the first reading under 60 %
    assert clock[0] == 3.0
    assert "edge1: waited 3.0 s for its CPU use to settle below 60 % (now 40.0 %)" in ctx.logs


def test_a_source_that_stays_busy_is_tried_after_the_bound(ctx: Any, clock: list[float]):
    eco = _Eco([95.0])
    reset_to(ctx, eco, SimpleNamespace(name="svc"), "edge1", settle_cpu_below=60.0,
             settle_s=5.0)
    assert eco.moved_at == [("edge1", 95.0)] and clock[0] == 5.0


def test_without_a_threshold_or_at_the_source_nothing_waits(ctx: Any, clock: list[float]):
    busy = _Eco([95.0])
    reset_to(ctx, busy, SimpleNamespace(name="svc"), "edge1")
    assert busy.moved_at == [("edge1", 95.0)] and clock[0] == 0.0
    home = _Eco([95.0], where="edge1")
    reset_to(ctx, home, SimpleNamespace(name="svc"), "edge1", settle_cpu_below=60.0)
    assert home.moved_at == [] and home.reported == []
