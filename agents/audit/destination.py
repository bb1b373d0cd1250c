"""Target modes and the choice of a migration's destination (seed 002, section 3.2; Tables 7-8).

The owner names a target (one edge, a region, or any edge); each candidate edge is audited with
:func:`agents.audit.domain.evaluate`, in an order shuffled by a seeded RNG, until one permits.

This module is pure: no gRPC, Docker or Ansible, no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from agents.audit.domain import (
    ContainerPolicy,
    Decision,
    EdgeAttributes,
    EdgeState,
    InvalidTarget,
    UnknownEdge,
    UnknownRegion,
    evaluate,
)


class Mode(Enum):
    EDGE = "edge"  # a named edge
    REGION = "region"  # the edges of a region, in random order, until one permits
    ANY = "any"  # all edges, in random order, until one permits


@dataclass(frozen=True, slots=True)
class Target:
    """Where the owner wants the container to go."""

    mode: Mode
    name: str = ""

    @classmethod
    def edge(cls, name: str) -> Target:
        """Target the edge called ``name`` alone."""
        return cls(Mode.EDGE, name)

    @classmethod
    def region(cls, name: str) -> Target:
        """Target the edges of region ``name``: the first that permits, in seeded random order."""
        return cls(Mode.REGION, name)

    @classmethod
    def any(cls) -> Target:
        """Target every registered edge: the first that permits, in seeded random order."""
        return cls(Mode.ANY, "")

    def __str__(self) -> str:
        return f"{self.mode.value}:{self.name}" if self.name else self.mode.value


@dataclass(frozen=True, slots=True)
class MigrationDecision:
    """The audit of one migration request: the edges tried, in order, and the one chosen."""

    container: str
    source: str
    target: Target
    seed: int | None
    tries: tuple[Decision, ...]
    chosen: str | None
    note: str = ""
    candidates: tuple[str, ...] = field(default=())

    @property
    def permit(self) -> bool:
        """True when an edge was chosen (``chosen`` is not None)."""
        return self.chosen is not None

    def reasons(self) -> list[str]:
        """Why it was denied (every failed element of every edge tried), or why it was permitted."""
        if self.permit:
            return [f"{self.chosen}: every constrained element holds"]
        lines = [f"{d.edge}: {r}" for d in self.tries for r in d.reasons()]
        if self.note:
            lines.append(self.note)
        return lines

    def as_dict(self) -> dict[str, Any]:
        """This decision as a JSON-ready dict (audit log, ``--json``): target, order, every try."""
        return {"container": self.container, "source": self.source,
                "mode": self.target.mode.value, "target": self.target.name, "seed": self.seed,
                "candidates": list(self.candidates), "chosen": self.chosen,
                "permit": self.permit, "note": self.note,
                "tries": [d.as_dict() for d in self.tries]}


def candidate_order(edges: Iterable[str], rng: random.Random) -> list[str]:
    """The order in which region / any-edge modes try edges: sorted, then shuffled by ``rng``."""
    order = sorted(edges)
    rng.shuffle(order)
    return order


def choose_destination(policy: ContainerPolicy, edges: Mapping[str, EdgeAttributes],
                       states: Mapping[str, EdgeState], target: Target, *, seed: int | None,
                       accessible: Collection[str] | None = None, now: float | None = None,
                       max_state_age: float | None = None) -> MigrationDecision:
    """Audit a migration request in one of the three modes.

    Named edge: that edge alone is audited (a denial lists its failed elements).
    Region / any: the candidate edges (in the region / all edges; never the container's current
    edge; only edges available to the owner when ``accessible`` is given) are tried in an order
    shuffled by ``random.Random(seed)``, stopping at the first permit.
    """
    def audit(edge: EdgeAttributes) -> Decision:
        ok = accessible is None or edge.name in accessible
        return evaluate(policy, edge, states.get(edge.name), accessible=ok, now=now,
                        max_state_age=max_state_age)

    if target.mode is Mode.EDGE:
        edge = edges.get(target.name)
        if edge is None:
            raise UnknownEdge(f"no edge named {target.name!r} is registered")
        if edge.name == policy.location:
            raise InvalidTarget(f"container {policy.name!r} already runs on {edge.name!r}")
        decision = audit(edge)
        return MigrationDecision(policy.name, policy.location, target, seed, (decision,),
                                 edge.name if decision.permit else None,
                                 candidates=(edge.name,))
    if target.mode is Mode.REGION:
        in_region = [e for e in edges.values() if e.region == target.name]
        if not in_region:
            raise UnknownRegion(f"no registered edge is in region {target.name!r}")
        pool = in_region
        where = f"region {target.name!r}"
    else:
        pool = list(edges.values())
        where = "any region"
    names = [e.name for e in pool if e.name != policy.location
             and (accessible is None or e.name in accessible)]
    order = candidate_order(names, random.Random(seed))
    tries: list[Decision] = []
    for name in order:
        decision = audit(edges[name])
        tries.append(decision)
        if decision.permit:
            return MigrationDecision(policy.name, policy.location, target, seed, tuple(tries),
                                     name, candidates=tuple(order))
    note = (f"no edge in {where} permits the migration" if order else
            f"no candidate edge in {where} (besides the current one) is available to the owner")
    return MigrationDecision(policy.name, policy.location, target, seed, tuple(tries), None,
                             note=note, candidates=tuple(order))
