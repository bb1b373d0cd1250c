"""The UI records each SMF phase of a migration as it arrives: a fake SMF (a real gRPC server
on loopback, plaintext) streams MigrateServiceStream's first phase and then blocks; the UI's
Migration already shows that phase, with a bumped change counter for the live page, while the
second has not been sent. The real SmfClient, GrpcBackend, Portal and Migrations are used."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as pb
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as pb_grpc
from agents.common.store import Store
from agents.smf.client import SmfClient
from agents.ui.backend import GrpcBackend, SmfBinding
from agents.ui.migrations import Changes, Migration, Migrations
from agents.ui.portal import CheckView, ContainerView, DecisionView, Portal

OWNER = "alice"


def _phase(name: str) -> common_pb2.PhaseTiming:
    return common_pb2.PhaseTiming(phase=name, wall_seconds=0.25, bytes_moved=7,
                                  outcome=common_pb2.PHASE_OUTCOME_OK, detail=f"{name} done")


class _GatedSmf(pb_grpc.SmfServiceServicer):
    """MigrateServiceStream: rasp_handshake, then waits for `gate`, then rasp_transfer and
    the response. `sent` lists what it has sent."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.sent: list[str] = []
        self.requests: list[pb.MigrateServiceRequest] = []

    def MigrateServiceStream(self, request: pb.MigrateServiceRequest,
                             context: grpc.ServicerContext) -> Iterator[pb.MigrateServiceEvent]:
        self.requests.append(request)
        self.sent.append("rasp_handshake")
        yield pb.MigrateServiceEvent(phase=_phase("rasp_handshake"))
        if not self.gate.wait(10):
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the test never opened the gate")
        self.sent.append("rasp_transfer")
        yield pb.MigrateServiceEvent(phase=_phase("rasp_transfer"))
        yield pb.MigrateServiceEvent(result=pb.MigrateServiceResponse(
            migrated=True, location=request.destination, epoch=2, order="diff",
            phases=[_phase("rasp_handshake"), _phase("rasp_transfer")]))


class _NoAuditBackend(GrpcBackend):
    """GrpcBackend with the audit agent's two calls answered here (permit), so only the SMF
    side is real."""

    def get_container(self, owner: str, name: str) -> ContainerView:
        return ContainerView(name, "edge1", {})

    def evaluate(self, owner: str, container: str, edge: str) -> DecisionView:
        return DecisionView(container, edge, True, (
            CheckView("cDAl", "eDAl", "jp", "jp", True, True, ""),), (), 0.001, 1)


@pytest.fixture
def smf() -> Iterator[tuple[_GatedSmf, SmfClient]]:
    fake = _GatedSmf()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_SmfServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield fake, SmfClient(channel, timeout=15)
    finally:
        fake.gate.set()
        channel.close()
        server.stop(0)


def _wait(migrations: Migrations, changes: Changes, until: Any) -> Migration:
    deadline = time.monotonic() + 10
    seen = changes.version(OWNER)
    while True:
        m = migrations.of(OWNER)[0]
        if until(m):
            return m
        assert time.monotonic() < deadline, m
        seen = changes.wait(OWNER, seen, 0.5)


def test_each_smf_phase_shows_while_the_next_has_not_arrived(
        smf: tuple[_GatedSmf, SmfClient], tmp_path: Path) -> None:
    fake, client = smf
    backend = _NoAuditBackend(audit=None, owner_key=b"k" * 32,  # type: ignore[arg-type]
                              smf=client, bindings={"App1": SmfBinding(
                                  "svc-1", "user-1", "dev-1", b"UCAP", b"DCAP")})
    store = Store.open(tmp_path / "ui.sqlite3")
    changes = Changes()
    migrations = Migrations(Portal(backend, store), changes)
    try:
        migrations.start(OWNER, "App1", "edge2")
        m = _wait(migrations, changes, lambda m: len(m.phases) >= 2)
        # phase 1 is on the page while the fake SMF has not sent phase 2
        assert fake.sent == ["rasp_handshake"]
        assert m.state == "migrating"
        assert [(p.name, p.outcome) for p in m.phases] == [("policy_audit", "ok"),
                                                           ("rasp_handshake", "ok")]
        assert m.phases[1].detail == "rasp_handshake done" and m.phases[1].seconds == 0.25
        assert m.as_dict()["phases"][1]["name"] == "rasp_handshake"  # what the SSE sends
        before = changes.version(OWNER)
        fake.gate.set()
        m = _wait(migrations, changes, lambda m: m.state != "migrating")
        assert changes.version(OWNER) > before
        assert m.state == "done"
        assert [p.name for p in m.phases] == ["policy_audit", "rasp_handshake",
                                              "rasp_transfer"]
        assert [(r.service_id, r.destination, r.request_id) for r in fake.requests] == [
            ("svc-1", "edge2", f"ui-{OWNER}")]
    finally:
        store.close()
