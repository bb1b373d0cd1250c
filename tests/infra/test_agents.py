"""edgeferry agents: installed, each unit active and hardened, listening on its declared address
and port, refusing clients without a lab certificate; keys 0600 and owned by the agent's own user
(tests/infra/test_least_privilege.py checks who can read what)."""

from __future__ import annotations

import pytest

from tests.infra.conftest import hostvars

# A TLS client run on the host: "ok" when the handshake completes and the server then talks
# (or closes) normally, "refused: <reason>" when the server rejects the client.
_TLS_PROBE = r"""
import socket, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cert = sys.argv[4] if len(sys.argv) > 5 else None
key = sys.argv[5] if len(sys.argv) > 5 else None
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["h2"])
if cert:
    ctx.load_cert_chain(cert, key)
try:
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
            data = tls.recv(64)
    print("ok" if data else "refused: closed")
except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as err:
    print("refused:", err)
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def tls_probe(host, address: str, port: int, ca: str, cert: str = "", key: str = "") -> str:
    args = " ".join(_quote(a) for a in (address, str(port), ca, cert, key) if a)
    with host.sudo():
        return host.check_output(f"python3 -c {_quote(_TLS_PROBE)} {args}").strip()


@pytest.fixture(scope="module")
def agents(manifest) -> list[dict]:
    return manifest["agents"]


@pytest.fixture(scope="module")
def grpc_agents(agents) -> list[dict]:
    """The gRPC agents (mTLS, health); the UI server speaks HTTPS to browsers (test_ui.py)."""
    return [a for a in agents if a.get("protocol", "grpc") == "grpc"]


def test_manifest_covers_the_placement(manifest, agents):
    deployed = {a["name"] for a in agents}
    assert deployed | set(manifest["not_deployed"]) == set(manifest["placed"])
    assert not deployed & set(manifest["not_deployed"])


def test_agents_run_from_the_virtualenv(host, manifest, agents):
    venv = manifest["venv"]
    for agent in agents:
        module_dir = agent["module"].replace(".", "/")
        out = host.check_output(
            f"{venv}/bin/python -c 'import {agent['module']}.__main__ as m; print(m.__file__)'")
        assert f"site-packages/{module_dir}/__main__.py" in out


def test_each_agent_unit_is_active_and_hardened(host, agents):
    for agent in agents:
        unit = host.service(agent["unit"])
        assert unit.is_running, f"{agent['unit']} is not running"
        assert unit.is_enabled, f"{agent['unit']} is not enabled"
        props = host.check_output(f"systemctl show {agent['unit']} -p User -p NoNewPrivileges"
                                  " -p ProtectSystem -p Restart")
        values = dict(line.split("=", 1) for line in props.splitlines())
        assert values == {"User": agent["user"], "NoNewPrivileges": "yes",
                          "ProtectSystem": "strict", "Restart": "on-failure"}, values


def test_each_agent_listens_on_its_declared_address(host, inventory, name, agents):
    address = hostvars(inventory, name)["edgeferry_address"]
    for agent in agents:
        assert agent["address"] == address
        assert host.socket(f"tcp://{address}:{agent['port']}").is_listening, agent["name"]


def test_agents_refuse_clients_without_a_lab_certificate(host, manifest, grpc_agents):
    for agent in grpc_agents:
        verdict = tls_probe(host, agent["address"], agent["port"], manifest["ca"])
        assert verdict.startswith("refused"), f"{agent['name']} accepted a client without a cert"


def test_agents_accept_clients_with_a_lab_certificate(host, manifest, grpc_agents):
    # Positive control for the refusal test: the same probe with the host's lab certificate.
    for agent in grpc_agents:
        verdict = tls_probe(host, agent["address"], agent["port"], manifest["ca"],
                            "/etc/edgeferry/pki/host.crt", "/etc/edgeferry/pki/host.key")
        assert verdict == "ok", f"{agent['name']}: {verdict}"


def test_key_files_are_private_to_their_agent_user(host, agents):
    keys = [("/etc/edgeferry/pki/host.key", "root")] + [(a["key"], a["user"]) for a in agents]
    with host.sudo():
        for path, user in keys:
            f = host.file(path)
            assert f.exists, path
            assert f.mode == 0o600, f"{path} has mode {oct(f.mode)}"
            assert f.user == user, f"{path} is owned by {f.user}, not {user}"


# gRPC health over mTLS with the host's lab certificate, run by the agents' own virtualenv
# (grpcio and grpc_health are installed there): prints the serving status name.
_HEALTH_PROBE = r"""
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
target, ca, cert, key = sys.argv[1:5]
creds = grpc.ssl_channel_credentials(open(ca, "rb").read(), open(key, "rb").read(),
                                     open(cert, "rb").read())
with grpc.secure_channel(target, creds) as channel:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
"""


def test_each_agent_reports_serving_health_over_mtls(host, manifest, grpc_agents):
    """Every deployed agent (the SSO blockcache / composer instances included) answers the
    gRPC health check SERVING to a lab certificate; the refusal test above shows that the
    same port refuses a client without one."""
    venv = manifest["venv"]
    for agent in grpc_agents:
        args = " ".join(_quote(a) for a in (
            f"{agent['address']}:{agent['port']}", manifest["ca"],
            "/etc/edgeferry/pki/host.crt", "/etc/edgeferry/pki/host.key"))
        with host.sudo():
            out = host.check_output(f"{venv}/bin/python -c {_quote(_HEALTH_PROBE)} {args}")
        assert out.strip() == "SERVING", f"{agent['name']}: {out}"


def test_the_deploy_leaves_no_background_job_records(host):
    """The byte-code compile runs as an async task; its job record is removed once waited for
    (a record per deploy would otherwise pile up in root's ~/.ansible_async)."""
    with host.sudo():
        left = host.run("find /root/.ansible_async -type f 2>/dev/null").stdout.split()
    assert left == []
