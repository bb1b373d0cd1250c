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

    denied = co.post("/api/v1/migrations", json={"container": "App1", "edge": "Edge-kr"},
                     headers={"X-CSRF-Token": c_csrf})
    assert denied.status_code == 202
    m = _finished(co, denied.json()["id"])
    assert m["state"] == "denied" and m["message"] == "DENY: cDAl"
    assert [p["name"] for p in m["phases"]] == ["policy_audit"]
    assert m["phases"][0]["outcome"] == "rejected"
    # a permitted one without an SMF binding is audited, not moved, and says so
    unbound = _finished(co, co.post("/api/v1/migrations", json={"container": "App1",
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



def _follow(client, mid: int) -> tuple[list[str], dict]:
    """Poll migration ``mid`` until it ends (10 s at most): the states it went through, in
    order, and its last view."""
    states: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = client.get(f"/api/v1/migrations/{mid}").json()
        if not states or states[-1] != m["state"]:
            states.append(m["state"])
        if m["state"] in ("done", "failed", "denied"):
            break
        time.sleep(0.02)
    return states, m

class _RecordingSmf(SmfClient):
    """An SMF client whose MigrateService answer is scripted (no SMF, RAS and edges here);
    it records the calls the UI makes. ``tries``: the answer to a region / any-edge call (the
    first permitted edge is where it goes; none: POLICY_DENIED, as the SMF answers)."""

    def __init__(self, tries: tuple = ()) -> None:  # no channel
        self.calls: list[tuple] = []
        self.streamed = False
        self.tries = tries

    def migrate(self, service_id, user_id, device_id, user_cap, device_cap, destination, *,
                request_id="", order="", region="", any_edge=False, audit_seed=None,
                on_phase=None):
        self.calls.append((service_id, user_id, device_id, user_cap, device_cap, destination,
                           region, any_edge))
        self.streamed = on_phase is not None  # the UI asks for the phases as they end
        time.sleep(0.3)  # long enough for the status to show "migrating"
        if region or any_edge:
            chosen = next((t[0] for t in self.tries if t[1]), "")
            if not chosen:
                return MigrationReport(
                    False, "Edge-home", 1, b"", (PhaseTiming("policy_audit", 0.01, 0,
                                                             "rejected", "no permit"),),
                    "POLICY_DENIED", "POLICY_DENIED: no edge permits", 0.1, "",
                    tries=self.tries)
            destination = chosen
        phases = tuple(PhaseTiming(name, 0.01, 0, "ok", "") for name in
                       ("policy_audit", "rasp_exchange", "ledger_write", "stop", "commit",
                        "push", "pull", "run", "location_commit"))
        for phase in phases if on_phase else ():
            on_phase(phase)
        return MigrationReport(True, destination, 2, b"s", phases, None, "", 0.1, "diff",
                               tries=self.tries)


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
    states, m = _follow(co, mid)
    assert states[-2:] == ["migrating", "done"], states
    assert smf.calls == [("svc-1", "user-1", "dev-1", b"UCAP", b"DCAP", "Edge-jp", "", False)]
    assert smf.streamed
    # the UI's own audit first, then the SMF's phases in its order
    assert [p["name"] for p in m["phases"]] == [
        "policy_audit", "policy_audit", "rasp_exchange", "ledger_write", "stop", "commit",
        "push", "pull", "run", "location_commit"]
    # a denied one never reaches the SMF
    denied = co.post("/api/v1/migrations", json={"container": "App1", "edge": "Edge-kr"},
                     headers={"X-CSRF-Token": c_csrf}).json()["id"]
    assert _follow(co, denied)[0][-1] == "denied"
    assert len(smf.calls) == 1


def _finished(co, mid: int) -> dict:
    """Migration ``mid`` once it ended (it must end within 10 s)."""
    states, m = _follow(co, mid)
    assert m["state"] in ("done", "failed", "denied"), f"did not finish: {states}"
    return m


def _owner_with_app1(env: UiEnv):
    eo, e_csrf, co, c_csrf, keys = _setup_owners(env)
    for key in keys.values():
        co.post("/api/v1/share-keys/redeem", json={"share_key": key},
                headers={"X-CSRF-Token": c_csrf})
    r = co.post("/api/v1/containers", json={"name": "App1", "location": "Edge-home",
                                            "requirements": POLICY},
                headers={"X-CSRF-Token": c_csrf})
    assert r.status_code == 201, r.text
    return eo, e_csrf, co, c_csrf, keys


def test_migration_target_kinds_are_validated(env):
    _eo, _, co, c_csrf, _keys = _owner_with_app1(env)
    h = {"X-CSRF-Token": c_csrf}
    refused = {
        "target kind: one of edge, region, any (not 'nearest')":
            {"container": "App1", "kind": "nearest"},
        "region: required for a migration to a region": {"container": "App1", "kind": "region"},
        "edge: required for a migration to a named edge": {"container": "App1"},
        "edge: only with target kind edge (kind is any)":
            {"container": "App1", "kind": "any", "edge": "Edge-jp"},
        "region: only with target kind region (kind is edge)":
            {"container": "App1", "edge": "Edge-jp", "region": "r1"},
    }
    for message, body in refused.items():
        r = co.post("/api/v1/migrations", json=body, headers=h)
        assert (r.status_code, r.json()["detail"]) == (400, message), body
    # a blank region is no region
    r = co.post("/api/v1/migrations", json={"container": "App1", "kind": "region",
                                            "region": "   "}, headers=h)
    assert r.json()["detail"] == "region: required for a migration to a region"
    # bounded by the API model: over-long kind / region, unknown fields
    for body in ({"container": "App1", "kind": "region", "region": "r" * 65},
                 {"container": "App1", "kind": "k" * 17},
                 {"container": "App1", "kind": "any", "seed": 3}):
        assert co.post("/api/v1/migrations", json=body, headers=h).status_code == 422, body
    # another owner's container: refused by the audit agent's ownership rule, any target
    other = env.client()
    o_csrf = sign_up_and_in(other, "olga", "container")
    for body in ({"container": "App1", "kind": "any"},
                 {"container": "App1", "kind": "region", "region": "r1"}):
        r = other.post("/api/v1/migrations", json=body, headers={"X-CSRF-Token": o_csrf})
        assert r.status_code == 403 and "App1" in r.json()["detail"], r.text
    assert other.get("/api/v1/migrations").json() == []
    assert co.get("/api/v1/migrations").json() == []  # nothing started
    # the page's form says the same in the page
    page = co.post("/migrations", data={"csrf_token": c_csrf, "container": "App1",
                                        "kind": "nearest", "edge": "Edge-jp"})
    assert page.status_code == 400
    assert "target kind: one of edge, region, any (not &#39;nearest&#39;)" in page.text
    # the form sends every field: those of another kind are ignored
    page = co.post("/migrations", data={"csrf_token": c_csrf, "container": "App1",
                                        "kind": "any", "edge": "Edge-kr", "region": "r9"},
                   follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/status?done=migration"
    started = co.get("/api/v1/migrations").json()
    assert [(m["kind"], m["edge"], m["region"], m["target"]) for m in started] == [
        ("any", "", "", "any edge")]
    _finished(co, started[0]["id"])


def test_region_and_any_edge_without_binding_show_the_audits_tries(env):
    _eo, _, co, c_csrf, _keys = _owner_with_app1(env)
    h = {"X-CSRF-Token": c_csrf}
    # region r1 holds Edge-jp (permits), Edge-kr (kr is not in cDAl) and Edge-home (where App1
    # runs: never a candidate). In the audit's order Edge-kr may come first.
    m = _finished(co, co.post("/api/v1/migrations", json={
        "container": "App1", "kind": "region", "region": "r1"}, headers=h).json()["id"])
    assert m["state"] == "failed" and m["target"] == "region r1" and m["chosen"] == "Edge-jp"
    assert "audit permits Edge-jp (first permitted edge in region r1)" in m["message"]
    assert "no SMF binding" in m["message"]
    assert m["tries"][-1] == {"edge": "Edge-jp", "permit": True, "reasons": []}
    for t in m["tries"][:-1]:
        assert t["edge"] == "Edge-kr" and not t["permit"]
        assert [r.split(":")[0] for r in t["reasons"]] == ["cDAl"], t
    assert [(p["name"], p["outcome"]) for p in m["phases"]] == [("policy_audit", "ok")]
    assert co.get("/api/v1/containers/App1").json()["location"] == "Edge-home"  # not moved

    # a policy no edge but its own location satisfies: every candidate is tried and denied
    r = co.post("/api/v1/containers", json={"name": "App2", "location": "Edge-home",
                                            "requirements": {**POLICY, "cDAl": "us,fr"}},
                headers=h)
    assert r.status_code == 201, r.text
    m = _finished(co, co.post("/api/v1/migrations", json={"container": "App2", "kind": "any"},
                              headers=h).json()["id"])
    assert m["state"] == "denied" and m["chosen"] == "" and m["target"] == "any edge"
    assert sorted(t["edge"] for t in m["tries"]) == ["Edge-jp", "Edge-kr"]
    assert all(not t["permit"] and t["reasons"][0].startswith("cDAl: ") for t in m["tries"])
    assert m["message"] == "DENY: no edge anywhere permits"
    assert m["phases"][0]["outcome"] == "rejected"
    # the status page lists the tries
    html = co.get("/status/live").text
    assert html.count('class="try-deny"') >= 2 and "Edge-jp: deny (cDAl: " in html
    # an unknown region: the audit agent's refusal
    m = _finished(co, co.post("/api/v1/migrations", json={
        "container": "App1", "kind": "region", "region": "nowhere"}, headers=h).json()["id"])
    assert m["state"] == "failed" and "no registered edge is in region 'nowhere'" in m["message"]
    # every decision is in the owner's audit log with its mode
    log = co.get("/api/v1/audit-log").json()["entries"]
    modes = [e["entry"]["decision"]["mode"] for e in log if e["kind"] == "decision"]
    assert modes == ["region", "any"], modes


def test_region_and_any_edge_go_to_the_smf_which_reports_the_tries(env):
    _eo, _, co, c_csrf, _keys = _owner_with_app1(env)
    h = {"X-CSRF-Token": c_csrf}
    backend = env.state.portal.backend
    smf = _RecordingSmf(tries=(("Edge-kr", False, ("cDAl: 'kr' is not allowed",)),
                               ("Edge-jp", True, ())))
    backend.smf = smf
    backend.bindings = {"App1": SmfBinding("svc-1", "user-1", "dev-1", b"UCAP", b"DCAP")}
    mid = co.post("/api/v1/migrations", json={"container": "App1", "kind": "region",
                                              "region": "r1"}, headers=h).json()["id"]
    states, m = _follow(co, mid)
    # no audit of the UI's own before the SMF: straight to migrating, the SMF's phases only
    assert states == ["migrating", "done"], states
    assert smf.calls == [("svc-1", "user-1", "dev-1", b"UCAP", b"DCAP", "", "r1", False)]
    assert [p["name"] for p in m["phases"]] == [
        "policy_audit", "rasp_exchange", "ledger_write", "stop", "commit", "push", "pull",
        "run", "location_commit"]
    assert m["chosen"] == "Edge-jp" and m["message"] == ""
    assert m["tries"] == [{"edge": "Edge-kr", "permit": False,
                           "reasons": ["cDAl: 'kr' is not allowed"]},
                          {"edge": "Edge-jp", "permit": True, "reasons": []}]
    html = co.get("/status/live").text
    assert "region r1 &rarr; <span class=\"chosen\">Edge-jp</span>" in html
    assert "Edge-kr: deny (cDAl: &#39;kr&#39; is not allowed)" in html
    assert "Edge-jp: permit" in html
    # none permits: denied, nothing chosen
    smf.tries = (("Edge-kr", False, ("cDAl: no",)), ("Edge-jp", False, ("cHRm: no",)))
    m = _finished(co, co.post("/api/v1/migrations", json={"container": "App1", "kind": "any"},
                              headers=h).json()["id"])
    assert smf.calls[-1][5:] == ("", "", True)
    assert m["state"] == "denied" and m["chosen"] == ""
    assert m["message"].startswith("POLICY_DENIED")
    assert [t["edge"] for t in m["tries"]] == ["Edge-kr", "Edge-jp"]
