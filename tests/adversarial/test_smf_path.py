"""Attacks on the migration path through the SMF: the attacker taps the SMF's RASP relay
(drops or modifies each step), races the location record (fencing epoch) and starts a second
migration of the same service while one is running."""

from __future__ import annotations

import threading

import grpc
import pytest

from agents.common.status import RemoteProtocolError
from agents.security.errors import ErrorCode
from agents.smf.domain import Phase, PhaseResult
from tests.adversarial.attacker import CaseLog, flip_body
from tests.adversarial.harness import Lab, Principal


def _table(lab: Lab) -> object:
    t = lab.ras_client().table()
    return (sorted((r.service, r.cloud) for r in t.locations),
            sorted((a.server, a.cloud, a.allocated.cpu_millicores) for a in t.allocations))


def _migrate(lab: Lab, who: Principal, destination: str = "edge2",  # type: ignore[no-untyped-def]
             order: str = ""):
    return lab.smf_client().migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                                    who.device_cap, destination, order=order)


def _rasp_phase(k: int, order: str) -> str:
    """The plan phase that delivers RASP step k in `order`."""
    if k == 12:
        return "rasp_location_update"
    return "rasp_transfer" if order == "diff" and k >= 9 else "rasp_handshake"


@pytest.mark.parametrize("order", ["diff", "paper"])
@pytest.mark.parametrize("attack", ["drop", "modify"])
def test_every_rasp_step_dropped_or_modified_on_the_smf_path(lab: Lab, cases: CaseLog,
                                                             attack: str, order: str) -> None:
    who = lab.scenario()
    assert lab.smf_servicer is not None
    ports = lab.smf_servicer.ports
    for k in range(1, 13):
        def tap(step: int, role: str, message: bytes, k: int = k) -> bytes | None:
            if step != k:
                return message
            return None if attack == "drop" else flip_body(message)

        ports.tap = tap
        before = (_table(lab), lab.smf_client().service(lab.service_id).epoch)
        report = _migrate(lab, who, order=order)
        ports.tap = None
        assert report.order == order
        expected = "WRONG_STEP" if attack == "drop" else (
            "DECRYPT_FAILED" if k in (9, 10, 11) else "BAD_SIGNATURE")
        cases.count_only(f"smf path step {k} {attack} ({order})", rejected=not report.migrated,
                         sent=True)
        assert not report.migrated
        assert report.error_code == expected, (k, report.error_code, report.error_message)
        failed = next(p for p in report.phases if p.outcome in ("failed", "rejected"))
        assert failed.phase == _rasp_phase(k, order)
        assert all(p.outcome == "skipped" for p in report.phases[report.phases.index(failed)
                                                                 + 1:])
        info = lab.smf_client().service(lab.service_id)
        assert (info.location, info.epoch) == ("edge1", 1)
        assert (_table(lab), info.epoch) == before
    assert _migrate(lab, who, order=order).migrated  # the honest path still works afterwards


def test_an_unknown_phase_order_is_refused_before_anything_runs(lab: Lab,
                                                                cases: CaseLog) -> None:
    who = lab.scenario()
    assert lab.smf_core is not None
    before = (_table(lab), lab.smf_client().service(lab.service_id).epoch)
    for order in ("Paper", "diff-first", "x" * 5000):
        with pytest.raises(RemoteProtocolError) as err:
            _migrate(lab, who, order=order)
        assert err.value.status == grpc.StatusCode.INVALID_ARGUMENT, order
        assert err.value.code == ErrorCode.MALFORMED
        assert "unknown migration order" in err.value.message
        cases.count_only(f"smf unknown order {order[:12]}", rejected=True, sent=True)
    assert (_table(lab), lab.smf_client().service(lab.service_id).epoch) == before
    assert lab.smf_core.db.migration_orders(lab.service_id) == []  # nothing ran
    report = _migrate(lab, who)  # "" is the diff-first default, and the history says so
    assert report.migrated and report.order == "diff"
    assert [o for _, _, o in lab.smf_core.db.migration_orders(lab.service_id)] == ["diff"]


def test_stale_epoch_is_refused(lab: Lab, cases: CaseLog) -> None:
    """Another writer moves the location between the handshake and the commit: the
    migration's commit carries a stale epoch and is refused; the location stays the winner's."""
    who = lab.scenario()
    assert lab.smf_servicer is not None and lab.smf_core is not None
    core = lab.smf_core

    def rival(state):  # type: ignore[no-untyped-def]
        core.commit_location(state.service.global_id, state.epoch, "edge1-rival")
        return PhaseResult(detail="a concurrent writer committed first")

    lab.smf_servicer.ports.extra_phases = [("location_commit", Phase("rival_commit", rival))]
    report = _migrate(lab, who)
    lab.smf_servicer.ports.extra_phases = []
    cases.count_only("stale epoch", rejected=not report.migrated, sent=True)
    assert not report.migrated and report.error_code == "STALE_EPOCH"
    assert report.phases[-1].phase == "location_commit"
    assert report.phases[-1].outcome == "rejected"
    assert (report.location, report.epoch) == ("edge1-rival", 2)
    with pytest.raises(Exception, match="epoch"):
        core.commit_location(lab.service_id, 1, "edge2")  # and the old epoch never works again


def test_second_migration_while_one_runs_is_refused(lab: Lab, cases: CaseLog) -> None:
    who = lab.scenario()
    assert lab.smf_servicer is not None
    entered, release = threading.Event(), threading.Event()

    def slow(state):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(10)
        return PhaseResult()

    lab.smf_servicer.ports.extra_phases = [("rasp_handshake", Phase("slow", slow))]
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(_migrate(lab, who)))
    first.start()
    assert entered.wait(10)
    try:
        with pytest.raises(Exception, match="being migrated") as err:
            _migrate(lab, who)
        cases.count_only("concurrent migration", rejected=True, sent=True)
        assert "ABORTED" in repr(err.value) or "being migrated" in str(err.value)
    finally:
        release.set()
        first.join(10)
        lab.smf_servicer.ports.extra_phases = []
    assert getattr(results[0], "migrated", False)
    assert lab.smf_client().service(lab.service_id).epoch == 2
