"""TCFDL (seed 003) on the hosts, where the inventory enables it (edgeferry_tcfdl_enabled):
each cluster's nats-server speaks TLS only (a plain client is refused) and admits no anonymous
client (a TLS client without a certificate is refused; a mapped lab certificate is admitted),
the TCFDL agents are placed as the inventory says, active and hardened, and the TEE proxy's
key is readable by the proxy's user alone. On a host without TCFDL nothing of it runs. Hosts are
selected from the inventory (`inventory_hosts`), never skipped.

The expected placement is derived here from the inventory, independently of the role: a host's
cluster is its edgeferry_tcfdl_cluster (else "a" for the control host, "b" for an edge); a
cluster's master host is its first host, control first, then the edges in inventory order.
"""

from __future__ import annotations

import shlex

import pytest

from tests.infra.conftest import group_hosts, hostvars

NATS_PORT_DEFAULT = 4222
TCFDL_AGENTS = ("tcfdl-manager", "tcfdl-master", "tcfdl-proxy", "tcfdl-worker")


def _ordered_hosts(inventory: dict) -> list[str]:
    control = group_hosts(inventory, "control")
    edges = [h for h in inventory.get("edge", {}).get("hosts", []) if h not in control]
    return control + edges


def _enabled(inventory: dict, host: str) -> bool:
    return bool(hostvars(inventory, host).get("edgeferry_tcfdl_enabled", False))


def tcfdl_hosts(inventory: dict) -> set[str]:
    """Hosts on which the inventory enables TCFDL."""
    return {h for h in _ordered_hosts(inventory) if _enabled(inventory, h)}


def other_hosts(inventory: dict) -> set[str]:
    """Hosts without TCFDL."""
    return set(_ordered_hosts(inventory)) - tcfdl_hosts(inventory)


def cluster_of(inventory: dict, host: str) -> str:
    default = "a" if host in group_hosts(inventory, "control") else "b"
    return str(hostvars(inventory, host).get("edgeferry_tcfdl_cluster", default))


def master_hosts(inventory: dict) -> set[str]:
    """The first host of each cluster (control first, then the edges in order)."""
    first: dict[str, str] = {}
    for host in _ordered_hosts(inventory):
        if _enabled(inventory, host):
            first.setdefault(cluster_of(inventory, host), host)
    return set(first.values())


def expected_agents(inventory: dict, host: str) -> set[str]:
    out = {"tcfdl-worker"}
    if host in master_hosts(inventory):
        out |= {"tcfdl-master", "tcfdl-proxy"}
    if host in group_hosts(inventory, "control"):
        out.add("tcfdl-manager")
    return out


# A NATS client on the host. "plain": read the server's INFO, send CONNECT + PING without TLS.
# "tls": upgrade to TLS after INFO (with a client certificate when given), then CONNECT + PING.
# Prints "pong" when the server answered PONG, else "refused: <what happened>".
_NATS_PROBE = r"""
import socket, ssl, sys
mode, host, port, ca = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
cert = sys.argv[5] if len(sys.argv) > 6 else None
key = sys.argv[6] if len(sys.argv) > 6 else None
try:
    raw = socket.create_connection((host, port), timeout=10)
    f = raw.makefile("rb")
    info = f.readline()
    if not info.startswith(b"INFO "):
        print("refused: no INFO"); sys.exit(0)
    conn = raw
    if mode == "tls":
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
        if cert:
            ctx.load_cert_chain(cert, key)
        conn = ctx.wrap_socket(raw)
    conn.sendall(b'CONNECT {"verbose":false,"pedantic":false,"tls_required":'
                 + (b"true" if mode == "tls" else b"false") + b'}\r\nPING\r\n')
    data = b""
    while b"\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    first = data.split(b"\r\n")[0].decode(errors="replace")
    print("pong" if first == "PONG" else f"refused: {first or 'closed'}")
except (ssl.SSLError, OSError) as err:
    print(f"refused: {type(err).__name__}: {err}")
"""


def nats_probe(host, mode: str, address: str, port: int, ca: str, cert: str = "",
               key: str = "") -> str:
    args = " ".join(shlex.quote(a) for a in (mode, address, str(port), ca, cert, key) if a)
    with host.sudo():
        return host.check_output(f"python3 -c {shlex.quote(_NATS_PROBE)} {args}").strip()


def _nats_port(inventory: dict, name: str) -> int:
    return int(hostvars(inventory, name).get("edgeferry_tcfdl_nats_port", NATS_PORT_DEFAULT))


@pytest.mark.inventory_hosts(select=tcfdl_hosts)
def test_tcfdl_agents_are_placed_as_the_inventory_says(inventory, name, manifest):
    deployed = {a["name"] for a in manifest["agents"]} & set(TCFDL_AGENTS)
    assert deployed == expected_agents(inventory, name)


@pytest.mark.inventory_hosts(select=tcfdl_hosts)
def test_tcfdl_agents_are_active_and_hardened(host, manifest):
    for agent in (a for a in manifest["agents"] if a["name"] in TCFDL_AGENTS):
        unit = agent["unit"]
        assert host.service(unit).is_running, f"{unit} is not running"
        props = host.check_output(
            f"systemctl show {unit} -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome "
            "-p PrivateTmp -p CapabilityBoundingSet -p UMask")
        values = dict(line.split("=", 1) for line in props.splitlines())
        assert values["User"] == f"ef-{agent['name']}", values
        assert values["NoNewPrivileges"] == "yes" and values["ProtectSystem"] == "strict"
        assert values["ProtectHome"] == "yes" and values["PrivateTmp"] == "yes"
        assert values["CapabilityBoundingSet"] == "", values  # no capability at all
        assert values["UMask"] == "0077", values


@pytest.mark.inventory_hosts(select=master_hosts)
def test_tee_proxy_key_is_readable_by_the_proxy_alone(host, manifest):
    agents = {a["name"]: a for a in manifest["agents"]}
    proxy = agents["tcfdl-proxy"]
    with host.sudo():
        f = host.file(proxy["key"])
        assert (f.mode, f.user) == (0o600, proxy["user"])
        for other in ("tcfdl-master", "tcfdl-worker"):
            rc = host.run(f"runuser -u {shlex.quote(agents[other]['user'])} -- "
                          f"test -r {shlex.quote(proxy['key'])}").rc
            assert rc != 0, f"{agents[other]['user']} can read the proxy's key"
        assert host.run(f"runuser -u {shlex.quote(proxy['user'])} -- "
                        f"test -r {shlex.quote(proxy['key'])}").rc == 0


@pytest.mark.inventory_hosts(select=master_hosts)
def test_nats_server_runs_as_its_own_user_hardened(host):
    assert host.service("tcfdl-nats.service").is_running
    props = host.check_output("systemctl show tcfdl-nats.service -p User -p NoNewPrivileges "
                              "-p ProtectSystem -p CapabilityBoundingSet")
    values = dict(line.split("=", 1) for line in props.splitlines())
    assert values == {"User": "ef-tcfdl-nats", "NoNewPrivileges": "yes",
                      "ProtectSystem": "strict", "CapabilityBoundingSet": ""}, values
    with host.sudo():
        key = host.file("/etc/edgeferry/pki/tcfdl-nats.key")
        assert (key.mode, key.user) == (0o600, "ef-tcfdl-nats")


@pytest.mark.inventory_hosts(select=master_hosts)
def test_nats_server_refuses_plain_and_anonymous_clients(host, inventory, name, manifest):
    address = hostvars(inventory, name)["edgeferry_address"]
    port = _nats_port(inventory, name)
    assert host.socket(f"tcp://{address}:{port}").is_listening
    ca = manifest["ca"]
    plain = nats_probe(host, "plain", address, port, ca)
    assert plain.startswith("refused"), f"a plain NATS client was admitted: {plain}"
    anonymous = nats_probe(host, "tls", address, port, ca)
    assert anonymous.startswith("refused"), f"a client without certificate: {anonymous}"
    # the host's own lab certificate is valid but maps to no NATS user
    unmapped = nats_probe(host, "tls", address, port, ca, "/etc/edgeferry/pki/host.crt",
                          "/etc/edgeferry/pki/host.key")
    assert unmapped.startswith("refused"), f"an unmapped certificate: {unmapped}"
    # positive control: the worker's certificate is a user of this cluster
    worker = next(a for a in manifest["agents"] if a["name"] == "tcfdl-worker")
    assert nats_probe(host, "tls", address, port, ca, worker["cert"], worker["key"]) == "pong"


@pytest.mark.inventory_hosts(select=other_hosts)
def test_hosts_without_tcfdl_run_none_of_it(host, manifest):
    assert not {a["name"] for a in manifest["agents"]} & set(TCFDL_AGENTS)
    assert not host.service("tcfdl-nats.service").is_running
