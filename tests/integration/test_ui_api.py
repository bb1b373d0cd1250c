"""The UI server's REST API over the real audit agent (gRPC + mTLS on loopback): the owners'
flow, the CLI's validation messages, decision tables, migrations, the audit log."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from agents.smf.client import MigrationReport, PhaseTiming, SmfClient
from agents.ui.backend import SmfBinding
from edgeferry.cli.main import cli
from tests.integration.ui_env import EDGE_JP, EDGE_KR, POLICY, UiEnv, report_state, sign_up_and_in


@pytest.fixture
def env(lab_pki, agent_config, run_agent_server, tmp_path) -> Iterator[UiEnv]:
    made = UiEnv(lab_pki, agent_config, run_agent_server, tmp_path)
    yield made
    made.close()


def _setup_owners(env: UiEnv):
    eo, co = env.client(), env.client()
    e_csrf = sign_up_and_in(eo, "erin", "edge")
    c_csrf = sign_up_and_in(co, "carl", "container")
    keys = {}
    for name, attrs in (("Edge-jp", EDGE_JP), ("Edge-kr", EDGE_KR), ("Edge-home", EDGE_JP)):
        r = eo.post("/api/v1/edges", json={"name": name, "region": "r1", "attributes": attrs},
                    headers={"X-CSRF-Token": e_csrf})
        assert r.status_code == 201, r.text
        keys[name] = r.json()["share_key"]
        report_state(env, name)
    return eo, e_csrf, co, c_csrf, keys


def test_owner_flow_share_redeem_register_decide(env):
    eo, _e_csrf, co, c_csrf, keys = _setup_owners(env)
    # the edge owner sees their share keys again (the audit agent keeps only digests)
    listed = {e["name"]: e for e in eo.get("/api/v1/edges").json()}
    assert {n: e["share_key"] for n, e in listed.items()} == keys
    assert all(len(k) == 40 for k in keys.values())
    # before redeeming, the container owner sees no edge
    assert co.get("/api/v1/edges").json() == []
    for key in keys.values():
        assert co.post("/api/v1/share-keys/redeem", json={"share_key": key},
                       headers={"X-CSRF-Token": c_csrf}).status_code == 200
    seen = co.get("/api/v1/edges").json()
    assert sorted(e["name"] for e in seen) == ["Edge-home", "Edge-jp", "Edge-kr"]
    assert all(not e["owned"] and e["share_key"] == "" for e in seen)  # keys stay the owner's

    r = co.post("/api/v1/containers", json={"name": "App1", "location": "Edge-home",
                                            "requirements": POLICY},
                headers={"X-CSRF-Token": c_csrf})
    assert r.status_code == 201, r.text
    got = co.get("/api/v1/containers/App1").json()
    assert got["location"] == "Edge-home"
    assert got["requirements"]["cDAl"] == "jp,us,fr" and got["requirements"]["cDAo"] == "-caB"
    assert set(got["requirements"]) == set(POLICY)  # all Table 1 elements

    deny = co.post("/api/v1/containers/App1/decisions", json={"edge": "Edge-kr"},
                   headers={"X-CSRF-Token": c_csrf}).json()
    assert deny["permit"] is False and deny["failing"] == ["cDAl"]
    row = next(c for c in deny["checks"] if c["element"] == "cDAl")
    assert (row["required"], row["actual"], row["held"]) == ("jp,us,fr", "kr", False)
    permit = co.post("/api/v1/containers/App1/decisions", json={"edge": "Edge-jp"},
                     headers={"X-CSRF-Token": c_csrf}).json()
    assert permit["permit"] is True and permit["failing"] == []
    # the rows are access, liveness, then the 11 elements in Table 1 order
    assert [c["element"] for c in permit["checks"]] == ["access", "liveness", *POLICY]


def test_validation_messages_are_the_clis(env, tmp_path):
    eo, e_csrf, co, c_csrf, _keys = _setup_owners(env)
    bad_edge = {**EDGE_JP, "eDAl": "zz"}
    bad_policy = {**POLICY, "cHRc": "fast"}
    doc = {"edges": [{"name": "E1", "attributes": bad_edge}]}
    (tmp_path / "edge.yaml").write_text(yaml.safe_dump(doc))
    doc2 = {"edges": [{"name": "E1", "attributes": EDGE_JP}],
            "containers": [{"name": "App1", "requirements": bad_policy}]}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(doc2))
    runner = CliRunner()
    cli_edge = runner.invoke(cli, ["audit", "check", str(tmp_path / "edge.yaml"),
                                   "--container", "x", "--edge", "E1"])
    cli_policy = runner.invoke(cli, ["audit", "check", str(tmp_path / "policy.yaml"),
                                     "--container", "App1", "--edge", "E1"])
    assert cli_edge.exit_code != 0 and cli_policy.exit_code != 0
    # the CLI's one-line error (what `edgeferry` prints; CliRunner keeps it as the exception)
    cli_edge_text = cli_edge.output + str(cli_edge.exception)
    cli_policy_text = cli_policy.output + str(cli_policy.exception)

    r = eo.post("/api/v1/edges", json={"name": "E1", "attributes": bad_edge},
                headers={"X-CSRF-Token": e_csrf})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("eDAl: unknown country code 'zz'")
    assert r.json()["detail"] in cli_edge_text  # the same words as the CLI's
    r = co.post("/api/v1/containers", json={"name": "App1", "requirements": bad_policy},
                headers={"X-CSRF-Token": c_csrf})
    assert r.status_code == 400 and r.json()["detail"].startswith("cHRc: ")
    assert r.json()["detail"] in cli_policy_text
    r = co.post("/api/v1/containers", json={"name": "App1", "requirements": {"cXX": "1"}},
                headers={"X-CSRF-Token": c_csrf})
    assert r.status_code == 400 and "cXX" in r.json()["detail"]
    # bounded inputs: an oversized field is refused before any call
    r = co.post("/api/v1/containers", json={"name": "A" * 65, "requirements": {}},
                headers={"X-CSRF-Token": c_csrf})
    assert r.status_code == 422
    r = co.post("/api/v1/containers", content=b"{" + b" " * 70_000 + b"}",
                headers={"X-CSRF-Token": c_csrf, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_migration_denied_and_unbound_and_audit_log(env):
    eo, _e_csrf, co, c_csrf, keys = _setup_owners(env)
    for key in keys.values():
        co.post("/api/v1/share-keys/redeem", json={"share_key": key},
                headers={"X-CSRF-Token": c_csrf})
    co.post("/api/v1/containers", json={"name": "App1", "location": "Edge-home",
                                        "requirements": POLICY},
            headers={"X-CSRF-Token": c_csrf})

    def finished(mid: int) -> dict:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = co.get(f"/api/v1/migrations/{mid}").json()
            if m["state"] not in ("auditing", "migrating"):
                return m
            time.sleep(0.05)
        raise AssertionError("migration did not finish")

    denied = co.post("/api/v1/migrations", json={"container": "App1", "edge": "Edge-kr"},
                     headers={"X-CSRF-Token": c_csrf})
    assert denied.status_code == 202
    m = finished(denied.json()["id"])
    assert m["state"] == "denied" and m["message"] == "DENY: cDAl"
    assert [p["name"] for p in m["phases"]] == ["policy_audit"]
    assert m["phases"][0]["outcome"] == "rejected"
    # a permitted one without an SMF binding is audited, not moved, and says so
    unbound = finished(co.post("/api/v1/migrations", json={"container": "App1",
                                                           "edge": "Edge-jp"},
                               headers={"X-CSRF-Token": c_csrf}).json()["id"])
    assert unbound["state"] == "failed" and "no SMF binding" in unbound["message"]
    assert unbound["phases"][0]["outcome"] == "ok"
    assert co.get("/api/v1/containers/App1").json()["location"] == "Edge-home"

    log = co.get("/api/v1/audit-log").json()
    assert log["ok"] is True and log["problem"] == ""
    kinds = [e["kind"] for e in log["entries"]]
    # carl's own entries only: 3 redemptions, the registration, 2 decisions
    assert kinds == ["edge_shared"] * 3 + ["container_registered", "decision", "decision"]
    assert all(e["entry"]["owner"] == "ui:carl" for e in log["entries"])
    assert log["total"] == env.audit_service.log.length  # the whole chain was verified
    assert [e.seq for e in env.audit_service.log.entries()
            if e.entry.get("owner") == "ui:carl"] == [e["seq"] for e in log["entries"]]
    page = co.get("/api/v1/audit-log", params={"limit": 2}).json()
    assert [e["seq"] for e in page["entries"]] == [e["seq"] for e in log["entries"][:2]]
    rest = co.get("/api/v1/audit-log", params={"start": page["next_seq"]}).json()
    assert [e["seq"] for e in rest["entries"]] == [e["seq"] for e in log["entries"][2:]]
    erin = eo.get("/api/v1/audit-log").json()["entries"]
    assert [e["kind"] for e in erin] == ["edge_registered"] * 3


def test_openapi_document_lists_the_api(env):
    doc = env.client().get("/api/v1/openapi.json").json()
    assert doc["info"]["version"] == "1"
    paths = set(doc["paths"])
    assert {"/api/v1/edges", "/api/v1/containers", "/api/v1/migrations", "/api/v1/session",
            "/api/v1/audit-log", "/api/v1/events",
            "/api/v1/containers/{name}/decisions"} <= paths
    assert all(p.startswith("/api/v1/") for p in paths)  # pages stay out of the API document


def test_tampered_audit_log_is_shown_as_failed(env):
    eo, _e_csrf, *_ = _setup_owners(env)
    path = Path(env.audit_service.log.path)
    lines = path.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b"Edge-jp", b"Edge-xx")
    path.write_bytes(b"\n".join(lines))
    log = eo.get("/api/v1/audit-log").json()
    assert log["ok"] is False and "line 1 was modified" in log["problem"]
    assert log["entries"] == []
    page = eo.get("/audit-log")
    assert "Chain verification FAILED" in page.text


def test_the_agent_process_serves_https_with_the_lab_ca(env, tmp_path):
    """`python -m agents.ui` from a config file: HTTPS with the lab-CA certificate, talking to
    the audit agent as role ui (a sign-up + sign-in + edge registration goes through)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = tmp_path / "ui.yaml"
    config.write_text(yaml.safe_dump({
        "name": "ui", "listen_host": "127.0.0.1", "listen_port": port,
        "data_dir": str(tmp_path / "ui-data"),
        "tls": {"ca_cert": str(env.pki.ca.cert_path), "cert": str(env.cert.cert_path),
                "key": str(env.cert.key_path)},
        "settings": {"audit_address": f"localhost:{env.audit_server.port}",
                     "owner_token_key": str(env.settings.owner_token_key)}}))
    proc = subprocess.Popen([sys.executable, "-m", "agents.ui", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ctx = ssl.create_default_context(cafile=str(env.pki.ca.cert_path))
        with httpx.Client(base_url=f"https://localhost:{port}", verify=ctx) as c:
            deadline = time.monotonic() + 20
            while True:
                try:
                    r = c.get("/login")
                    break
                except httpx.ConnectError:
                    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert r.status_code == 200 and "Sign in" in r.text
            assert r.headers["content-security-policy"].startswith("default-src 'self'")
            token = sign_up_and_in(c, "paula", "edge")  # type: ignore[arg-type]
            r = c.post("/api/v1/edges", json={"name": "P1", "attributes": EDGE_JP},
                       headers={"X-CSRF-Token": token})
            assert r.status_code == 201, r.text
        assert [e.entry["caller"] for e in env.audit_service.log.entries()
                if e.entry.get("edge") == "P1"] == ["ui.localhost"]
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


class _RecordingSmf(SmfClient):
    """An SMF client whose MigrateService answer is scripted (no SMF, RAS and edges here);
    it records the calls the UI makes."""

    def __init__(self) -> None:  # no channel
        self.calls: list[tuple] = []
        self.streamed = False

    def migrate(self, service_id, user_id, device_id, user_cap, device_cap, destination, *,
                request_id="", order="", on_phase=None):
        self.calls.append((service_id, user_id, device_id, user_cap, device_cap, destination))
        self.streamed = on_phase is not None  # the UI asks for the phases as they end
        time.sleep(0.3)  # long enough for the status to show "migrating"
        phases = tuple(PhaseTiming(name, 0.01, 0, "ok", "") for name in
                       ("policy_audit", "rasp_exchange", "ledger_write", "stop", "commit",
                        "push", "pull", "run", "location_commit"))
        for phase in phases if on_phase else ():
            on_phase(phase)
        return MigrationReport(True, destination, 2, b"s", phases, None, "", 0.1, "diff")


def test_permitted_migration_goes_to_the_smf_with_the_binding(env):
    _eo, _, co, c_csrf, keys = _setup_owners(env)
    for key in keys.values():
        co.post("/api/v1/share-keys/redeem", json={"share_key": key},
                headers={"X-CSRF-Token": c_csrf})
    co.post("/api/v1/containers", json={"name": "App1", "location": "Edge-home",
                                        "requirements": POLICY},
            headers={"X-CSRF-Token": c_csrf})
    backend = env.state.portal.backend
    smf = _RecordingSmf()
    backend.smf = smf
    backend.bindings = {"App1": SmfBinding("svc-1", "user-1", "dev-1", b"UCAP", b"DCAP")}
    mid = co.post("/api/v1/migrations", json={"container": "App1", "edge": "Edge-jp"},
                  headers={"X-CSRF-Token": c_csrf}).json()["id"]
    states = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = co.get(f"/api/v1/migrations/{mid}").json()
        if not states or states[-1] != m["state"]:
            states.append(m["state"])
        if m["state"] in ("done", "failed", "denied"):
            break
        time.sleep(0.02)
    assert states[-2:] == ["migrating", "done"], states
    assert smf.calls == [("svc-1", "user-1", "dev-1", b"UCAP", b"DCAP", "Edge-jp")]
    assert smf.streamed
    # the UI's own audit first, then the SMF's phases in its order
    assert [p["name"] for p in m["phases"]] == [
        "policy_audit", "policy_audit", "rasp_exchange", "ledger_write", "stop", "commit",
        "push", "pull", "run", "location_commit"]
    # a denied one never reaches the SMF
    denied = co.post("/api/v1/migrations", json={"container": "App1", "edge": "Edge-kr"},
                     headers={"X-CSRF-Token": c_csrf}).json()["id"]
    while co.get(f"/api/v1/migrations/{denied}").json()["state"] == "auditing":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(smf.calls) == 1
