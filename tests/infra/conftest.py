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


# -- host selection by what the inventory enables ----------------------------------------------
# A test marked ``@pytest.mark.inventory_hosts(select=fn)`` runs only on the hosts `select`
# (inventory -> set of host names) returns; on the others it is deselected, not skipped, so a lab
# without a feature (e.g. TCFDL) passes with those tests simply not collected for its hosts.
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "inventory_hosts(select): run only on the hosts that "
                            "select(inventory) names")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = config.getoption("ansible_inventory", None)
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("inventory_hosts")
        callspec = getattr(item, "callspec", None)
        host = callspec.params.get("_testinfra_host") if callspec is not None else None
        if marker is None or host is None or not path:
            keep.append(item)
            continue
        selected = marker.kwargs["select"](inventory_data(str(path)))
        (keep if host.backend.get_hostname() in selected else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
