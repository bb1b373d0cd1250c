"""Data-audit policies (seed 002, Tables 1-2) that a researcher states, with documented defaults.

Edges: an edge's attributes (Table 2: eDAl ... eHRgpu) come from the inventory host variable
``edgeferry_audit_edge_attributes`` (an emulated lab renders it from the lab file's ``audit:``
entry of each host; a hardware inventory sets it in hosts.yml, host_vars/ or group_vars/).
Every element an edge does not state takes the default below, so a lab of any size passes the
default container policy out of the box:

=======  ==================  ============================================================
element  default             note
=======  ==================  ============================================================
eDAl     jp                  country of placement
eDAo     caA                 managing organisation
eHRh     deA                 manufacturer
eHRt     docker              the lab's virtualisation tool
eHRc     2.6                 GHz (x86 and jetson class alike)
eHRm     3 / 1.5             GB: x86 class 3, jetson class 1.5 (the edge's profile class)
eHRgpu   no                  the lab hosts have no GPU
eHRac    ``-``               no AI accessories
eHRaf    ``-``               no AI frameworks
=======  ==================  ============================================================

``*`` states "not declared" (a requirement on it then fails).

Containers: the migration scenarios' workload may carry ``container_policy`` (Table 1:
cDAl ... cHRaf) or ``container_policy_file`` (YAML, relative to the experiment file: either that
mapping, or a policy document as `edgeferry audit` reads it with exactly one container);
without either, :data:`DEFAULT_CONTAINER_POLICY` applies.

Validation is the audit agent's own (:func:`agents.audit.domain.parse_edge`,
:func:`agents.audit.domain.parse_container_policy`, :func:`agents.audit.tables.load_policy_file`),
so a bad element is refused with the message `edgeferry audit` gives. Pure: no gRPC, Docker or
Ansible; only the inventory and policy files are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from agents.audit.domain import (
    EDGE_ELEMENTS,
    PolicyError,
    parse_container_policy,
    parse_edge,
)
from agents.audit.tables import load_policy_file

#: The inventory host variable that carries an edge's Table 2 attributes.
INVENTORY_VARIABLE = "edgeferry_audit_edge_attributes"
#: An edge host's seed-002 region (lab file ``region:``); "lab" when not stated.
REGION_VARIABLE = "edgeferry_audit_region"
DEFAULT_REGION = "lab"

#: The container policy of the migration scenarios when the experiment states none. No CPU
#: ceiling (cHRcu "*"): the lab hosts share the machine's cores with each other (and with any
#: other lab), so their measured CPU utilisation says little about the edge itself.
DEFAULT_CONTAINER_POLICY: dict[str, str] = {
    "cDAl": "jp,us,fr", "cDAo": "-caB", "cHRh": "*", "cHRt": "docker", "cHRcu": "*",
    "cHRmu": "90", "cHRc": "1.6", "cHRm": "1", "cHRgpu": "*", "cHRac": "*", "cHRaf": "*"}

#: Every edge's attributes when it states nothing (Table 2), before its class's entries.
DEFAULT_EDGE_ATTRIBUTES: dict[str, str] = {
    "eDAl": "jp", "eDAo": "caA", "eHRh": "deA", "eHRt": "docker", "eHRac": "-", "eHRaf": "-",
    "eHRc": "2.6", "eHRm": "3", "eHRgpu": "no"}

#: Where the host class matters (memory, CPU): x86 edges as Table 5's Edge1, jetson-class
#: boards as its Edge2/Edge3 (1.5 GB).
CLASS_EDGE_ATTRIBUTES: dict[str, dict[str, str]] = {
    "x86": {"eHRc": "2.6", "eHRm": "3"},
    "jetson": {"eHRc": "2.6", "eHRm": "1.5"},
}

_DOCUMENT_KEYS = frozenset({"edges", "containers", "monitor", "published"})


def check_edge_attributes(name: str, stated: object) -> dict[str, str]:
    """Validate what an edge states (keys and values, as the audit agent does); return it as
    canonical text. Raises PolicyError ("eDAl: ...")."""
    if not isinstance(stated, Mapping):
        raise PolicyError(f"expected a mapping of Table 2 elements, got {type(stated).__name__}")
    return parse_edge(name, stated).canonical()


def edge_attributes(name: str, host_class: str | None,
                    stated: Mapping[str, object] | None = None) -> dict[str, str]:
    """The attributes in force at an edge: the defaults, its class's, then what it states.
    Every Table 2 element, in Table 2 order, as canonical text; ``*`` where it is not declared
    (so the result, stated again, means the same). Raises PolicyError."""
    merged: dict[str, object] = {**DEFAULT_EDGE_ATTRIBUTES,
                                 **CLASS_EDGE_ATTRIBUTES.get(host_class or "", {})}
    if stated is not None:
        check_edge_attributes(name, stated)
        merged.update(stated)
    canonical = parse_edge(name, merged).canonical()
    return {element: canonical.get(element, "*") for element in EDGE_ELEMENTS}


def check_container_policy(requirements: object) -> dict[str, str]:
    """Validate a container policy (Table 1) as the audit agent does; return every element's
    canonical text. Raises PolicyError ("cDAl: ...")."""
    if not isinstance(requirements, Mapping):
        raise PolicyError(
            f"expected a mapping of Table 1 elements, got {type(requirements).__name__}")
    return parse_container_policy("policy", requirements).canonical()


def load_container_policy_file(path: Path) -> dict[str, str]:
    """A container policy from a YAML file: a mapping of Table 1 elements, or a policy document
    (`edgeferry audit check` format) declaring exactly one container. Raises PolicyError naming
    the file."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as err:
        raise PolicyError(f"cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise PolicyError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if isinstance(data, Mapping) and data and set(data) <= _DOCUMENT_KEYS:
        doc = load_policy_file(path)  # the CLI's own reader and messages
        if len(doc.containers) != 1:
            raise PolicyError(f"{path}: a policy document used as a container policy must "
                              f"declare exactly one container (it declares "
                              f"{len(doc.containers)})")
        return next(iter(doc.containers.values())).canonical()
    try:
        return check_container_policy(data)
    except PolicyError as err:
        raise PolicyError(f"{path}: {err}") from None


# ------------------------------------------------------------------------------ inventories
def _yaml_files(base: Path) -> list[Path]:
    """``base.yml`` / ``base.yaml`` and ``base/*.yml`` (Ansible's variable file layouts)."""
    files = [p for p in (base.with_name(base.name + ".yml"), base.with_name(base.name + ".yaml"))
             if p.is_file()]
    if base.is_dir():
        files += sorted(p for p in base.iterdir() if p.suffix in (".yml", ".yaml"))
    return files


def _vars_of(base: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for f in _yaml_files(base):
        data = yaml.safe_load(f.read_text()) or {}
        if isinstance(data, Mapping):
            merged.update(data)
    return merged


def _walk(group: str, node: Mapping[str, Any], hvars: dict[str, dict[str, Any]],
          groups: dict[str, list[str]]) -> None:
    for host, own in (node.get("hosts") or {}).items():
        hvars.setdefault(host, {}).update(own or {})
        groups.setdefault(host, []).append(group)
    for child, sub in (node.get("children") or {}).items():
        _walk(child, sub or {}, hvars, groups)


def inventory_host_vars(inventory: Path, host: str) -> dict[str, Any]:
    """A host's variables in an inventory of the project's shape, in Ansible's order of
    precedence: group_vars/all, group_vars/<group>, hosts.yml, host_vars/<host>."""
    doc = yaml.safe_load((inventory / "hosts.yml").read_text()) or {}
    hvars: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    _walk("all", doc.get("all") or {}, hvars, groups)
    out = _vars_of(inventory / "group_vars" / "all")
    for group in dict.fromkeys(groups.get(host, [])):
        if group != "all":
            out.update(_vars_of(inventory / "group_vars" / group))
    out.update(hvars.get(host, {}))
    out.update(_vars_of(inventory / "host_vars" / host))
    return out


def inventory_edge_attributes(inventory: Path, hosts: Iterable[str]) -> dict[str, dict[str, str]]:
    """Each edge's attributes in force: its ``edgeferry_audit_edge_attributes`` over the
    defaults of its class (``edgeferry_profile``). Raises PolicyError naming the host."""
    out: dict[str, dict[str, str]] = {}
    for host in hosts:
        hv = inventory_host_vars(inventory, host)
        stated = hv.get(INVENTORY_VARIABLE)
        try:
            if stated is not None and not isinstance(stated, Mapping):
                raise PolicyError("expected a mapping of Table 2 elements")
            out[host] = edge_attributes(host, hv.get("edgeferry_profile"), stated)
        except PolicyError as err:
            raise PolicyError(f"inventory {inventory}: host {host}: {INVENTORY_VARIABLE}: "
                              f"{err}") from None
    return out


def inventory_edge_places(inventory: Path, hosts: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Each edge's (region, address) for the audit registry: ``edgeferry_audit_region``
    (default "lab") and ``edgeferry_address`` (where the audit monitor finds its node agent)."""
    out: dict[str, tuple[str, str]] = {}
    for host in hosts:
        hv = inventory_host_vars(inventory, host)
        out[host] = (str(hv.get(REGION_VARIABLE) or DEFAULT_REGION),
                     str(hv.get("edgeferry_address") or ""))
    return out
