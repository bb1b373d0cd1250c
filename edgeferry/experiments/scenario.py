"""The scenario plug-in interface: what a scenario gets (`ScenarioContext`) and returns.

A scenario is a class registered by name in `edgeferry.experiments.registry`::

    class MyScenario(Scenario):
        def prepare(self, ctx: ScenarioContext) -> None: ...        # once, before any trial
        def run_trial(self, ctx: ScenarioContext, params: dict) -> TrialResult: ...
        def teardown(self, ctx: ScenarioContext) -> None: ...       # once, also after failures

`run_trial` times each phase with a monotonic clock (`PhaseTimer` helps) and returns them in order;
the runner adds trial bookkeeping, writes JSONL/CSV and never invents a number. A scenario that
cannot run (a missing agent, a missing endpoint) raises `ScenarioUnavailable` from `prepare` (or
from `check`), before any trial starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgeferry.errors import EXIT_NOT_IMPLEMENTED, EdgeferryError

if TYPE_CHECKING:  # pragma: no cover
    from fabric import Connection

    from edgeferry.lab.state import LabState

Outcome = Literal["ok", "failed"]


class ScenarioUnavailable(EdgeferryError):
    """The scenario (or something it needs) is not available: raised before any trial runs."""

    exit_code = EXIT_NOT_IMPLEMENTED


class TrialFailed(EdgeferryError):
    """A trial could not complete; the runner records it as outcome 'failed' (with the phases
    measured so far) and continues with the next trial."""

    def __init__(self, message: str, phases: list[PhaseResult] | None = None) -> None:
        super().__init__(message)
        self.phases = list(phases or [])


@dataclass
class PhaseResult:
    """One phase of one trial: monotonic wall time, bytes moved, outcome, how it was measured."""

    phase: str
    wall_s: float
    bytes: int = 0
    outcome: Outcome = "ok"
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "wall_s": self.wall_s, "bytes": self.bytes,
                "outcome": self.outcome, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhaseResult:
        return cls(phase=data["phase"], wall_s=float(data["wall_s"]),
                   bytes=int(data.get("bytes", 0)), outcome=data.get("outcome", "ok"),
                   detail=dict(data.get("detail") or {}))


@dataclass
class TrialResult:
    """What a scenario returns for one trial.

    ``metrics`` are per-trial derived numbers in the units the scenario's spec declares
    (e.g. a cost ratio); ``bandwidth_bps`` is the link bandwidth measured before the trial
    (when the scenario measures one), used for the physical bound in reports.
    """

    phases: list[PhaseResult]
    metrics: dict[str, float] = field(default_factory=dict)
    bandwidth_bps: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome:
        return "ok" if self.phases and all(p.outcome == "ok" for p in self.phases) else "failed"

    @property
    def total_s(self) -> float:
        return sum(p.wall_s for p in self.phases)

    @property
    def total_bytes(self) -> int:
        return sum(p.bytes for p in self.phases)


class PhaseTimer:
    """Collects phases: ``with timer.phase("push") as ph: ...; ph.bytes = n``.

    An exception inside a phase records it as failed (with the error) and propagates.
    """

    def __init__(self, progress: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.phases: list[PhaseResult] = []
        self._progress = progress
        self._clock = clock

    @contextmanager
    def phase(self, name: str) -> Iterator[PhaseResult]:
        if self._progress is not None:
            self._progress(name)
        result = PhaseResult(phase=name, wall_s=0.0)
        start = self._clock()
        try:
            yield result
        except BaseException as err:
            result.wall_s = self._clock() - start
            result.outcome = "failed"
            result.detail.setdefault("error", f"{type(err).__name__}: {err}"[:500])
            self.phases.append(result)
            raise
        result.wall_s = self._clock() - start
        self.phases.append(result)


@dataclass(frozen=True)
class TLSMaterial:
    """mTLS files for dialling the agents (lab CA, a controller client certificate and key)."""

    ca_cert: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Endpoints:
    """Where the deployed agents listen, by agent name -> {host name: "address:port"}.

    Filled by the deploy step (issue 3); empty when nothing was deployed.
    """

    agents: dict[str, dict[str, str]] = field(default_factory=dict)
    tls: TLSMaterial | None = None

    def of(self, agent: str) -> dict[str, str]:
        if agent not in self.agents:
            raise ScenarioUnavailable(
                f"no endpoint of the {agent!r} agent is known: deploy it first "
                "(`edgeferry run` without --skip-deploy)"
            )
        return self.agents[agent]


@dataclass
class ScenarioContext:
    """Everything a scenario may use. Scenarios must not reach for anything else."""

    experiment: str
    part: str
    seed: int
    workload: dict[str, Any]
    run_dir: Path
    work_dir: Path  # scratch space for this part (kept with the run)
    lab: LabState | None = None
    inventory: Path | None = None
    endpoints: Endpoints = field(default_factory=Endpoints)
    connect: Callable[[str], Connection] | None = None  # host name -> Fabric connection
    progress: Callable[[str], None] = lambda phase: None
    log: Callable[[str], None] = lambda message: None

    def connection(self, host: str) -> Connection:
        if self.connect is None:
            raise ScenarioUnavailable(
                f"part {self.part!r} needs SSH to host {host!r}, but the target has no hosts "
                "(use an emulated lab or an inventory target)"
            )
        return self.connect(host)

    def host_names(self, role: str) -> list[str]:
        if self.lab is None:
            return []
        return self.lab.hosts_by_role(role)


class Scenario:
    """Base class of scenario implementations (see the module docstring)."""

    def __init__(self, workload: Any) -> None:
        self.workload = workload  # the validated workload model of the scenario's spec

    def prepare(self, ctx: ScenarioContext) -> None:
        """Set up once before the trials; raise ScenarioUnavailable when something is missing."""

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        raise NotImplementedError

    def teardown(self, ctx: ScenarioContext) -> None:
        """Undo what prepare and the trials changed (always called once prepare ran)."""
