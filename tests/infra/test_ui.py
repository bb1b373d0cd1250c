"""The UI server (issue 15, the HTTPS instance ``ui`` of the control host): it answers over
HTTPS with its lab-CA certificate (and a client without the lab CA does not trust it), refuses
plain HTTP, serves an OpenAPI document with only versioned /api/v1 paths, and refuses a
signed-out request to a protected API route. Hosts without it run no UI unit.

The probes run on the host under test with its own python3 (the lab hosts have no curl), one
SSH round trip for all of them; expectations come from the deployment manifest and the
inventory. Unit hardening, its own user and its keys: test_agents.py and
test_least_privilege.py, which cover every deployed instance, the UI server's included."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import group_hosts, hostvars

# Prints one JSON object: {"plain_http": status, "untrusted": status, "openapi": status,
# "paths": [...], "signed_out": status, "peer_cn": CN, "peer_sans": [...]}; a status is the HTTP
# status code, or "000 <error>" when the connection or the TLS handshake failed.
_PROBE = r"""
import http.client, json, socket, ssl, sys
address, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def get(path, ctx=None, scheme="https"):
    try:
        if scheme == "https":
            conn = http.client.HTTPSConnection(address, port, timeout=10, context=ctx)
        else:
            conn = http.client.HTTPConnection(address, port, timeout=10)
        conn.request("GET", path, headers={"Accept": "application/json"})
        reply = conn.getresponse()
        body = reply.read(1 << 20)
        peer = conn.sock.getpeercert() if scheme == "https" else None
        return str(reply.status), body, peer
    except (OSError, http.client.HTTPException) as err:
        return "000 " + type(err).__name__, b"", None

out = {}
out["plain_http"] = get("/api/v1/openapi.json", scheme="http")[0]
out["untrusted"] = get("/api/v1/openapi.json", ssl.create_default_context())[0]
lab = ssl.create_default_context(cafile=ca)  # hostname checked against the address (IP SAN)
status, body, peer = get("/api/v1/openapi.json", lab)
out["openapi"] = status
out["paths"] = sorted(json.loads(body).get("paths", {})) if status == "200" else []
out["peer_cn"] = dict(x[0] for x in peer["subject"]).get("commonName") if peer else None
out["peer_sans"] = [v for _, v in peer.get("subjectAltName", ())] if peer else []
out["signed_out"] = get("/api/v1/edges", lab)[0]
out["signed_out_me"] = get("/api/v1/me", lab)[0]
print(json.dumps(out))
"""

CA = "/etc/edgeferry/pki/ca.crt"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def ui_agent(manifest) -> dict | None:
    """The manifest's UI server instance on this host (None: not deployed here)."""
    return next((a for a in manifest["agents"] if a.get("protocol") == "https"), None)


@pytest.fixture(scope="module")
def probed(host, ui_agent) -> dict:
    if ui_agent is None:
        return {}
    args = " ".join(_quote(a) for a in (ui_agent["address"], str(ui_agent["port"]), CA))
    return json.loads(host.check_output(f"python3 -c {_quote(_PROBE)} {args}"))


def test_the_ui_server_runs_on_the_control_hosts_only(host, inventory, name, manifest, ui_agent):
    placed_here = "ui" in manifest["placed"] and "ui" not in manifest["not_deployed"]
    if name in group_hosts(inventory, "control"):
        assert ui_agent is not None and placed_here, "no UI server on the control host"
        assert (ui_agent["name"], ui_agent["module"], ui_agent["user"]) == (
            "ui", "agents.ui", "ef-ui")
        assert ui_agent["address"] == hostvars(inventory, name)["edgeferry_address"]
        assert host.service("edgeferry-ui.service").is_running
    else:
        assert ui_agent is None and not placed_here
        assert not host.file("/etc/systemd/system/edgeferry-ui.service").exists


def test_the_ui_answers_over_https_with_a_lab_ca_certificate(name, ui_agent, probed):
    if ui_agent is None:
        return
    # verified against the lab CA, the host's address matched by the certificate's IP SAN
    assert probed["openapi"] == "200", probed
    assert probed["peer_cn"] == f"ui.{name}", probed
    assert ui_agent["address"] in probed["peer_sans"] and "ui" in probed["peer_sans"], probed
    # the same request without the lab CA (the system trust store) fails the handshake: the
    # lab CA is what makes the certificate trusted
    assert probed["untrusted"].startswith("000"), probed


def test_the_ui_refuses_plain_http(ui_agent, probed):
    if ui_agent is None:
        return
    # a TLS-only listener: the plain request gets no HTTP answer (the connection fails) or a 400
    assert probed["plain_http"].startswith("000") or probed["plain_http"] == "400", probed


def test_the_openapi_document_lists_only_versioned_api_paths(ui_agent, probed):
    if ui_agent is None:
        return
    paths = probed["paths"]
    assert "/api/v1/edges" in paths and "/api/v1/migrations" in paths, paths
    assert [p for p in paths if not p.startswith("/api/v1/")] == [], paths


def test_a_signed_out_request_to_a_protected_route_is_refused(ui_agent, probed):
    if ui_agent is None:
        return
    assert probed["signed_out"] in {"401", "403"}, probed
    assert probed["signed_out_me"] in {"401", "403"}, probed
