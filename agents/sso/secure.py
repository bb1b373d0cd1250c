"""The secure workflow net WFs = (WFnet, A, chi, R, Pi, xi) of seed 004, section 7.2.

* A: the nodes available for the composition; chi: what each node may touch (node ->
  resources: the services it may run and the file ids it may read; the paper's access levels
  reduced to allowed / not allowed); R: the resources available (eq. 13: a resource must be
  available and the node must hold access to it); Pi: the routing of each transition's token to
  the node that runs it; xi: a sound sub-workflow that takes an access-rejection token from the
  input to the output (default: one `reject` transition).
* Structural validity (section 7.2): WFnet sound; every node of A has a chi entry naming only
  resources of R; Pi routes every service transition to a node of A; xi sound.
* Theorem 1 (sound => serializable): `serial_order` is the serialization the executor records:
  stage by stage, within a stage by (node, transition).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agents.sso.wfnet import Composition, check_soundness, parse_process


@dataclass(frozen=True)
class ServiceOffer:
    """A node offers a service at a normally distributed cost (paper section 8)."""

    node: str
    service: str
    cost_mean_ms: float
    cost_sd_ms: float

    def __post_init__(self) -> None:
        if self.cost_mean_ms < 0 or self.cost_sd_ms < 0:
            raise ValueError(f"offer {self.node}/{self.service}: costs must be >= 0")


def default_binding() -> Composition:
    """xi: a single `reject` transition from input to output (sound by construction)."""
    return parse_process("reject")


@dataclass
class SecureWorkflowNet:
    """WFs = (WFnet, A, chi, R, Pi, xi)."""

    composition: Composition
    nodes: frozenset[str]
    chi: dict[str, frozenset[str]]
    resources: frozenset[str]
    routing: dict[str, str]
    binding: Composition = field(default_factory=default_binding)


def validate(swf: SecureWorkflowNet) -> list[str]:
    """The section 7.2 constraints that `swf` breaks (empty = structurally valid)."""
    problems: list[str] = []
    sound, why = check_soundness(swf.composition)
    if not sound:
        problems.append(f"WFnet not sound: {why}")
    for node in sorted(swf.nodes):
        if node not in swf.chi:
            problems.append(f"node {node!r} has no chi entry")
    for node, res in sorted(swf.chi.items()):
        unknown = sorted(res - swf.resources)
        if unknown:
            problems.append(f"chi of node {node!r} names resources outside R: {unknown}")
    for t in sorted(swf.composition.tasks):
        routed = swf.routing.get(t)
        if routed is None:
            problems.append(f"transition {t!r} is not routed to any node (Pi)")
        elif routed not in swf.nodes:
            problems.append(f"transition {t!r} routed to {routed!r}, not a node of A")
    b_sound, b_why = check_soundness(swf.binding)
    if not b_sound:
        problems.append(f"binding xi not sound: {b_why}")
    return problems


def authorize(swf: SecureWorkflowNet, files: Sequence[str]) -> list[str]:
    """Refusals (empty = permitted): structural problems, then, per routed service transition,
    a node without access to its service or to a file it reads, or a resource not in R."""
    refusals = validate(swf)
    for t, svc in sorted(swf.composition.tasks.items()):
        node = swf.routing.get(t)
        if node is None or node not in swf.nodes:
            continue
        allowed = swf.chi.get(node, frozenset())
        for res, kind in [(svc, "service"), *((f, "file") for f in files)]:
            if res not in swf.resources:
                refusals.append(f"{kind} {res!r} is not an available resource (R) "
                                f"(transition {t!r})")
            elif res not in allowed:
                refusals.append(f"node {node!r} has no access to {kind} {res!r} "
                                f"(transition {t!r})")
    return refusals


def serial_order(swf: SecureWorkflowNet, stages: Sequence[Sequence[str]]) -> list[str]:
    """The serialization executed: stages in order, within a stage sorted by (node,
    transition); transitions not in the composition are refused (ValueError)."""
    out: list[str] = []
    for k, stage in enumerate(stages):
        for t in stage:
            if t not in swf.composition.tasks:
                raise ValueError(f"stage {k}: {t!r} is not a service transition of the net")
        out.extend(sorted(stage, key=lambda t: (swf.routing.get(t, ""), t)))
    return out


def chi_from_offers(offers: Sequence[ServiceOffer],
                    files: Mapping[str, Sequence[str]] | None = None) -> dict[str, frozenset[str]]:
    """chi where each node may touch the services it offers (+ `files[node]`)."""
    chi: dict[str, set[str]] = {}
    for o in offers:
        chi.setdefault(o.node, set()).add(o.service)
    for node, fs in (files or {}).items():
        chi.setdefault(node, set()).update(fs)
    return {n: frozenset(r) for n, r in chi.items()}
