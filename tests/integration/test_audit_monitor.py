"""The audit agent's monitor polls a real node agent over mTLS on loopback (seed 002, Figure 8):
utilisation and liveness of the edge, liveness of the container located there; a killed node
agent becomes a failed reading that denies cHRcu/cHRmu with its reason; a reading older than
two periods is stale and denies them too.

The node agent is the real NodeService (its own setup, policy and mTLS) over a small fake
container engine (one container "App1" running); its resources are the host's measured use.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.audit.agent import setup_audit
from agents.audit.client import AuditClient
from agents.audit.owners import seal_owner_token
from agents.audit.tables import seed002_tables
from agents.common.config import AgentConfig, load_config
from agents.common.server import AgentServer
from agents.node.agent import add_node_service
from agents.node.core import NodeCore, NodeOptions
from agents.node.domain import NotFound
from agents.node.gpu import NO_GPU
from agents.node.store import NodeStore
from tests.adversarial.authz_lab import RecordingEngine

PERIOD_S = 0.3


class OneContainerEngine(RecordingEngine):
    """The recording fake engine, plus DescribeWorkload's view of one running container."""

    def __init__(self, running: str) -> None:
        super().__init__()
        self.running = running

    def describe(self, name: str) -> dict[str, Any]:
        self.calls.append("describe")
        if not name.endswith(self.running):
            raise NotFound(f"no container {name}")
        return {"state": "running", "image_ref": "app:1", "image_id": "sha256:" + "0" * 64,
                "repo_digests": []}


def _config(pki: Any, root: Path, name: str, cn: str, settings: dict[str, Any]) -> AgentConfig:
    cert = pki.issue(cn)
    return load_config(None, {f"settings.{k}": v for k, v in settings.items()}, defaults={
        "name": name, "listen_host": "127.0.0.1", "listen_port": 0,
        "data_dir": str(root / name), "grace_seconds": 0.2, "log_level": "ERROR",
        "tls.ca_cert": str(pki.ca.cert_path), "tls.cert": str(cert.cert_path),
        "tls.key": str(cert.key_path)})


class MonitorLab:
    def __init__(self, pki: Any, root: Path) -> None:
        self.pki, self.root = pki, root
        self.engine = OneContainerEngine("App1")
        (root / "edge1").mkdir(parents=True)
        core = NodeCore(self.engine,  # type: ignore[arg-type]
                        NodeStore.open(root / "edge1" / "node.sqlite3"),
                        NodeOptions(root / "edge1"), gpu=NO_GPU)
        self.node = AgentServer(_config(pki, root, "edge1", "node.edge1", {}))
        self.node.on_stop(core.store.close)
        add_node_service(self.node, core)
        self.node.start()
        key = root / "owner.key"
        key.write_bytes(secrets.token_bytes(32))
        key.chmod(0o600)
        self.key = key.read_bytes()
        cfg = _config(pki, root, "audit", "audit.control", {
            "owner_token_key": str(key), "monitor": True, "monitor_interval_s": PERIOD_S,
            "monitor_timeout_s": 1.0,
            "node_addresses": {"Edge1": f"127.0.0.1:{self.node.port}",
                               "Edge2": "127.0.0.1:1"}})  # nothing listens there
        self.audit = AgentServer(cfg)
        holder: dict[str, Any] = {}
        holder["service"] = setup_audit(self.audit, cfg)
        self.service = holder["service"]
        self.audit.start()

    def client(self) -> AuditClient:
        return AuditClient(self.pki.channel(self.audit.port, None))  # the controller

    def token(self, owner: str) -> bytes:
        return seal_owner_token(self.key, owner, 600)

    def close(self) -> None:
        self.audit.stop(0)
        self.node.stop(0)


@pytest.fixture
def mlab(lab_pki: Any, tmp_path: Path) -> Iterator[MonitorLab]:
    lab = MonitorLab(lab_pki, tmp_path)
    yield lab
    lab.close()


def _wait(what: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_monitor_polls_node_agent_and_a_killed_one_denies_utilisation(mlab: MonitorLab) -> None:
    doc = seed002_tables()
    eo, co = mlab.token("edge-owner"), mlab.token("app-owner")
    with mlab.client() as c:
        for name in ("Edge1", "Edge2", "Edge3"):  # Edge3: no node address -> not polled
            edge = doc.edges[name]
            address = "" if name == "Edge3" else edge.address
            key = c.register_edge(eo, name, edge.canonical(), region=edge.region,
                                  address=address)
            c.redeem_share_key(co, key)
        c.register_container(co, "App1", doc.containers["App1"].canonical(), location="Edge1")
        c.register_container(co, "App2", doc.containers["App1"].canonical(), location="Edge1")
        # the controller's push stays possible: Edge3 gets a reading older than two periods
        c.report_edge_state("Edge3", 40, 30, measured_at=time.time() - 10 * PERIOD_S)

        # Edge1's node agent answers over mTLS: alive, utilisation in 0..100 %
        up = _wait(lambda: (s := mlab.service.states().get("Edge1")) and s.alive and s)
        assert 0 <= up.cpu_percent <= 100 and 0 < up.memory_percent <= 100
        assert up.failure == ""
        # Edge2's node agent does not answer: a failed reading with its reason
        down = _wait(lambda: (s := mlab.service.states().get("Edge2")) and s)
        assert not down.alive and "UNAVAILABLE" in down.failure.upper()
        # containers: App1 runs on Edge1, App2 is absent there
        live = _wait(lambda: mlab.service.liveness("App2") and mlab.service.liveness("App1"))
        assert (live.alive, live.state, live.edge) == (True, "running", "Edge1")
        absent = mlab.service.liveness("App2")
        assert absent is not None and not absent.alive and "absent" in absent.detail
        assert "describe" in mlab.engine.calls  # the audit's DescribeWorkload reached the engine
        got = c.get_container(co, "App1")
        assert got.name == "App1"
        listed = {e.edge.name: e.state for e in c.list_edges(co)}
        assert listed["Edge2"].failure and not listed["Edge2"].alive

        ev2 = c.evaluate(co, "App1", edge="Edge2")
        failed = {r.element: r.note for r in ev2.tries[0].failures}
        assert set(failed) == {"cDAl", "liveness", "cHRcu", "cHRmu"}  # Edge2 is de (Table 6)
        assert failed["cHRcu"].startswith("monitor reading failed:")
        ev3 = c.evaluate(co, "App1", edge="Edge3")  # stale push (Edge3 is fr: permitted else)
        stale = {r.element: r.note for r in ev3.tries[0].failures}
        assert set(stale) == {"cHRcu", "cHRmu"} and "stale" in stale["cHRcu"]

        # kill Edge1's node agent: the next poll is a failed reading that denies cHRcu
        mlab.node.stop(0)
        _wait(lambda: not mlab.service.states()["Edge1"].alive)
        assert mlab.service.states()["Edge1"].failure
        # App1 runs on Edge1, so audit a container located elsewhere against Edge1
        c.register_container(co, "App3", doc.containers["App1"].canonical(), location="Edge3")
        ev1 = c.evaluate(co, "App3", edge="Edge1")
        rows = {r.element: r.note for r in ev1.tries[0].failures}
        assert set(rows) == {"liveness", "cHRcu", "cHRmu"}
        assert rows["cHRcu"].startswith("monitor reading failed: ")
        assert len(rows["cHRcu"]) > len("monitor reading failed: ") + 5  # the reason itself
        dead = _wait(lambda: (x := mlab.service.liveness("App1")) and not x.alive and x)
        assert dead.detail.startswith("edge down")
