"""Authorization matrix: every RPC of every agent x a certificate of every role, generated from
the policy tables (agents/*/policy.py) and the proto service descriptors, against the real
agents over mTLS on loopback (authz_lab.py); plus one test per finding of issue 12.

An outcome is read from the call alone:
* ``denied``: PERMISSION_DENIED with the authorization layer's refusal ("caller '<cn>' (role
  <role>) may not call ..."), before the servicer ran;
* ``handshake``: UNAVAILABLE, the TLS handshake refused the certificate (foreign CA, none);
* ``allowed``: anything else, the call reached the servicer (a minimal or empty request may
  fail there, e.g. INVALID_ARGUMENT or the audit agent's own owner-token check).
Expected: a lab certificate whose role the table lists for the method -> allowed, any other lab
certificate -> denied, a foreign or missing certificate -> handshake. Around every RPC's
denied calls the agents' stored state (SQLite rows read from disk, the fake engine's recorded
operations, the audit log) must stay the same.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import message_factory

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as lpb
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as npb_grpc
from agents._proto.edgeferry.ras.v1 import ras_service_pb2 as rpb
from agents._proto.edgeferry.ras.v1 import ras_service_pb2_grpc as rpb_grpc
from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as spb
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as spb_grpc
from agents.common.authz import principal_from_cn
from agents.ledger.consensus import NodeRole, sign_registration
from agents.ledger.convert import registration_to_pb, tx_to_pb
from agents.ledger.transactions import ContainerMetadata, sign_transaction
from agents.node.domain import Resources
from agents.node.store import WorkloadRow
from tests.adversarial.authz_lab import CALLERS, AuthzLab
from tests.crl import write_crl
from tests.policies import ALL_POLICIES, service_descriptors

#: Which lab agent serves each service.
SERVED_BY = {
    "edgeferry.node.v1.NodeService": "edge1",
    "edgeferry.ras.v1.RaspEndpointService": "edge1",
    "edgeferry.smf.v1.SspServerService": "edge1",
    "edgeferry.ras.v1.RasService": "ras",
    "edgeferry.smf.v1.SmfService": "smf",
    "edgeferry.audit.v1.AuditService": "audit",
    "edgeferry.ledger.v1.LedgerService": "validator",
    "edgeferry.ledger.v1.LedgerPeerService": "peers",
    "edgeferry.ledger.v1.CentralMetadataService": "central",
    "edgeferry.blockcache.v1.BlockCacheService": "sso-edge1",
    "edgeferry.composer.v1.ComposerService": "composer",
    "edgeferry.tcfdl.v1.TcfdlManagerService": "tcfdl-manager",
    "edgeferry.tcfdl.v1.TcfdlProxyService": "tcfdl-proxy",
    "edgeferry.tcfdl.v1.TcfdlMasterService": "tcfdl-master",
}
AUTHZ_REFUSAL = re.compile(r"^caller '[^']*' \(role [a-z-]+\) may not call ")


@dataclass
class MatrixLog:
    """Outcomes of the matrix, counted as they happen (printed by conftest)."""

    calls: int = 0
    allowed: int = 0
    denied: int = 0
    handshake: int = 0
    unexpected_allows: list[str] = field(default_factory=list)
    unexpected_denials: list[str] = field(default_factory=list)
    state_changes: list[str] = field(default_factory=list)
    by_service: dict[str, list[int]] = field(default_factory=dict)  # calls, allowed, denied


MATRIX = MatrixLog()
#: every server-streaming call the matrix made (full method name, once per caller)
STREAMED_CALLS: list[str] = []


def outcome(channel: grpc.Channel, service: str, method: Any) -> tuple[str, str]:
    """(outcome, detail) of calling `method` with an empty request of its input type."""
    request = message_factory.GetMessageClass(method.input_type)()
    return outcome_of(channel, service, method.name, request,
                      streamed=bool(method.server_streaming))


def outcome_of(channel: grpc.Channel, service: str, name: str, request: Any, *,
               streamed: bool = False) -> tuple[str, str]:
    """(outcome, detail) of one call; ``streamed``: a server-streaming RPC, drained to its end
    (its status comes with the end of the stream)."""
    path = f"/{service}/{name}"
    try:
        if streamed:
            STREAMED_CALLS.append(path)
            list(channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                      response_deserializer=lambda b: b)(request, timeout=10))
        else:
            channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=lambda b: b)(request, timeout=10)
        return "allowed", "OK"
    except grpc.RpcError as err:
        code, details = err.code(), err.details() or ""
        if code == grpc.StatusCode.PERMISSION_DENIED and AUTHZ_REFUSAL.match(details):
            return "denied", details
        if code == grpc.StatusCode.UNAVAILABLE and "caller" not in details:
            return "handshake", f"{code.name}: {details}"
        return "allowed", f"{code.name}: {details}"


def expected(caller: str, service: str, method: str) -> str:
    cn = CALLERS[caller]
    if cn is None:
        return "handshake"
    role = principal_from_cn(cn).role
    return "allowed" if role in ALL_POLICIES[service].allowed_roles(method) else "denied"


def record(lab: AuthzLab, service: str, method: Any, caller: str, want: str,
           counts: list[int]) -> None:
    """Make one matrix call and count its outcome."""
    channel = lab.channel(SERVED_BY[service], caller)
    if method.name == "RegisterNode":
        got, detail = outcome_of(channel, service, method.name, lab.registration_for(caller))
    else:
        got, detail = outcome(channel, service, method)
    MATRIX.calls += 1
    setattr(MATRIX, got, getattr(MATRIX, got) + 1)
    counts[0] += 1
    counts[1 if got == "allowed" else 2] += 1
    if got != want:
        line = (f"{service.rsplit('.', 1)[-1]}/{method.name} as {caller}: expected {want}, "
                f"got {got} ({detail})")
        (MATRIX.unexpected_allows if got == "allowed" else MATRIX.unexpected_denials).append(line)


def settle(lab: AuthzLab, timeout: float = 3.0) -> dict[str, Any]:
    """The lab's state once background work (ledger propagation) has stopped changing it."""
    last = lab.state()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        time.sleep(0.05)
        now = lab.state()
        if now == last:
            return now
        last = now
    return last


@pytest.fixture(scope="module")
def alab(lab_pki: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthzLab]:
    lab = AuthzLab(lab_pki, tmp_path_factory.mktemp("authz")).start()
    yield lab
    lab.close()


def test_every_agent_service_is_registered_with_its_policy(alab: AuthzLab) -> None:
    served = set()
    for server in alab.servers.values():
        assert set(server.services) <= set(server.authz.policies), server.config.name
        for name in server.services:
            assert server.authz.policies[name] is ALL_POLICIES[name]
        served |= set(server.services)
    assert served == set(service_descriptors()) == set(SERVED_BY)


def test_authorization_matrix(alab: AuthzLab) -> None:
    started = time.monotonic()
    for service, descriptor in sorted(service_descriptors().items()):
        counts = MATRIX.by_service.setdefault(service.rsplit(".", 1)[-1], [0, 0, 0])
        for method in descriptor.methods:
            plan = {c: expected(c, service, method.name) for c in CALLERS}
            refused = [c for c, e in plan.items() if e != "allowed"]
            admitted = [c for c, e in plan.items() if e == "allowed"]
            before = settle(alab)
            for caller in refused:
                record(alab, service, method, caller, plan[caller], counts)
            if alab.state() != before:
                MATRIX.state_changes.append(f"{service}/{method.name}")
            for caller in admitted:
                record(alab, service, method, caller, plan[caller], counts)
    elapsed = time.monotonic() - started
    print(f"\nauthz matrix: {MATRIX.calls} calls in {elapsed:.1f} s")
    assert MATRIX.calls == sum(len(d.methods) for d in service_descriptors().values()) * len(
        CALLERS)
    # server-streaming RPCs were called as streams, with every caller
    streaming = sorted(f"/{s}/{m.name}" for s, d in service_descriptors().items()
                       for m in d.methods if m.server_streaming)
    assert "/edgeferry.smf.v1.SmfService/MigrateServiceStream" in streaming
    assert sorted(STREAMED_CALLS) == sorted(streaming * len(CALLERS))
    assert MATRIX.allowed > 0 and MATRIX.denied > 0 and MATRIX.handshake > 0
    assert MATRIX.unexpected_allows == []
    assert MATRIX.unexpected_denials == []
    assert MATRIX.state_changes == []


# -- the findings of issue 12 --------------------------------------------------------------------


def _code(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_finding_node_edge_cannot_control_other_edge(alab: AuthzLab) -> None:
    """node.edge2 against edge1's agent: every workload control RPC is refused before the
    engine is asked anything; the SMF's certificate reaches the engine (the same requests)."""
    ref = npb.MigrationRef(migration_id="m-authz", epoch=1)
    requests = {
        "StopContainer": npb.StopContainerRequest(ref=ref, name="nms"),
        "RunWorkload": npb.RunWorkloadRequest(ref=ref, spec=npb.WorkloadSpec(
            name="evil", image="attacker/image:1", command=["sh", "-c", "id"])),
        "CommitContainer": npb.CommitContainerRequest(ref=ref, name="nms"),
        "PushImage": npb.PushImageRequest(ref=ref, image_ref="127.0.0.1:5000/x/nms:stolen"),
        "RemoveWorkload": npb.RemoveWorkloadRequest(name="nms"),
    }
    attacker = npb_grpc.NodeServiceStub(alab.channel("edge1", "node(edge2)"))
    before = settle(alab)
    for name, request in requests.items():
        assert _code(lambda n=name, r=request: getattr(attacker, n)(r, timeout=5)) == (
            grpc.StatusCode.PERMISSION_DENIED), name
    assert alab.state() == before
    smf = npb_grpc.NodeServiceStub(alab.channel("edge1", "smf"))
    calls = len(alab.engine.calls)
    for name, request in requests.items():
        assert _code(lambda n=name, r=request: getattr(smf, n)(r, timeout=5)) != (
            grpc.StatusCode.PERMISSION_DENIED), name
    assert len(alab.engine.calls) > calls  # the SMF's requests reached the engine


def test_finding_describe_workload_only_for_the_smf(alab: AuthzLab) -> None:
    """Which image a workload runs from is the SMF's to ask (its prepull) and the audit
    monitor's (container liveness): the controller, a neighbour edge and every other role are
    refused before the engine is asked."""
    request = npb.DescribeWorkloadRequest(name="nms")
    before = settle(alab)
    for caller in ("controller", "node(edge2)", "ras", "ledger-peer", "host.x"):
        stub = npb_grpc.NodeServiceStub(alab.channel("edge1", caller))
        assert _code(lambda s=stub: s.DescribeWorkload(request, timeout=5)) == (
            grpc.StatusCode.PERMISSION_DENIED), caller
    assert alab.state() == before
    smf = npb_grpc.NodeServiceStub(alab.channel("edge1", "smf"))
    calls = len(alab.engine.calls)
    assert _code(lambda: smf.DescribeWorkload(request, timeout=5)) != (
        grpc.StatusCode.PERMISSION_DENIED)
    assert alab.engine.calls[calls:] == ["describe"]  # the SMF's request reached the engine
    audit = npb_grpc.NodeServiceStub(alab.channel("edge1", "audit"))
    assert _code(lambda: audit.DescribeWorkload(request, timeout=5)) != (
        grpc.StatusCode.PERMISSION_DENIED)
    assert alab.engine.calls[calls:] == ["describe", "describe"]  # and the audit monitor's


class _Hits(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Hits.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"internal secret")

    def log_message(self, *_args: Any) -> None:
        pass


def test_finding_probe_is_not_ssrf(alab: AuthzLab) -> None:
    """ProbeFirstResponse fetches only a port a workload of this agent publishes: an internal
    HTTP endpoint is refused without a request; the same port once a workload publishes it is
    probed (positive control)."""
    internal = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    threading.Thread(target=internal.serve_forever, daemon=True).start()
    port = internal.server_address[1]
    _Hits.hits.clear()
    stub = npb_grpc.NodeServiceStub(alab.channel("edge1", "smf"))
    probe = npb.ProbeFirstResponseRequest(
        kind=npb.PROBE_KIND_HTTP_GET, http_path="/admin/secret", timeout_seconds=1,
        endpoint=common_pb2.Endpoint(host="127.0.0.1", port=port))
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.ProbeFirstResponse(probe, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a port published by a workload" in (err.value.details() or "")
        other_host = npb.ProbeFirstResponseRequest()
        other_host.CopyFrom(probe)
        other_host.endpoint.host = "169.254.169.254"
        assert _code(lambda: stub.ProbeFirstResponse(other_host, timeout=5)) == (
            grpc.StatusCode.INVALID_ARGUMENT)
        assert _Hits.hits == []
        # a workload of this agent publishing that port: now it is probed
        assert alab.node_core is not None
        alab.engine.publish("probe-target", port)
        alab.node_core.store.put_workload(WorkloadRow(
            "probe-target", "c0ffee", "img:1", Resources(0, 0, 0, 0), None, None))
        answer = stub.ProbeFirstResponse(probe, timeout=5)
        assert answer.body_excerpt == b"internal secret" and _Hits.hits == ["/admin/secret"]
        # ... but not the same port on another address
        assert _code(lambda: stub.ProbeFirstResponse(other_host, timeout=5)) == (
            grpc.StatusCode.INVALID_ARGUMENT)
    finally:
        alab.node_core.store.drop_workload("probe-target")  # type: ignore[union-attr]
        alab.engine.containers.pop("probe-target", None)
        internal.shutdown()


def _register(lab: AuthzLab, caller: str, node_ids: list[str],
              role: str = NodeRole.PEER) -> grpc.StatusCode:
    seq = time.time_ns()
    regs = [registration_to_pb(sign_registration(i, Ed25519PrivateKey.generate(), role,
                                                 "127.0.0.1:1", seq)) for i in node_ids]
    stub = lpb_grpc.LedgerServiceStub(lab.channel("validator", caller))
    return _code(lambda: stub.RegisterNode(lpb.RegisterNodeRequest(registrations=regs),
                                           timeout=5))


def test_finding_ledger_register_foreign_id_refused(alab: AuthzLab) -> None:
    """Ledger ids are bound to the certificate: nobody squats ``smf`` or another host's ids,
    nobody but a peers host registers peers, and 50 made-up peers are refused whole."""
    assert alab.validator is not None
    members = alab.validator.total_nodes()
    before = settle(alab)
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert _register(alab, "ledger-peer", ["smf"], NodeRole.SUBMITTER) == denied
    assert _register(alab, "node(edge2)", ["smf"], NodeRole.SUBMITTER) == denied
    assert _register(alab, "controller", ["smf"], NodeRole.SUBMITTER) == denied
    assert _register(alab, "ledger-peer", ["edge2-000"]) == denied          # another host's id
    assert _register(alab, "smf", ["edge1-050"]) == denied                  # the SMF is no peer
    assert _register(alab, "node(edge2)", [f"edge2-{i:03d}" for i in range(50)]) == denied
    assert _register(alab, "host.x", [f"x-{i:03d}" for i in range(50)]) == denied
    # one foreign id among 49 own ones refuses the whole request
    assert _register(alab, "ledger-peer",
                     [f"edge1-{i:03d}" for i in range(100, 149)] + ["edge2-001"]) == denied
    assert alab.validator.total_nodes() == members
    assert alab.state() == before
    # the real owners still register (positive control): the peers host its own new id
    assert _register(alab, "ledger-peer", ["edge1-777"]) == grpc.StatusCode.OK
    assert alab.validator.total_nodes() == members + 1


def test_finding_ledger_metadata_only_from_smf(alab: AuthzLab) -> None:
    """Metadata for container ``nms`` from anybody but the SMF is refused by the validator and
    by the central service; the SMF's own submission goes through."""
    meta = ContainerMetadata("10.0.0.66", "nms", 1, 1, 1, "nms")
    key = Ed25519PrivateKey.generate()
    tx = sign_transaction(meta, "edge1-000", key, int(time.time() * 1000))
    for caller in ("ledger-peer", "node(edge2)", "controller", "ledger-validator", "host.x"):
        validator = lpb_grpc.LedgerServiceStub(alab.channel("validator", caller))
        central = lpb_grpc.CentralMetadataServiceStub(alab.channel("central", caller))
        assert _code(lambda v=validator: v.SubmitTransaction(
            lpb.SubmitTransactionRequest(transaction=tx_to_pb(tx)), timeout=5)) == (
            grpc.StatusCode.PERMISSION_DENIED), caller
        assert _code(lambda c=central: c.PutMetadata(
            lpb.PutMetadataRequest(transaction=tx_to_pb(tx)), timeout=5)) == (
            grpc.StatusCode.PERMISSION_DENIED), caller
    assert alab.validator is not None and alab.validator.latest_metadata("nms") is None
    # the SMF: registered under its own id, its transaction is accepted
    stub = lpb_grpc.LedgerServiceStub(alab.channel("validator", "smf"))
    stub.RegisterNode(alab.registration_for("smf"), timeout=5)
    own = sign_transaction(meta, "smf", alab.smf_ledger_key, int(time.time() * 1000))
    stub.SubmitTransaction(lpb.SubmitTransactionRequest(transaction=tx_to_pb(own)), timeout=5)
    deadline = time.monotonic() + 5
    while alab.validator.latest_metadata("nms") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    found = alab.validator.latest_metadata("nms")
    assert found is not None and found[0].submitter_id == "smf"


def test_finding_read_rpcs_not_open(alab: AuthzLab) -> None:
    """ListUsers/ListDevices/ListServices/GetService and the RAS table are no longer open to
    any lab certificate: an edge's, a host's and the audit agent's are refused."""
    reads = [("smf", spb_grpc.SmfServiceStub, "ListUsers", spb.ListRequest()),
             ("smf", spb_grpc.SmfServiceStub, "ListDevices", spb.ListRequest()),
             ("smf", spb_grpc.SmfServiceStub, "ListServices", spb.ListRequest()),
             ("smf", spb_grpc.SmfServiceStub, "GetService", spb.GetServiceRequest()),
             ("ras", rpb_grpc.RasServiceStub, "GetTable", rpb.GetTableRequest())]
    for server, stub_type, name, request in reads:
        for caller in ("node(edge2)", "host.x", "audit", "ledger-peer"):
            stub = stub_type(alab.channel(server, caller))
            assert _code(lambda s=stub, n=name, r=request: getattr(s, n)(r, timeout=5)) == (
                grpc.StatusCode.PERMISSION_DENIED), (name, caller)
        controller = stub_type(alab.channel(server, "controller"))
        assert _code(lambda s=controller, n=name, r=request: getattr(s, n)(r, timeout=5)) in (
            grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND), name


def test_finding_host_named_controller_is_not_admin(alab: AuthzLab) -> None:
    """A host named ``controller`` has the certificate ``host.controller`` (role host): the
    controller's RPCs refuse it, and the pki role issues host certificates that way."""
    assert principal_from_cn("host.controller").role == "host"
    admin = [("smf", spb_grpc.SmfServiceStub(alab.channel("smf", "host.controller")),
              "RegisterUser", spb.RegisterUserRequest(first_name="Eve", surname="Admin")),
             ("ras", rpb_grpc.RasServiceStub(alab.channel("ras", "host.controller")),
              "RegisterServer", rpb.RegisterServerRequest()),
             ("edge1", npb_grpc.NodeServiceStub(alab.channel("edge1", "host.controller")),
              "RunWorkload", npb.RunWorkloadRequest())]
    before = settle(alab)
    for _server, stub, name, request in admin:
        assert _code(lambda s=stub, n=name, r=request: getattr(s, n)(r, timeout=5)) == (
            grpc.StatusCode.PERMISSION_DENIED), name
    assert alab.state() == before
    issue = (Path(__file__).parents[2] / "roles" / "pki" / "tasks" / "issue.yml").read_text()
    assert "'common_name': name ~ '.' ~ inventory_hostname," in issue


def test_crl_revoked_cert_refused(lab_pki: Any, tmp_path: Path) -> None:
    """A RAS with ``tls.crl`` refuses the revoked controller certificate (UNAUTHENTICATED) on
    every RPC, health included, and serves an unrevoked one; a new CRL file takes effect
    without a restart."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from agents.ras.agent import setup_ras

    lab = AuthzLab(lab_pki, tmp_path)
    good, bad = lab_pki.issue("smf.crl-good"), lab_pki.issue("smf.crl-bad")
    crl = write_crl(lab_pki.ca, [bad.certificate.serial_number], tmp_path / "lab.crl")
    cfg = lab.config("ras", "ras.control").model_copy(update={
        "tls": lab.config("ras", "ras.control").tls.model_copy(  # type: ignore[union-attr]
            update={"crl": crl})})
    lab._serve("ras", cfg, lambda s: setup_ras(s, cfg))
    try:
        def codes(cn: str) -> tuple[grpc.StatusCode, grpc.StatusCode]:
            channel = lab.channel("ras", cn)
            ras = rpb_grpc.RasServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            return (_code(lambda: ras.GetRegistryIdentity(rpb.GetRegistryIdentityRequest(),
                                                          timeout=5)),
                    _code(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=5)))

        assert codes("smf.crl-bad") == (grpc.StatusCode.UNAUTHENTICATED,) * 2
        assert codes("smf.crl-good") == (grpc.StatusCode.OK,) * 2
        write_crl(lab_pki.ca, [good.certificate.serial_number], crl)
        later = crl.stat().st_mtime_ns + 1_000_000_000
        import os

        os.utime(crl, ns=(later, later))
        assert codes("smf.crl-good") == (grpc.StatusCode.UNAUTHENTICATED,) * 2
        assert codes("smf.crl-bad") == (grpc.StatusCode.OK,) * 2
    finally:
        lab.close()
