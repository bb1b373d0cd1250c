"""The optional phases of Migrate Service (data audit, ledger write, self-evaluation, container
phases) slot into the plan in the documented order; a denial stops the plan there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from agents.security.capability import CapType, ObjectId, SealedCapabilityAuthority
from agents.security.crypto import Identity
from agents.security.rasp import Resources
from agents.security.stores import InMemoryRevocationStore
from agents.smf.domain import (
    DIFF_ORDER,
    PAPER_ORDER,
    DeviceEntry,
    Location,
    MigrationFailed,
    MigrationState,
    Phase,
    PhaseOutcome,
    PhaseRecord,
    ServerEntry,
    ServiceEntry,
    UserEntry,
)
from agents.smf.migration import AuditHook, LedgerHook, MigrationPorts, build_plan


@dataclass
class FakeAudit:
    permit: bool
    calls: list[tuple[str, str | None]] = field(default_factory=list)

    def evaluate(self, token: bytes, container: str, *, edge: str | None = None,
                 request_id: str = "", **_: Any) -> Any:
        self.calls.append((container, edge))
        return type("V", (), {"permit": self.permit, "reasons": ("country",),
                              "audit_seconds": 0.0001, "log_seq": 7})()

    def set_container_location(self, token: bytes, container: str, edge: str) -> None:
        self.calls.append((container, f"located:{edge}"))


@dataclass
class FakeLedger:
    accept: bool = True
    written: list[Any] = field(default_factory=list)

    def write_and_wait(self, meta: Any, quorum: float, timeout: float) -> Any:
        self.written.append(meta)
        return type("W", (), {"ok": True, "tx_id": "tx1", "confirmations": 9,
                              "total_nodes": 10, "reason": ""})()

    def self_evaluate(self, container_id: str, node: Any) -> Any:
        return type("E", (), {"accept": self.accept, "reason": "memory ok"})()


class FakeEndpoint:
    def identity(self) -> tuple[Any, Resources]:
        return Identity.generate("edge2").public, Resources(1000, 1024, 10, 10)


class FakeRelay:
    """Stands in for the RAS client; the plan's RASP phases are replaced below."""


class FakeCore:
    def __init__(self) -> None:
        self.committed: list[tuple[str, int, str]] = []

    def commit_location(self, sid: str, epoch: int, server: str) -> Location:
        self.committed.append((sid, epoch, server))
        return Location(sid, server, epoch + 1)


def _state(order: str = PAPER_ORDER) -> MigrationState:
    auth = SealedCapabilityAuthority("smf", b"k" * 32, store=InMemoryRevocationStore(),
                                     master_types=list(CapType))
    cap = auth.issue_master(CapType.SERVICE, ObjectId(1), 0)
    a, b = Identity.generate("edge1").public, Identity.generate("edge2").public
    src = ServerEntry("edge1", "", a, "10.0.0.1", 1, 0)
    dst = ServerEntry("edge2", "", b, "10.0.0.2", 1, 0)
    service = ServiceEntry("svc-1", "nms", "1", "l", "", 0, "tcp", Resources(cpu=500), "img",
                           cap, (src, dst))
    return MigrationState("mig-1", service, src, dst, UserEntry("u", "A", "B", "", 0, "", cap),
                          DeviceEntry("d", "l", "p", "A", "B", cap), epoch=1, order=order)


def _recorder(ran: list[str], name: str) -> Callable[[MigrationState], None]:
    def run(state: MigrationState) -> None:
        ran.append(name)

    return run


def _plan(audit: FakeAudit | None, ledger: FakeLedger | None, ran: list[str],
          order: str = PAPER_ORDER) -> Any:
    ports = MigrationPorts(relay=lambda src, dst, tap: FakeRelay(),  # type: ignore[arg-type,return-value]
                           endpoint=lambda s: FakeEndpoint())  # type: ignore[arg-type,return-value]
    if audit is not None:
        ports.audit = AuditHook(audit, b"token")  # type: ignore[arg-type]
    if ledger is not None:
        ports.ledger = LedgerHook(ledger)  # type: ignore[arg-type]

    class Container:
        def phases(self, order: str) -> list[Phase]:
            names = ("stop", "commit", "push", "pull", "run", "source_cleanup")
            if order == DIFF_ORDER:
                names = ("prepull", *names)
            return [Phase(n, _recorder(ran, n)) for n in names]

        def abort(self, state: MigrationState, failed: str, exc: BaseException
                  ) -> list[PhaseRecord]:
            ran.append(f"abort:{failed}")
            return [PhaseRecord("abort", outcome=PhaseOutcome.OK, detail="source restarted")]

    ports.container = Container()
    core = FakeCore()
    plan = build_plan(core, ports, _state(order))  # type: ignore[arg-type]
    for i, phase in enumerate(plan.phases):  # RASP is exercised against real agents elsewhere
        if phase.name.startswith("rasp_"):
            plan.phases[i] = Phase(phase.name, _recorder(ran, phase.name))
    return plan, core


def test_paper_order_runs_every_phase_in_the_papers_order() -> None:
    ran: list[str] = []
    ledger = FakeLedger()
    audit = FakeAudit(True)
    plan, core = _plan(audit, ledger, ran)
    # stop/commit/push before RASP (step 10 carries the pushed digest), cleanup after commit
    assert plan.names == ["policy_audit", "stop", "commit", "push", "rasp_handshake",
                          "ledger_write", "self_evaluation", "pull", "run",
                          "rasp_location_update", "location_commit", "audit_location_update",
                          "source_cleanup"]
    state = _state()
    records = plan.run(state)
    assert all(r.outcome == PhaseOutcome.OK for r in records)
    assert core.committed == [("svc-1", 1, "edge2")]
    assert ledger.written[0].source_ip == "10.0.0.1" and ledger.written[0].cpu_usage == 500
    assert "9/10" in records[5].detail
    assert not any(r.startswith("abort") for r in ran)
    assert audit.calls == [("nms", "edge2"), ("nms", "located:edge2")]


def test_diff_order_runs_everything_but_the_diff_before_the_stop() -> None:
    ran: list[str] = []
    ledger = FakeLedger()
    audit = FakeAudit(True)
    plan, core = _plan(audit, ledger, ran, DIFF_ORDER)
    expected = ["policy_audit", "prepull", "rasp_handshake", "ledger_write", "self_evaluation",
                "stop", "commit", "push", "rasp_transfer", "pull", "run",
                "rasp_location_update", "location_commit", "audit_location_update",
                "source_cleanup"]
    assert plan.names == expected
    state = _state(DIFF_ORDER)
    state.extras["size_bytes"] = 4242  # what the prepull estimated before the stop
    records = plan.run(state)
    assert all(r.outcome == PhaseOutcome.OK for r in records)
    assert ran == [n for n in expected if n not in ("policy_audit", "ledger_write",
                                                    "self_evaluation", "location_commit",
                                                    "audit_location_update")]
    assert core.committed == [("svc-1", 1, "edge2")]
    assert ledger.written[0].total_size == 4242  # written before the push: the estimate


@pytest.mark.parametrize("order", [PAPER_ORDER, DIFF_ORDER])
@pytest.mark.parametrize("deny", ["audit", "self_evaluation"])
def test_a_denial_stops_the_migration(deny: str, order: str) -> None:
    ran: list[str] = []
    plan, core = _plan(FakeAudit(deny != "audit"), FakeLedger(accept=deny != "self_evaluation"),
                       ran, order)
    with pytest.raises(MigrationFailed) as failed:
        plan.run(_state(order))
    rejected = "policy_audit" if deny == "audit" else "self_evaluation"
    outcome = {r.phase: r.outcome for r in failed.value.records}
    assert outcome[rejected] == PhaseOutcome.REJECTED
    assert outcome["location_commit"] == PhaseOutcome.SKIPPED
    assert core.committed == [] and "pull" not in ran
    if deny == "audit":  # nothing moved, nothing to undo
        assert "stop" not in ran and "abort:policy_audit" in ran
    elif order == DIFF_ORDER:  # Algorithm 2 ran before the stop: the source never stopped
        assert "stop" not in ran and outcome["stop"] == PhaseOutcome.SKIPPED
        assert ran[-1] == "abort:self_evaluation"
    else:  # the source was stopped for the commit: the abort restarts it
        assert "stop" in ran and ran[-1] == "abort:self_evaluation"
        assert failed.value.records[-1].phase == "abort"
