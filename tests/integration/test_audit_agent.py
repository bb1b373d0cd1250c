"""The audit agent over real gRPC + mTLS on loopback: registration, sharing, the paper's
verification (Tables 5-6), the three modes, monitoring input, refusals and the audit log."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from agents.audit.agent import setup_audit
from agents.audit.client import AuditClient, AuditRpcError
from agents.audit.owners import seal_owner_token
from agents.audit.tables import seed002_tables
from agents.common.config import AgentConfig
from agents.common.server import AgentServer


@pytest.fixture
def owner_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = secrets.token_bytes(32)
    path = tmp_path / "owner-token.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, key)
    os.close(fd)
    return path, key


class AuditLab:
    def __init__(self, lab_pki: Any, agent_config: Callable[..., AgentConfig],
                 run_agent_server: Callable[..., AgentServer], owner_key: tuple[Path, bytes],
                 **settings: Any) -> None:
        self.key = owner_key[1]
        overrides = {"settings.owner_token_key": str(owner_key[0]), "settings.seed": 7}
        overrides.update({f"settings.{k}": v for k, v in settings.items()})
        self.config = agent_config(name="audit", **overrides)
        holder: dict[str, Any] = {}
        self.server = run_agent_server(
            self.config, lambda s: holder.update(service=setup_audit(s, self.config)))
        self.service = holder["service"]
        self.pki = lab_pki

    def client(self, name: str | None = None) -> AuditClient:
        issued = self.pki.issue(name, server=False) if name else None
        return AuditClient(self.pki.channel(self.server.port, issued))

    def token(self, owner: str) -> bytes:
        return seal_owner_token(self.key, owner, 600)

    def load_paper(self) -> None:
        doc = seed002_tables()
        eo, co = self.token("edge-owner"), self.token("app-owner")
        with self.client() as c, self.client("node.edge") as node:
            for name, edge in doc.edges.items():
                key = c.register_edge(eo, name, edge.canonical(), region=edge.region,
                                      address=edge.address)
                assert c.redeem_share_key(co, key) == name
                node.report_edge_state(name, 40, 30)
            c.register_container(co, "App1", doc.containers["App1"].canonical(),
                                 location="Edge1")


@pytest.fixture
def lab(lab_pki, agent_config, run_agent_server, owner_key) -> AuditLab:
    return AuditLab(lab_pki, agent_config, run_agent_server, owner_key)


def test_paper_verification_over_mtls(lab):
    lab.load_paper()
    co = lab.token("app-owner")
    with lab.client() as c:
        results = {}
        for i in range(2, 9):
            v = c.evaluate(co, "App1", edge=f"Edge{i}")
            results[f"Edge{i}"] = (v.permit, [f.element for f in v.tries[0].failures])
            assert v.round_trip_seconds >= v.audit_seconds > 0
        assert results == {
            "Edge2": (False, ["cDAl"]), "Edge3": (True, []), "Edge4": (False, ["cDAo"]),
            "Edge5": (True, []), "Edge6": (False, ["cDAl"]), "Edge7": (True, []),
            "Edge8": (True, [])}
        deny = c.evaluate(co, "App1", edge="Edge4")
        row = deny.tries[0].failures[0]
        assert (row.required, row.actual) == ("-caB", "caB")
        assert deny.reasons == ("Edge4: cDAo: caB is excluded",)

        # region and any-edge modes: only permitted edges, tries reported in order (Tables 7-8)
        for region, allowed in (("regionB", {"Edge3"}), ("regionC", {"Edge5"}),
                                ("regionD", {"Edge7", "Edge8"})):
            for seed in range(6):
                v = c.evaluate(co, "App1", region=region, seed=seed)
                assert v.permit and v.chosen_edge in allowed
                assert [t.edge for t in v.tries] == list(v.candidates[: len(v.tries)])
                assert all(not t.permit for t in v.tries[:-1])
        picks = {c.evaluate(co, "App1", seed=s).chosen_edge for s in range(25)}
        assert picks == {"Edge3", "Edge5", "Edge7", "Edge8"}
        again = c.evaluate(co, "App1", seed=3), c.evaluate(co, "App1", seed=3)
        assert [t.edge for t in again[0].tries] == [t.edge for t in again[1].tries]
        ok, entries, problem = c.verify_log()
        assert ok and problem == ""

    # every decision is in the log, with the caller's certificate name
    decisions = [e for e in lab.service.log.entries() if e.entry["kind"] == "decision"]
    assert len(decisions) == 7 + 1 + 18 + 25 + 2
    assert {e.entry["caller"] for e in decisions} == {"controller"}
    assert entries == lab.service.log.length


def test_refusals_map_to_status_codes(lab):
    lab.load_paper()
    co = lab.token("app-owner")
    with lab.client() as c:
        cases = [
            (lambda: c.evaluate(b"junk", "App1", edge="Edge3"), grpc.StatusCode.UNAUTHENTICATED),
            (lambda: c.evaluate(seal_owner_token(secrets.token_bytes(32), "app-owner"), "App1",
                                edge="Edge3"), grpc.StatusCode.UNAUTHENTICATED),
            (lambda: c.evaluate(lab.token("mallory"), "App1", edge="Edge3"),
             grpc.StatusCode.PERMISSION_DENIED),
            (lambda: c.evaluate(co, "App1", edge="Edge9"), grpc.StatusCode.NOT_FOUND),
            (lambda: c.evaluate(co, "App1", region="regionZ"), grpc.StatusCode.NOT_FOUND),
            (lambda: c.evaluate(co, "App1", edge="Edge1"), grpc.StatusCode.FAILED_PRECONDITION),
            (lambda: c.register_container(co, "Bad", {"cDAl": "uk"}),
             grpc.StatusCode.INVALID_ARGUMENT),
            (lambda: c.register_container(co, "App1", {}), grpc.StatusCode.ALREADY_EXISTS),
            (lambda: c.update_edge(co, "Edge3", {"eDAl": "jp"}),
             grpc.StatusCode.PERMISSION_DENIED),
        ]
        for call, code in cases:
            with pytest.raises(AuditRpcError) as err:
                call()
            assert err.value.code == code, err.value
        with pytest.raises(AuditRpcError, match="unknown country code 'uk'"):
            c.register_container(co, "Bad", {"cDAl": "uk"})
    with lab.client("smf.control") as smf, pytest.raises(AuditRpcError) as err:
        smf.report_edge_state("Edge3", 1, 1)  # monitoring is the node agents' and controller's
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_foreign_certificate_is_refused(lab):
    channel = lab.pki.channel(lab.server.port, lab.pki.foreign_client)
    with pytest.raises(AuditRpcError) as err:
        AuditClient(channel, timeout=3).verify_log()
    assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_policy_restricts_callers_by_certificate_role(lab):
    """agents/audit/policy.py: the SMF may evaluate but not administer; a node agent may
    report edge state only; a certificate with no role may call nothing."""
    lab.load_paper()
    co = lab.token("app-owner")
    with lab.client("smf.control") as smf:
        assert smf.evaluate(co, "App1", edge="Edge3").tries
        with pytest.raises(AuditRpcError) as err:
            smf.verify_log()
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    with lab.client("node.edge") as node, pytest.raises(AuditRpcError) as err:
        node.list_edges(co)
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    with lab.client("intruder") as nobody, pytest.raises(AuditRpcError) as err:
        nobody.report_edge_state("Edge1", 1, 1)
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    with lab.client() as c:
        assert c.verify_log()[0]


def test_monitoring_input_changes_decisions(lab):
    lab.load_paper()
    co = lab.token("app-owner")
    with lab.client() as c, lab.client("node.edge") as node:
        node.report_edge_state("Edge3", 75, 30)
        v = c.evaluate(co, "App1", edge="Edge3")
        assert not v.permit and v.tries[0].failures[0].note == "75% > 60"
        node.report_edge_state("Edge3", 10, 10, alive=False)
        v = c.evaluate(co, "App1", edge="Edge3")
        assert [f.element for f in v.tries[0].failures] == ["liveness"]
        listing = {e.edge.name: e for e in c.list_edges(co)}
        assert not listing["Edge3"].state.alive and not listing["Edge3"].owned
        c.set_container_location(co, "App1", "Edge7")
        v = c.evaluate(co, "App1", region="regionD", seed=1)
        assert "Edge7" not in v.candidates


def test_tampered_log_stops_the_agent_from_starting(lab, agent_config, owner_key):
    lab.load_paper()
    log_path = Path(lab.config.resolved_data_dir) / "audit.jsonl"
    lab.server.stop(0)
    lines = log_path.read_bytes().splitlines(keepends=True)
    rec = json.loads(lines[3])
    rec["entry"]["caller"] = "someone-else"
    lines[3] = json.dumps(rec, separators=(",", ":")).encode() + b"\n"
    log_path.write_bytes(b"".join(lines))
    cfg = lab.config
    args = [sys.executable, "-m", "agents.audit", "--listen", "127.0.0.1:0",
            "--ca-cert", str(cfg.tls.ca_cert), "--cert", str(cfg.tls.cert),
            "--key", str(cfg.tls.key), "--data-dir", str(cfg.resolved_data_dir),
            "--set", f"settings.owner_token_key={owner_key[0]}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "line 4 was modified" in proc.stderr


def test_cli_register_share_and_evaluate_against_the_agent(lab, tmp_path):
    from click.testing import CliRunner

    from agents.audit.tables import SEED002_RESOURCE
    from edgeferry.cli.audit import audit

    def token_file(owner: str) -> str:
        path = tmp_path / f"{owner}.token"
        path.write_text(lab.token(owner).hex())
        return str(path)

    conn = ["--agent", f"127.0.0.1:{lab.server.port}", "--ca-cert", str(lab.pki.ca.cert_path),
            "--cert", str(lab.pki.client.cert_path), "--key", str(lab.pki.client.key_path)]
    runner = CliRunner()
    import importlib.resources
    paper = importlib.resources.files("agents.audit").joinpath(SEED002_RESOURCE)
    with importlib.resources.as_file(paper) as paper_file:
        result = runner.invoke(audit, ["register", str(paper_file), "--token-file",
                                       token_file("alice"), *conn])
    assert result.exit_code == 0, result.output
    keys = {line.split()[1].rstrip(":"): line.split()[-1] for line in result.output.splitlines()
            if "share key" in line}
    assert sorted(keys) == [f"Edge{i}" for i in range(1, 9)]
    with lab.client("node.edge") as node:
        for name in keys:
            node.report_edge_state(name, 40, 30)

    result = runner.invoke(audit, ["evaluate", "App1", "--edge", "Edge3", "--token-file",
                                   token_file("alice"), *conn])
    assert result.exit_code == 0, result.output  # alice owns App1 and Edge3
    assert "PERMIT: migrate to Edge3" in result.output and "logged as entry" in result.output
    result = runner.invoke(audit, ["evaluate", "App1", "--edge", "Edge6", "--token-file",
                                   token_file("alice"), *conn])
    assert result.exit_code == 1 and "Edge6: cDAl: kr not in allowed jp,us,fr" in result.output
    result = runner.invoke(audit, ["share", "redeem", keys["Edge5"], "--token-file",
                                   token_file("bob"), *conn])
    assert result.exit_code == 0 and "edge Edge5 is now available" in result.output
    result = runner.invoke(audit, ["verify-log", *conn])
    assert result.exit_code == 0 and "audit log OK" in result.output
    result = runner.invoke(audit, ["evaluate", "App1", "--token-file", token_file("bob"), *conn])
    assert "PERMISSION_DENIED" in str(result.exception)
    down = conn.copy()
    down[1] = "127.0.0.1:1"
    result = runner.invoke(audit, ["verify-log", *down])
    assert "cannot reach the audit agent" in str(result.exception)
