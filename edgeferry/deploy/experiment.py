"""The experiment runner's deploy step: run site.yml (idempotent) and say where the agents are.

`deploy_for_experiment(inventory, agents, log)` provisions the inventory through the one
ansible-runner wrapper (`run_playbook`), then returns `Endpoints`:

* ``agents``: catalog instance -> {host: "address:port"}, from the agent catalog and placement
  (``roles/edgeferry/defaults/main.yml``, the same data the edgeferry_agent role deploys from)
  and the inventory's hosts and groups. The spec-level name ``ledger`` is the validator.
* ``tls``: the lab CA and the controller's client certificate (CN ``controller``) that the pki
  role keeps under ``.edgeferry/pki/<inventory>/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from edgeferry import resources
from edgeferry.deploy.runner import inventory_name
from edgeferry.errors import ConfigError, OperationFailed
from edgeferry.experiments.scenario import Endpoints, TLSMaterial
from edgeferry.hosts import hosts_from_inventory
from edgeferry.workspace import workspace

#: Spec-level agent names that are not catalog instances.
ALIASES = {"ledger": "ledger-validator"}


def catalog_file() -> Path:
    """The agent catalog: the edgeferry role's defaults (shipped with the package)."""
    return resources.roles_dir() / "edgeferry" / "defaults" / "main.yml"


_VARIABLE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


def _catalog(path: Path | None = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The catalog and placement; a port given as ``"{{ variable }}"`` (the UI server's
    edgeferry_ui_port) takes that variable's default from the same file."""
    doc = yaml.safe_load((path or catalog_file()).read_text()) or {}
    catalog = dict(doc["edgeferry_agent_catalog"])
    for name, entry in catalog.items():
        found = _VARIABLE.match(str(entry.get("port", "")))
        if found and found.group(1) in doc:
            catalog[name] = {**entry, "port": doc[found.group(1)]}
    return catalog, doc["edgeferry_agent_placement"]


def agent_endpoints(inventory: Path, catalog: dict[str, Any],
                    placement: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """instance -> {host: "edgeferry_address:port"} for every placed instance."""
    hosts = hosts_from_inventory(inventory)
    addresses = _addresses(inventory)
    out: dict[str, dict[str, str]] = {}
    for group, instances in placement.items():
        members = [h for h, a in hosts.items() if group == "all" or group in a.groups]
        for instance in instances:
            port = int(catalog[instance]["port"])
            for host in members:
                out.setdefault(instance, {})[host] = f"{addresses[host]}:{port}"
    for alias, instance in ALIASES.items():
        if instance in out:
            out[alias] = dict(out[instance])
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def manifest_endpoints(inventory: Path, root: Path | None = None) -> dict[str, dict[str, str]]:
    """instance -> {host: "address:port"} from the deployment manifests the edgeferry_agent
    role left on the controller (hosts without one are left out)."""
    from edgeferry.deploy.manifest import load_manifest, manifest_path

    out: dict[str, dict[str, str]] = {}
    for host in sorted(hosts_from_inventory(inventory)):
        if not manifest_path(inventory, host, root).is_file():
            continue
        for name, agent in load_manifest(inventory, host, root).agents.items():
            out.setdefault(name, {})[host] = f"{agent.address}:{agent.port}"
    return out


def _addresses(inventory: Path) -> dict[str, str]:
    """Each host's edgeferry_address (where agents listen), else its ansible_host."""
    doc = yaml.safe_load((inventory / "hosts.yml").read_text()) or {}
    found: dict[str, str] = {}

    def walk(node: dict[str, Any]) -> None:
        for host, hvars in (node.get("hosts") or {}).items():
            hvars = hvars or {}
            addr = hvars.get("edgeferry_address") or hvars.get("ansible_host")
            if addr:
                found[host] = str(addr)
        for sub in (node.get("children") or {}).values():
            walk(sub or {})

    walk(doc.get("all") or {})
    for host, access in hosts_from_inventory(inventory).items():
        found.setdefault(host, access.address)
    return found


def controller_tls(inventory: Path, root: Path | None = None) -> TLSMaterial:
    """The controller's mTLS material the pki role issued for this inventory (under `root`,
    default: the workspace)."""
    base = (root or workspace()) / ".edgeferry" / "pki" / inventory_name(inventory)
    tls = TLSMaterial(ca_cert=base / "ca" / "ca.crt", cert=base / "controller" / "client.crt",
                      key=base / "controller" / "client.key")
    missing = [str(p) for p in (tls.ca_cert, tls.cert, tls.key) if not p.is_file()]
    if missing:
        raise OperationFailed(f"the controller's TLS material is missing ({', '.join(missing)}); "
                              "the pki role makes it: run `edgeferry deploy -i "
                              f"{inventory}`")
    return tls


def deploy_for_experiment(inventory: Path, agents: Iterable[str],
                          log: Callable[[str], None], *, force: bool = False) -> Endpoints:
    """Run playbooks/site.yml on ``inventory`` (skipped when every host's deploy stamp proves
    it unnecessary, edgeferry/deploy/stamp.py) and return where ``agents`` listen."""
    inventory = Path(inventory)
    catalog, _placement = _catalog()
    wanted = sorted(set(agents))
    unknown = [a for a in wanted if ALIASES.get(a, a) not in catalog]
    if unknown:
        raise ConfigError(f"agents {', '.join(unknown)} are not in the agent catalog "
                          f"({catalog_file()})")
    from edgeferry.deploy.stamp import deploy_site

    done = deploy_site(inventory, progress=log, force=force)
    result = done.result
    if result is not None and not result.ok:
        first = result.failures[0] if result.failures else f"status {result.status}"
        raise OperationFailed(f"deploy failed (rc={result.rc}): {first}; artifacts in "
                              f"{result.run_dir}")
    if result is not None:
        log(f"deploy ok: artifacts in {result.run_dir}")
    return deployed_endpoints(inventory, wanted)


def deployed_endpoints(inventory: Path, agents: Iterable[str]) -> Endpoints:
    """Where ``agents`` listen on an inventory deployed before (``--skip-deploy``)."""
    inventory = Path(inventory)
    catalog, placement = _catalog()
    wanted = sorted(set(agents))
    endpoints = agent_endpoints(inventory, catalog, placement)
    if any(a not in endpoints for a in wanted):
        # instances placed by a switch rather than the static placement (TCFDL's,
        # edgeferry_tcfdl_enabled): where the deployment manifests say they run
        for name, hosts in manifest_endpoints(inventory).items():
            endpoints.setdefault(name, hosts)
    not_placed = [a for a in wanted if a not in endpoints]
    if not_placed:
        raise OperationFailed(f"agents {', '.join(not_placed)} are not placed on any host of "
                              f"{inventory} (edgeferry_agent_placement)")
    return Endpoints(agents=endpoints, tls=controller_tls(inventory))
