"""Least privilege on a deployed emulated lab (marker `lab`): one Unix user per agent, each
reading only its own keys and secrets; a revoked certificate lands in the CRL on every host and
its holder gets a new one on the next deploy.

Needs root and Docker; runs on the shared deployed lab (`deployed_lab`,
tests/integration/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeferry.deploy.revocation import load_revocations, pki_dir
from edgeferry.deploy.runner import run_playbook
from edgeferry.hosts import connection_factory, hosts_from_inventory, run

REPO_ROOT = Path(__file__).resolve().parents[2]

EDGEFERRY = [sys.executable, "-m", "edgeferry.cli.main"]
pytestmark = [pytest.mark.lab, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def inventory(deployed_lab: Path) -> Path:
    return deployed_lab


@pytest.fixture(scope="module")
def connect(inventory: Path) -> Iterator[Callable[[str], Any]]:
    factory = connection_factory(hosts_from_inventory(inventory))
    yield factory
    factory.close_all()  # type: ignore[attr-defined]


def _manifest(conn: Any) -> dict[str, Any]:
    return json.loads(run(conn, ["cat", "/etc/edgeferry/agents.json"]))


def _as(conn: Any, user: str, argv: list[str]) -> tuple[int, str]:
    result = conn.run(" ".join(["runuser", "-u", user, "--", *argv]), hide=True, warn=True,
                      in_stream=False)
    return result.exited, (result.stdout + result.stderr).strip()


def test_finding_one_user_reads_every_key(inventory: Path, connect: Callable[[str], Any]):
    """Before: the one service user that ran every agent read every key on the host (TLS keys,
    host key, audit owner key, registry password). Now each agent's user reads its own files,
    and reading another agent's ends in "Permission denied"."""
    attempts = refused = 0
    for host in hosts_from_inventory(inventory):
        conn = connect(host)
        manifest = _manifest(conn)
        agents = manifest["agents"]
        users = {a["name"]: a["user"] for a in agents}
        assert len(set(users.values())) == len(agents) > 1, users
        owned = [(a["key"], a["user"]) for a in agents]
        owned += [(p, users[a]) for p, a in manifest["secrets"].items() if a in users]
        owned.append(("/etc/edgeferry/pki/host.key", "root"))
        for agent in agents:
            pid = run(conn, ["systemctl", "show", agent["unit"], "-p", "MainPID", "--value"])
            assert run(conn, ["ps", "-o", "user:32=", "-p", pid.strip()]).strip() == agent["user"]
            for path, owner in owned:
                rc, out = _as(conn, agent["user"], ["head", "-c", "1", path])
                if owner == agent["user"]:
                    assert rc == 0, f"{host}: {agent['user']} cannot read its own {path}: {out}"
                else:
                    attempts += 1
                    assert rc != 0 and "Permission denied" in out, \
                        f"{host}: {agent['user']} read {path}, owned by {owner}"
                    refused += 1
    assert attempts == refused > 0
    print(f"least privilege: {refused} cross-agent reads refused on "
          f"{len(hosts_from_inventory(inventory))} hosts")


def test_secrets_live_only_with_their_agent(inventory: Path, connect: Callable[[str], Any]):
    expected = {"/etc/edgeferry/audit-owner.key": "audit", "/etc/edgeferry/smf-owner.token": "smf",
                "/etc/edgeferry/registry-password": "node", "/etc/edgeferry/ui-owner.key": "ui"}
    seen = {}
    for host in hosts_from_inventory(inventory):
        manifest = _manifest(connect(host))
        for path, agent in manifest["secrets"].items():
            if path in expected:
                seen[path] = agent
                owner = run(connect(host), ["stat", "-c", "%U %a", path]).split()
                assert owner == ["ef-" + agent, "600"], (host, path, owner)
    assert seen == expected


def test_a_revoked_certificate_is_in_every_crl_and_replaced(inventory: Path,
                                                            connect: Callable[[str], Any]):
    hosts = hosts_from_inventory(inventory)
    edge = sorted(h for h, a in hosts.items() if "edge" in a.groups)[0]
    name = f"bare.{edge}"
    serial_of = ["openssl", "x509", "-noout", "-serial", "-in", "/etc/edgeferry/pki/bare.crt"]
    before = run(connect(edge), serial_of).strip()
    revoked = subprocess.run([*EDGEFERRY, "pki", "revoke", name, "-i", str(inventory)],
                             cwd=REPO_ROOT, capture_output=True, text=True)
    assert revoked.returncode == 0, revoked.stderr
    serial = next(r.serial_number for r in load_revocations(pki_dir(inventory))
                  if r.name == name)
    assert before.split("=")[1].lower().lstrip("0") == f"{serial:x}"
    result = run_playbook("site.yml", inventory, tags=["pki", "agents"])
    assert result.ok, result.failures
    for host in hosts:
        crl = run(connect(host), ["openssl", "crl", "-noout", "-text", "-in",
                                  "/etc/edgeferry/pki/crl.pem"])
        assert f"{serial:X}".lstrip("0") in crl.replace(" ", "").upper(), host
    after = run(connect(edge), serial_of).strip()
    assert after != before

