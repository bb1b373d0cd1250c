"""The SMF's prepull asks the source's node agent what its container really runs from
(NodeService.DescribeWorkload), over mTLS on loopback with the SMF's certificate: a service
restarted behind the SMF's back is pre-pulled from its real image, not the journal's stale one;
without an answer the journal is next, then the registered image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as npb_grpc
from agents.common.client import secure_channel
from agents.common.config import load_config
from agents.common.server import AgentServer
from agents.node.agent import add_node_service
from agents.node.core import NodeCore, NodeOptions
from agents.node.domain import Layer, NotFound, PhaseFailed
from agents.node.engine import RegistryAccess, Timed
from agents.node.gpu import NO_GPU
from agents.node.store import NodeStore
from agents.security.capability import CapType, ObjectId, SealedCapabilityAuthority
from agents.security.crypto import Identity
from agents.security.rasp import Resources
from agents.security.stores import InMemoryRevocationStore
from agents.smf.container import NodeContainerPhases, WorkloadTemplate
from agents.smf.domain import DeviceEntry, MigrationState, ServerEntry, ServiceEntry, UserEntry

REG = "127.0.0.1:5000"
STALE = f"{REG}/edge-a/nms@sha256:{'0' * 64}"     # what the SMF's journal says
REAL = f"{REG}/edge-b/nms@sha256:{'1' * 64}"      # what the source's container runs from
REGISTERED = f"{REG}/svc/nms:1"


class Engine:
    """The engine of one loopback node agent: containers it describes, images it can pull."""

    registry = RegistryAccess(REG, "u", "p", Path("/nonexistent/ca.crt"))
    interface = "lo"

    def __init__(self) -> None:
        self.described: dict[str, dict[str, Any]] = {}
        self.pullable: set[str] = set()
        self.prepulled: list[str] = []
        self.calls: list[str] = []

    def info(self) -> dict[str, Any]:
        return {"DockerRootDir": "/nonexistent"}

    def version(self) -> str:
        return "20.10"

    def find(self, name: str) -> Any:
        return None

    def describe(self, name: str) -> dict[str, Any]:
        self.calls.append(f"describe {name}")
        if name not in self.described:
            raise NotFound(f"no container named {name}")
        return self.described[name]

    def prepull(self, ref: Any) -> Timed:
        self.prepulled.append(str(ref))
        if str(ref) not in self.pullable:
            raise PhaseFailed(f"{ref}: manifest unknown")
        return Timed(0.1, {"layers": [Layer("sha256:" + "a" * 64, 1000, True)]})


class Node:
    def __init__(self, pki: Any, root: Path, name: str) -> None:
        cert = pki.issue(f"node.{name}")
        cfg = load_config(None, {}, defaults={
            "name": name, "listen_host": "127.0.0.1", "listen_port": 0,
            "data_dir": str(root / name), "grace_seconds": 0.2, "log_level": "ERROR",
            "tls.ca_cert": str(pki.ca.cert_path), "tls.cert": str(cert.cert_path),
            "tls.key": str(cert.key_path)})
        (root / name).mkdir(parents=True, exist_ok=True)
        self.engine = Engine()
        core = NodeCore(self.engine, NodeStore.open(root / name / "node.sqlite3"),  # type: ignore[arg-type]
                        NodeOptions(root / name), gpu=NO_GPU)
        self.server = AgentServer(cfg)
        self.server.on_stop(core.store.close)
        add_node_service(self.server, core)
        self.server.start()


class Journal:
    """The SMF journal's answer for the service's image (all prepull reads of it)."""

    def __init__(self, image: str) -> None:
        self.image_ref = image

    def image(self, service_id: str) -> str:
        return self.image_ref


@pytest.fixture
def nodes(lab_pki: Any, tmp_path: Path) -> Iterator[dict[str, Node]]:
    out = {name: Node(lab_pki, tmp_path, name) for name in ("edge-a", "edge-b")}
    yield out
    for node in out.values():
        node.server.stop(0)


def phases(lab_pki: Any, nodes: dict[str, Node], journal: Journal,
           caller: str = "smf.control") -> tuple[NodeContainerPhases, MigrationState]:
    cert = lab_pki.issue(caller)
    channels = {name: secure_channel(f"127.0.0.1:{n.server.port}", lab_pki.ca.cert_path,
                                     cert.cert_path, cert.key_path)
                for name, n in nodes.items()}
    container = NodeContainerPhases(
        {"nms": WorkloadTemplate(workload="nms", repository="nms", container_port=7070)},
        lambda server: npb_grpc.NodeServiceStub(channels[server.name]),
        journal)  # type: ignore[arg-type]
    auth = SealedCapabilityAuthority("smf", b"k" * 32, store=InMemoryRevocationStore(),
                                     master_types=list(CapType))
    cap = auth.issue_master(CapType.SERVICE, ObjectId(1), 0)
    src = ServerEntry("edge-a", "", Identity.generate("edge-a").public, "127.0.0.1", 1, 0)
    dst = ServerEntry("edge-b", "", Identity.generate("edge-b").public, "127.0.0.1", 1, 0)
    service = ServiceEntry("svc-1", "nms", "1", "l", "", 0, "tcp", Resources(cpu=500),
                           REGISTERED, cap, (src, dst))
    state = MigrationState("mig-1", service, src, dst, UserEntry("u", "A", "B", "", 0, "", cap),
                           DeviceEntry("d", "l", "p", "A", "B", cap), epoch=1)
    state.extras["node_ref"] = ("mig-1", 1)
    return container, state


def test_prepull_takes_the_image_the_source_really_runs(lab_pki: Any,
                                                        nodes: dict[str, Node]) -> None:
    # the experiment restarted the service from REAL behind the SMF's back: journal says STALE
    nodes["edge-a"].engine.described["nms"] = {
        "state": "running", "image_ref": f"{REG}/edge-b/nms:mig-1-2",
        "image_id": "sha256:" + "2" * 64, "repo_digests": [REAL]}
    nodes["edge-b"].engine.pullable = {REAL, STALE}
    container, state = phases(lab_pki, nodes, Journal(STALE))
    result = container.prepull_current(state)
    assert nodes["edge-b"].engine.prepulled == [REAL]  # the real image, and only it
    assert f"pre-pulled {REAL}" in result.detail and state.extras["prepulled"] == REAL
    assert state.extras["source_image"]["repo_digests"] == [REAL]
    assert state.extras["size_bytes"] == 1000
    assert nodes["edge-a"].engine.calls == ["describe nms"]  # asked the source, not the dest


def test_prepull_falls_back_to_the_journal_then_the_registered_image(
        lab_pki: Any, nodes: dict[str, Node]) -> None:
    nodes["edge-b"].engine.pullable = {STALE, REGISTERED}
    container, state = phases(lab_pki, nodes, Journal(STALE))  # no container at the source
    result = container.prepull_current(state)
    assert nodes["edge-b"].engine.prepulled == [STALE]
    assert "source image unknown" in result.detail and "NOT_FOUND" in result.detail

    nodes["edge-b"].engine.prepulled.clear()
    nodes["edge-b"].engine.pullable = {REGISTERED}
    container, state = phases(lab_pki, nodes, Journal(STALE))
    container.prepull_current(state)
    assert nodes["edge-b"].engine.prepulled == [STALE, REGISTERED]
    assert state.extras["prepulled"] == REGISTERED


def test_only_the_smf_and_the_audit_monitor_may_describe_a_workload(
        lab_pki: Any, nodes: dict[str, Node]) -> None:
    nodes["edge-a"].engine.described["nms"] = {
        "state": "running", "image_ref": REAL, "image_id": "", "repo_digests": [REAL]}
    port = nodes["edge-a"].server.port
    request = npb.DescribeWorkloadRequest(name="nms")
    # the SMF (prepull) and the audit agent's monitor (container liveness) may ask; nobody else
    for caller in ("controller", "node.edge-b", "ras.control", "ledger.control"):
        cert = lab_pki.client if caller == "controller" else lab_pki.issue(caller)
        stub = npb_grpc.NodeServiceStub(secure_channel(
            f"127.0.0.1:{port}", lab_pki.ca.cert_path, cert.cert_path, cert.key_path))
        with pytest.raises(grpc.RpcError) as err:
            stub.DescribeWorkload(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, caller
    assert nodes["edge-a"].engine.calls == []  # refused before the engine was asked
    cert = lab_pki.issue("smf.control")
    smf = npb_grpc.NodeServiceStub(secure_channel(
        f"127.0.0.1:{port}", lab_pki.ca.cert_path, cert.cert_path, cert.key_path))
    resp = smf.DescribeWorkload(request, timeout=5)
    assert (resp.state, list(resp.repo_digests)) == ("running", [REAL])
    cert = lab_pki.issue("audit.control")
    audit = npb_grpc.NodeServiceStub(secure_channel(
        f"127.0.0.1:{port}", lab_pki.ca.cert_path, cert.cert_path, cert.key_path))
    assert audit.DescribeWorkload(request, timeout=5).state == "running"
