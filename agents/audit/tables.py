"""Policy documents: the YAML people write (and the shipped seed-002 tables) -> domain objects.

Schema (unknown keys are errors)::

    edges:       [{name, region, address, attributes: {eDAl: .., ...}}]
    containers:  [{name, location, requirements: {cDAl: .., ...}}]
    monitor:     [{edge, cpu_percent, memory_percent, alive, measured_at}]   # optional
    published:   {...}                                                         # optional, ignored

Pure: parses already-loaded data; ``load_policy_file`` is the only function that reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from agents.audit.domain import (
    ContainerPolicy,
    EdgeAttributes,
    EdgeState,
    PolicyError,
    parse_container_policy,
    parse_edge,
)

SEED002_RESOURCE = "data/seed002_verification.yaml"

_TOP_KEYS = frozenset({"edges", "containers", "monitor", "published"})
_EDGE_KEYS = frozenset({"name", "region", "address", "attributes"})
_CONTAINER_KEYS = frozenset({"name", "location", "requirements"})
_MONITOR_KEYS = frozenset({"edge", "cpu_percent", "memory_percent", "alive", "measured_at"})


@dataclass(frozen=True)
class PolicyDocument:
    """Everything a policy file declares, validated."""

    edges: dict[str, EdgeAttributes] = field(default_factory=dict)
    containers: dict[str, ContainerPolicy] = field(default_factory=dict)
    states: dict[str, EdgeState] = field(default_factory=dict)
    published: dict[str, Any] = field(default_factory=dict)


def _require_keys(obj: object, allowed: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise PolicyError(f"{where}: expected a mapping, got {type(obj).__name__}")
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(allowed))}")
    return obj


def _list(obj: object, where: str) -> list[Any]:
    if obj is None:
        return []
    if not isinstance(obj, list):
        raise PolicyError(f"{where}: expected a list")
    return obj


def _name(entry: Mapping[str, Any], where: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError(f"{where}: every entry needs a 'name'")
    return name


def parse_document(data: object, *, now: float = 0.0) -> PolicyDocument:
    """Validate a loaded policy document; raise PolicyError naming the entry at fault."""
    if data is None:
        data = {}
    top = _require_keys(data, _TOP_KEYS, "document")
    doc = PolicyDocument(published=dict(top.get("published") or {}))
    for i, raw in enumerate(_list(top.get("edges"), "edges")):
        entry = _require_keys(raw, _EDGE_KEYS, f"edges[{i}]")
        name = _name(entry, f"edges[{i}]")
        attrs = entry.get("attributes") or {}
        if not isinstance(attrs, Mapping):
            raise PolicyError(f"edge {name}: 'attributes' must be a mapping")
        if name in doc.edges:
            raise PolicyError(f"edge {name} is declared twice")
        try:
            doc.edges[name] = parse_edge(name, attrs, region=str(entry.get("region") or ""),
                                         address=str(entry.get("address") or ""))
        except PolicyError as err:
            raise PolicyError(f"edge {name}: {err}") from None
    for i, raw in enumerate(_list(top.get("containers"), "containers")):
        entry = _require_keys(raw, _CONTAINER_KEYS, f"containers[{i}]")
        name = _name(entry, f"containers[{i}]")
        reqs = entry.get("requirements") or {}
        if not isinstance(reqs, Mapping):
            raise PolicyError(f"container {name}: 'requirements' must be a mapping")
        if name in doc.containers:
            raise PolicyError(f"container {name} is declared twice")
        try:
            doc.containers[name] = parse_container_policy(
                name, reqs, location=str(entry.get("location") or ""))
        except PolicyError as err:
            raise PolicyError(f"container {name}: {err}") from None
    for i, raw in enumerate(_list(top.get("monitor"), "monitor")):
        entry = _require_keys(raw, _MONITOR_KEYS, f"monitor[{i}]")
        state = _state(entry, f"monitor[{i}]", now)
        edge = str(entry.get("edge", ""))
        targets = list(doc.edges) if edge == "*" else [edge]
        for name in targets:
            if name not in doc.edges:
                raise PolicyError(f"monitor[{i}]: edge {name!r} is not declared")
            doc.states[name] = state
    return doc


def _state(entry: Mapping[str, Any], where: str, now: float) -> EdgeState:
    try:
        cpu = float(entry["cpu_percent"])
        mem = float(entry["memory_percent"])
        alive = bool(entry.get("alive", True))
        at = float(entry.get("measured_at", now))
    except (KeyError, TypeError, ValueError) as err:
        raise PolicyError(f"{where}: needs numeric cpu_percent and memory_percent ({err})") \
            from None
    if not (0 <= cpu <= 100 and 0 <= mem <= 100):
        raise PolicyError(f"{where}: utilisation must be between 0 and 100 %")
    return EdgeState(cpu_percent=cpu, memory_percent=mem, alive=alive, measured_at=at)


def load_policy_file(path: str | Path, *, now: float = 0.0) -> PolicyDocument:
    """Read and validate a YAML policy document."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as err:
        raise PolicyError(f"cannot read {p}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PolicyError(f"{p} is not valid YAML: {str(err).splitlines()[0]}") from None
    try:
        return parse_document(data, now=now)
    except PolicyError as err:
        raise PolicyError(f"{p}: {err}") from None


def seed002_tables(*, now: float = 0.0) -> PolicyDocument:
    """Tables 5-6 of seed 002 (App1, Edge1..Edge8, the 40 %/30 % monitor snapshot)."""
    text = resources.files("agents.audit").joinpath(SEED002_RESOURCE).read_text("utf-8")
    return parse_document(yaml.safe_load(text), now=now)
