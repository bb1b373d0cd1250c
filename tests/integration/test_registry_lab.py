"""Issue 12, item 5 on the deployed lab: "every edge shares one registry account that can push
and delete any tag". Real HTTPS requests from the controller to the lab registry's published
endpoint (nginx with the lab CA certificate), with the per-host credentials the controller
generated for edge1 and edge2.

Needs root and Docker; runs on the shared deployed lab (`deployed_lab`,
tests/integration/conftest.py, with edges named edge1 and edge2).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import ssl
import time
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from edgeferry.deploy.runner import run_playbook
from edgeferry.hosts import connection_factory, hosts_from_inventory, run

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.lab, pytest.mark.timeout(3600)]
EMPTY = "sha256:" + hashlib.sha256(b"").hexdigest()


@dataclass
class LabRegistry:
    host: str
    port: int
    ctx: ssl.SSLContext
    passwords: dict[str, str]
    state: Path | None = None

    def ask(self, method: str, path: str, user: str | None = None) -> tuple[int, str]:
        """(status, Location) of one HTTPS request to the published registry endpoint."""
        headers = {"Content-Length": "0"}
        if user is not None:
            token = b64encode(f"{user}:{self.passwords[user]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=20, context=self.ctx)
        try:
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return int(resp.status), resp.getheader("Location") or ""
        finally:
            conn.close()


@pytest.fixture(scope="module")
def lab_registry(deployed_lab: Path) -> LabRegistry:
    inv = deployed_lab
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())["all"]["children"]
    control = next(iter(hosts["control"]["hosts"].values()))
    state = REPO_ROOT / ".edgeferry" / "state" / inv.name
    ca = REPO_ROOT / ".edgeferry" / "pki" / inv.name / "ca" / "ca.crt"
    passwords = {"edgeferry": (state / "registry-password").read_text().strip()}
    for edge in hosts["edge"]["hosts"]:
        secret = state / "registry-passwords" / edge
        assert secret.stat().st_mode & 0o077 == 0, f"{secret} is readable by others"
        passwords[edge] = secret.read_text().strip()
    assert {"edge1", "edge2"} <= set(passwords)
    return LabRegistry(control["edgeferry_address"], 5000,
                      ssl.create_default_context(cafile=str(ca)), passwords, state)


def test_finding_shared_registry_account(lab_registry: LabRegistry) -> None:
    """edge2's own account cannot push under edge1/ nor delete; it pushes under edge2/ and
    pulls anything; anonymous requests get 401; each edge has a distinct password."""
    reg = lab_registry
    assert len({reg.passwords[h] for h in ("edgeferry", "edge1", "edge2")}) == 3
    # the attack of the finding: edge2 writes into edge1's repository, or deletes
    assert reg.ask("POST", "/v2/edge1/nms-migrated/blobs/uploads/", "edge2")[0] == 403
    assert reg.ask("PUT", "/v2/edge1/nms-migrated/manifests/forged", "edge2")[0] == 403
    assert reg.ask("POST", "/v2/edgeferry/nms/blobs/uploads/", "edge2")[0] == 403
    assert reg.ask("DELETE", f"/v2/edge1/nms-migrated/manifests/{EMPTY}", "edge2")[0] == 403
    assert reg.ask("DELETE", f"/v2/edge2/nms-migrated/blobs/{EMPTY}", "edge2")[0] == 403
    # edge1's upload session cannot be continued by edge2
    status, location = reg.ask("POST", "/v2/edge1/registry-lab-test/blobs/uploads/", "edge1")
    assert status == 202
    path = location.split(f"{reg.host}:{reg.port}", 1)[-1]
    assert reg.ask("PUT", f"{path}&digest={EMPTY}", "edge2")[0] == 403
    assert reg.ask("PUT", f"{path}&digest={EMPTY}", "edge1")[0] == 201
    # what edge2 still may do
    status, location = reg.ask("POST", "/v2/edge2/registry-lab-test/blobs/uploads/", "edge2")
    assert status == 202
    path = location.split(f"{reg.host}:{reg.port}", 1)[-1]
    assert reg.ask("PUT", f"{path}&digest={EMPTY}", "edge2")[0] == 201
    assert reg.ask("HEAD", f"/v2/edge1/registry-lab-test/blobs/{EMPTY}", "edge2")[0] == 200
    assert reg.ask("GET", "/v2/_catalog", "edge2")[0] == 200
    # no credentials, wrong password
    assert reg.ask("GET", "/v2/_catalog")[0] == 401
    assert reg.ask("POST", "/v2/edge2/x/blobs/uploads/")[0] == 401
    wrong = LabRegistry(reg.host, reg.port, reg.ctx, {"edge2": "not-" + reg.passwords["edge2"]})
    assert wrong.ask("POST", "/v2/edge2/x/blobs/uploads/", "edge2")[0] == 401


def test_registry_password_older_than_max_age_is_rotated_and_the_old_one_refused(
        deployed_lab: Path, lab_registry: LabRegistry) -> None:
    """edge1's generated password, made older than edgeferry_registry_password_max_age_days
    (30), is replaced by a deploy of the registry and the agents: the old password gets 401,
    the new one is in the htpasswd, edge1's node agent password file and Docker login; edge2's
    younger password is left alone."""
    reg, state = lab_registry, lab_registry.state
    assert state is not None
    old_file = state / "registry-passwords" / "edge1"
    old, edge2_before = old_file.read_text().strip(), reg.passwords["edge2"]
    assert reg.ask("GET", "/v2/_catalog", "edge1")[0] == 200
    factory = connection_factory(hosts_from_inventory(deployed_lab))
    main_pid = ["systemctl", "show", "-p", "MainPID", "--value", "edgeferry-node.service"]
    try:
        pid_before = run(factory("edge1"), main_pid).strip()
    finally:
        factory.close_all()  # type: ignore[attr-defined]
    month_ago = time.time() - 31 * 86400
    os.utime(old_file, (month_ago, month_ago))
    result = run_playbook("site.yml", deployed_lab, tags=["registry", "agents"])
    assert result.ok, result.failures
    new = old_file.read_text().strip()
    assert new != old and len(new) == 32
    assert old_file.stat().st_mode & 0o777 == 0o600
    assert old_file.stat().st_mtime > month_ago + 30 * 86400
    assert (state / "registry-passwords" / "edge2").read_text().strip() == edge2_before
    stale = LabRegistry(reg.host, reg.port, reg.ctx, {"edge1": old})
    fresh = LabRegistry(reg.host, reg.port, reg.ctx, {"edge1": new})
    assert stale.ask("GET", "/v2/_catalog", "edge1")[0] == 401
    assert stale.ask("POST", "/v2/edge1/rotated/blobs/uploads/", "edge1")[0] == 401
    assert fresh.ask("GET", "/v2/_catalog", "edge1")[0] == 200
    assert fresh.ask("POST", "/v2/edge1/rotated/blobs/uploads/", "edge1")[0] == 202
    assert reg.ask("GET", "/v2/_catalog", "edge2")[0] == 200
    # edge1 itself holds the new password: the node agent's file and root's Docker login
    factory = connection_factory(hosts_from_inventory(deployed_lab))
    try:
        conn = factory("edge1")
        assert run(conn, ["cat", "/etc/edgeferry/registry-password"]).strip() == new
        # the node agent reads its password file at start: it was restarted
        assert run(conn, main_pid).strip() not in {pid_before, "0"}
        auths = json.loads(run(conn, ["cat", "/root/.docker/config.json"]))["auths"]
        login = base64.b64decode(auths[f"{reg.host}:{reg.port}"]["auth"]).decode()
        assert login == f"edge1:{new}"
    finally:
        factory.close_all()  # type: ignore[attr-defined]
    reg.passwords["edge1"] = new
