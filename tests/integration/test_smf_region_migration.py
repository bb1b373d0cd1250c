"""Seed 002 cases 2-3 through SMF.MigrateService over loopback agents (mTLS): RAS, SMF, the
audit agent and four edge hosts. The SMF asks the audit agent for the order of tries in a
region (or any region), migrates the service (RASP, location commit) to the first edge the audit
permits, and answers with the tries and the decision per edge. Container phases are not
configured here (no engine on loopback): the move is RASP + the SMF's location record + the
audit agent's location.

Edges carry Table 6's attributes (edgeN = EdgeN) and App1's policy (Table 5); the expected tries
are written out by hand from those tables and the stated seeds.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.audit.agent import setup_audit
from agents.audit.client import AuditClient
from agents.audit.owners import seal_owner_token
from agents.audit.tables import seed002_tables
from agents.common.server import AgentServer
from agents.common.status import RemoteProtocolError
from tests.adversarial.harness import Lab

REGIONS = {"edge1": "regionA", "edge2": "regionB", "edge3": "regionB", "edge4": "regionC"}


def _secret(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    os.close(fd)
    return path


class RegionLab:
    def __init__(self, pki: Any, root: Path) -> None:
        self.lab = Lab(pki, root)
        self.key = secrets.token_bytes(32)
        key_file = _secret(root / "owner.key", self.key)
        cfg = self.lab.config("audit", 0, {"owner_token_key": str(key_file), "seed": 3})
        self.audit = AgentServer(cfg)
        self.audit_service = setup_audit(self.audit, cfg)
        self.audit.start()
        token_file = _secret(root / "smf-owner.token", seal_owner_token(self.key, "app", 600))
        self.lab.smf_settings = {"audit": {"address": f"127.0.0.1:{self.audit.port}",
                                           "owner_token_file": str(token_file)}}
        self.lab.start(edges=tuple(REGIONS))
        self.who = self.lab.scenario()  # service nms on edge1; edge2..edge4 added
        doc = seed002_tables()
        eo = seal_owner_token(self.key, "edges", 600)
        self.co = seal_owner_token(self.key, "app", 600)
        c = self.audit_client()  # the lab's cached channel: not closed here
        for name, region in REGIONS.items():
            edge = doc.edges["E" + name[1:]]
            share = c.register_edge(eo, name, edge.canonical(), region=region)
            c.redeem_share_key(self.co, share)
            c.report_edge_state(name, 40, 30)  # Table 6's caption
        c.register_container(self.co, "nms", doc.containers["App1"].canonical(),
                             location="edge1")

    def audit_client(self) -> AuditClient:
        return AuditClient(self.lab.channel(self.audit.port, "controller"))

    def migrate(self, **kw: Any) -> Any:
        w = self.who
        return self.lab.smf_client().migrate(self.lab.service_id, w.user_id, w.device_id,
                                             w.user_cap, w.device_cap, "", **kw)

    def close(self) -> None:
        self.lab.close()
        self.audit.stop(0)


@pytest.fixture
def rlab(lab_pki: Any, tmp_path: Path) -> Iterator[RegionLab]:
    lab = RegionLab(lab_pki, tmp_path)
    yield lab
    lab.close()


def test_region_and_any_edge_migrations(rlab: RegionLab) -> None:
    smf = rlab.lab.smf_client()
    # region B from edge1, seed 0: edge2 (de: cDAl) is denied, edge3 (fr) permits -> moved there
    r = rlab.migrate(region="regionB", audit_seed=0, request_id="region-b")
    assert [(e, ok) for e, ok, _ in r.tries] == [("edge2", False), ("edge3", True)]
    assert [w.split(":")[0] for w in r.tries[0][2]] == ["cDAl"]
    assert r.tries[1][2] == ()
    assert r.migrated and r.location == "edge3" and r.audit_seed == 0
    assert smf.service(rlab.lab.service_id).location == "edge3"
    audit_phase = next(p for p in r.phases if p.phase == "policy_audit")
    assert "edge2 deny (cDAl" in audit_phase.detail and "edge3 permit" in audit_phase.detail
    names = [p.phase for p in r.phases]
    assert names.count("policy_audit") == 1 and "rasp_handshake" in names
    assert "location_commit" in names
    # the audit agent learnt the new location
    assert rlab.audit_client().get_container(rlab.co, "nms").location == "edge3"

    # region C: its only edge (edge4: caB excluded by cDAo) denies -> nothing moves
    r = rlab.migrate(region="regionC", audit_seed=5)
    assert not r.migrated and r.error_code == "POLICY_DENIED"
    assert [(e, ok) for e, ok, _ in r.tries] == [("edge4", False)]
    assert [w.split(":")[0] for w in r.tries[0][2]] == ["cDAo"]
    assert r.location == "edge3" and smf.service(rlab.lab.service_id).location == "edge3"

    # any edge from edge3, seed 1: edge2 denied, edge4 denied, edge1 (jp, caA) permits
    r = rlab.migrate(any_edge=True, audit_seed=1)
    assert [(e, ok) for e, ok, _ in r.tries] == [("edge2", False), ("edge4", False),
                                                 ("edge1", True)]
    assert r.migrated and smf.service(rlab.lab.service_id).location == "edge1"


def test_region_refusals(rlab: RegionLab) -> None:
    w = rlab.who
    smf = rlab.lab.smf_client()
    with pytest.raises(Exception) as both:
        smf.migrate(rlab.lab.service_id, w.user_id, w.device_id, w.user_cap, w.device_cap,
                    "edge2", region="regionB")
    assert "INVALID_ARGUMENT" in str(both.value) or "one of" in str(both.value)
    with pytest.raises(Exception) as unknown:
        rlab.migrate(region="regionZ")
    assert "regionZ" in str(unknown.value)
    with pytest.raises(RemoteProtocolError):  # a foreign USER CAP: refused before the audit
        smf.migrate(rlab.lab.service_id, w.user_id, w.device_id, w.device_cap, w.device_cap,
                    "", region="regionB")
    assert smf.service(rlab.lab.service_id).location == "edge1"
