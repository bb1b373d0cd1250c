"""SmfService.MigrateServiceStream against real agents on loopback (RAS, SMF, two edge hosts,
mTLS; tests/adversarial/harness.py): each phase arrives while the migration still runs, in
order, before the final response, whose phases are the streamed ones; a failed migration
streams the failed and the skipped phases; a role the policy does not name is refused; a
client that goes away does not stop the migration and leaves no worker thread behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as spb
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as spb_grpc
from agents.smf.client import PhaseTiming
from agents.smf.domain import MigrationState, Phase, PhaseResult
from tests.adversarial.harness import Lab, Principal

HOLD_S = 10.0  # longest a held phase waits for the test


@pytest.fixture
def lab(lab_pki: Any, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(lab_pki, tmp_path / "lab").start()
    yield lab
    lab.close()


def _request(lab: Lab, who: Principal, destination: str, order: str = ""
             ) -> spb.MigrateServiceRequest:
    return spb.MigrateServiceRequest(
        service_id=lab.service_id, user_id=who.user_id, device_id=who.device_id,
        user_capability=who.user_cap.to_bytes(), device_capability=who.device_cap.to_bytes(),
        destination=destination, order=order, request_id="stream-test")


def _hold_until(seen: threading.Event, release: threading.Event | None = None) -> Phase:
    """A phase that ends only once the test saw `seen` set (and `release`, when given)."""
    def run(_state: MigrationState) -> PhaseResult:
        if not seen.wait(HOLD_S):
            raise RuntimeError("the client had not received the earlier phases")
        if release is not None and not release.wait(HOLD_S):
            raise RuntimeError("not released")
        return PhaseResult(detail="the client had the earlier phases")
    return Phase("hold", run)


def _stream_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("migrate-stream-test")]


def test_each_phase_arrives_live_in_order_before_the_final_response(lab: Lab) -> None:
    who = lab.scenario()
    smf = lab.smf_client()
    # the reference: the unary RPC's phases of the same migration (edge1 -> edge2) ...
    unary = smf.migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                        who.device_cap, "edge2")
    assert unary.migrated and unary.location == "edge2"
    # ... and back over the stream, a "hold" phase before rasp_location_update ending only
    # once the client has received rasp_transfer (so it cannot have been sent at the end)
    seen = threading.Event()
    assert lab.smf_servicer is not None
    lab.smf_servicer.ports.extra_phases = [("rasp_location_update", _hold_until(seen))]
    stub = spb_grpc.SmfServiceStub(lab.channel(lab.smf.port))  # type: ignore[union-attr]
    kinds: list[str] = []
    streamed: list[Any] = []
    final = None
    admission = lab.smf.admission  # type: ignore[union-attr]
    admitted: list[int] = []
    for event in stub.MigrateServiceStream(_request(lab, who, "edge1"), timeout=30):
        kinds.append(str(event.WhichOneof("event")))
        if event.HasField("phase"):
            streamed.append(event.phase)
            if event.phase.phase == "rasp_transfer":
                admitted.append(admission.admitted)  # the stream holds its slot meanwhile
                seen.set()
        else:
            final = event.result
    want = [p.phase for p in unary.phases]
    want.insert(want.index("rasp_location_update"), "hold")
    assert [p.phase for p in streamed] == want
    assert kinds == ["phase"] * len(want) + ["result"]  # every phase strictly before the end
    assert final is not None and final.migrated and final.location == "edge1"
    assert list(final.phases) == streamed  # same records, durations and details included
    assert [p.detail for p in streamed if p.phase == "hold"] == [
        "the client had the earlier phases"]
    assert lab.smf_client().service(lab.service_id).location == "edge1"
    assert admitted == [1]
    deadline = time.monotonic() + 5
    while admission.admitted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert admission.admitted == 0  # released with the end of the stream


def test_client_reports_phases_as_they_arrive_and_the_same_report(lab: Lab) -> None:
    who = lab.scenario()
    seen = threading.Event()
    assert lab.smf_servicer is not None
    # the migration cannot end before SmfClient.migrate has handed rasp_transfer to on_phase
    lab.smf_servicer.ports.extra_phases = [("location_commit", _hold_until(seen))]
    got: list[PhaseTiming] = []

    def on_phase(p: PhaseTiming) -> None:
        got.append(p)
        if p.phase == "rasp_transfer":
            seen.set()

    report = lab.smf_client().migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                                      who.device_cap, "edge2", on_phase=on_phase)
    assert report.migrated and report.location == "edge2" and report.order == "diff"
    assert tuple(got) == report.phases
    assert [p.phase for p in got] == ["rasp_handshake", "rasp_transfer",
                                      "rasp_location_update", "hold", "location_commit"]


def test_failed_migration_streams_failed_and_skipped_phases(lab: Lab) -> None:
    who = lab.scenario()
    assert lab.smf_servicer is not None
    ports = lab.smf_servicer.ports
    ports.tap = lambda step, role, message: None if step == 10 else message  # drop M_Trf
    got: list[PhaseTiming] = []
    report = lab.smf_client().migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                                      who.device_cap, "edge2", on_phase=got.append)
    assert not report.migrated and report.location == "edge1"
    assert report.error_code == "WRONG_STEP"
    assert tuple(got) == report.phases
    outcomes = [(p.phase, p.outcome) for p in got]
    assert outcomes == [("rasp_handshake", "ok"), ("rasp_transfer", "rejected"),
                        ("rasp_location_update", "skipped"), ("location_commit", "skipped")]


def test_refusals_end_the_stream_with_the_unary_status(lab: Lab) -> None:
    who = lab.scenario()
    request = _request(lab, who, "edge2", order="sideways")
    node = spb_grpc.SmfServiceStub(lab.channel(lab.smf.port, "edge1"))  # type: ignore[union-attr]
    with pytest.raises(grpc.RpcError) as denied:
        list(node.MigrateServiceStream(request, timeout=10))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "(role node) may not call" in (denied.value.details() or "")
    admin = spb_grpc.SmfServiceStub(lab.channel(lab.smf.port))  # type: ignore[union-attr]
    with pytest.raises(grpc.RpcError) as stream_err:
        list(admin.MigrateServiceStream(request, timeout=10))
    with pytest.raises(grpc.RpcError) as unary_err:
        admin.MigrateService(request, timeout=10)
    assert stream_err.value.code() == unary_err.value.code() == (
        grpc.StatusCode.INVALID_ARGUMENT)
    assert stream_err.value.details() == unary_err.value.details()
    assert lab.smf_client().service(lab.service_id).location == "edge1"


def test_a_cancelled_stream_leaves_the_migration_to_finish_and_no_worker(lab: Lab) -> None:
    who = lab.scenario()
    seen, release = threading.Event(), threading.Event()
    assert lab.smf_servicer is not None
    lab.smf_servicer.ports.extra_phases = [("rasp_location_update",
                                            _hold_until(seen, release))]
    stub = spb_grpc.SmfServiceStub(lab.channel(lab.smf.port))  # type: ignore[union-attr]
    stream = stub.MigrateServiceStream(_request(lab, who, "edge2"), timeout=30)
    first = next(stream)
    assert first.phase.phase == "rasp_handshake"
    assert len(_stream_workers()) == 1
    seen.set()
    stream.cancel()
    release.set()  # the held phase ends after the caller has gone
    deadline = time.monotonic() + 10
    while _stream_workers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _stream_workers() == []
    admission = lab.smf.admission  # type: ignore[union-attr]
    while admission.admitted and time.monotonic() < deadline:  # the handler notices the
        time.sleep(0.01)                                       # cancel within POLL_S
    assert admission.admitted == 0
    # the migration completed as a unary one would: location moved, history says ok
    info = lab.smf_client().service(lab.service_id)
    assert (info.location, info.epoch) == ("edge2", 2)
    assert lab.smf_core is not None
    assert [(outcome, order) for _, outcome, order in
            lab.smf_core.db.migration_orders(lab.service_id)] == [("ok", "diff")]
