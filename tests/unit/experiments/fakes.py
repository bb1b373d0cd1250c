"""A fake scenario and fake steps for runner/report unit tests (never used outside tests)."""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict

from edgeferry.experiments import registry
from edgeferry.experiments.runner import TargetInfo
from edgeferry.experiments.scenario import (
    Endpoints,
    PhaseResult,
    Scenario,
    ScenarioContext,
    TrialResult,
)


class FakeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size_mb: int
    mode: str = "a"


class FakeWorkload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interrupt_at: int | None = None  # raise KeyboardInterrupt at this call number
    fail_at: int | None = None


CALLS: list[dict[str, Any]] = []
INTERRUPT_AT: list[int] = []  # Ctrl-C at these call numbers (set by tests)


class FakeScenario(Scenario):
    def prepare(self, ctx: ScenarioContext) -> None:
        self.rng = random.Random(ctx.seed)
        self.n = 0

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        self.n += 1
        CALLS.append(params)
        if self.workload.interrupt_at == len(CALLS) or len(CALLS) in INTERRUPT_AT:
            raise KeyboardInterrupt
        if self.workload.fail_at == len(CALLS):
            raise RuntimeError("boom")
        size = params["size_mb"] * 1_000_000
        return TrialResult(
            phases=[PhaseResult("push", size * 8 / 40e6 * (1 + self.rng.random()), size),
                    PhaseResult("start", 0.01 + self.rng.random() / 100)],
            metrics={"score": self.rng.random()}, bandwidth_bps=40e6)


registry.register(registry.ScenarioSpec(
    name="fake", summary="unit-test fake",
    implementation="tests.unit.experiments.fakes:FakeScenario",
    params=FakeParams, workload=FakeWorkload, phases=("push", "start"),
    metrics={"score": "ratio"}))
registry.register(registry.ScenarioSpec(
    name="fake-missing", summary="unit-test: not implemented",
    implementation="edgeferry.experiments.scenarios.does_not_exist:Nope",
    params=FakeParams, workload=FakeWorkload, phases=("push",), needs="the moon"))


class FakeSteps:
    def __init__(self) -> None:
        self.called: list[str] = []

    def bring_up(self, experiment: Any, log: Any) -> TargetInfo:
        self.called.append("bring_up")
        return TargetInfo(note="fake target")

    def deploy(self, experiment: Any, target: Any, log: Any) -> tuple[Endpoints, str]:
        self.called.append("deploy")
        return Endpoints(), "fake deploy"

    def verify(self, experiment: Any, target: Any, log: Any) -> dict[str, Any]:
        self.called.append("verify")
        return {"fake": "ok"}


class NullProgress:
    def __init__(self) -> None:
        self.phases: list[str] = []
        self.trials: list[tuple[int, int]] = []

    def start(self, total: int, done: int) -> None: ...

    def trial(self, number: int, total: int, trial: Any) -> None:
        self.trials.append((number, total))

    def phase(self, name: str) -> None:
        self.phases.append(name)

    def advance(self) -> None: ...

    def stop(self) -> None: ...

    def log(self, message: str) -> None: ...
