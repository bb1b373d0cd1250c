"""testinfra suite, run through `edgeferry verify -i inventory/<lab>` or as
`pytest tests/infra --hosts=ansible://all --ansible-inventory=inventory/<lab>`.

Expectations come from the inventory (groups, edgeferry_address) and from the deployment
manifest /etc/edgeferry/agents.json that the edgeferry_agent role writes on each host.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY_PORT_DEFAULT = 5000


@cache
def inventory_data(inventory: str) -> dict:
    """The inventory as `ansible-inventory --list` sees it (hostvars included)."""
    out = subprocess.run(
        ["ansible-inventory", "-i", inventory, "--list"], check=True, capture_output=True,
        text=True, cwd=REPO_ROOT,
    ).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def inventory(request: pytest.FixtureRequest) -> dict:
    path = request.config.getoption("ansible_inventory")
    if not path:
        raise pytest.UsageError("pass --ansible-inventory=inventory/<lab> (edgeferry verify does)")
    return inventory_data(str(path))


def group_hosts(inventory: dict, group: str) -> list[str]:
    """Hosts of a group (including those of child groups)."""
    entry = inventory.get(group) or {}
    hosts = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts += group_hosts(inventory, child)
    return sorted(set(hosts))


def hostvars(inventory: dict, name: str) -> dict:
    return inventory.get("_meta", {}).get("hostvars", {}).get(name, {})


@pytest.fixture(scope="module")
def name(host) -> str:
    """The inventory name of the host under test."""
    return host.backend.get_hostname()


@pytest.fixture(scope="module")
def manifest(host) -> dict:
    f = host.file("/etc/edgeferry/agents.json")
    assert f.exists, "the deployment manifest /etc/edgeferry/agents.json is missing"
    return json.loads(f.content_string)


@pytest.fixture(scope="module")
def registry_endpoint(inventory: dict) -> str:
    control = group_hosts(inventory, "control")[0]
    address = hostvars(inventory, control)["edgeferry_address"]
    port = hostvars(inventory, control).get("edgeferry_registry_port", REGISTRY_PORT_DEFAULT)
    return f"{address}:{port}"
