"""Client mobility and BloSM's distance rule (seed 001 Algorithm 3, lines 18-28).

A client moves along a path of waypoints at a constant speed; each edge sits at a fixed point
and serves up to its own distance threshold. While the client is within the threshold of the
edge that serves it, that edge answers (line 19, "return Response from Es"); past it, the
service container is migrated (lines 21-28) to the nearest other edge whose threshold covers
the client. Outside every other edge's coverage nothing better exists and the service stays.
`first_trigger` samples the trajectory at a fixed period, as a client that reports its
position every ``step_s`` seconds would, and returns the first sample that asks to migrate.

Pure arithmetic (metres, seconds): the scenario (`edgeferry.experiments.scenarios.nms_client_moves`)
turns a decision into SMF.MigrateService.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True)
class Point:
    x: float
    y: float

    def distance(self, other: Point) -> float:
        return math.hypot(self.x - other.x, self.y - other.y)


@dataclass(frozen=True)
class EdgeSite:
    """An edge at a fixed point, serving clients up to ``threshold_m`` away."""

    name: str
    at: Point
    threshold_m: float

    def covers(self, where: Point) -> bool:
        return where.distance(self.at) <= self.threshold_m


@dataclass(frozen=True)
class Trajectory:
    """Waypoints visited in order at ``speed_mps``; the client stays at the last one."""

    waypoints: tuple[Point, ...]
    speed_mps: float

    def __post_init__(self) -> None:
        if not self.waypoints:
            raise ValueError("a trajectory needs at least one waypoint")
        if not self.speed_mps > 0:
            raise ValueError(f"speed must be positive, not {self.speed_mps}")

    @property
    def length_m(self) -> float:
        return sum(a.distance(b) for a, b in pairwise(self.waypoints))

    @property
    def duration_s(self) -> float:
        return self.length_m / self.speed_mps

    def position(self, t_s: float) -> Point:
        """Where the client is ``t_s`` seconds after leaving the first waypoint."""
        left = max(0.0, t_s) * self.speed_mps
        for a, b in pairwise(self.waypoints):
            leg = a.distance(b)
            if left <= leg and leg > 0:
                f = left / leg
                return Point(a.x + f * (b.x - a.x), a.y + f * (b.y - a.y))
            left -= leg
        return self.waypoints[-1]


@dataclass(frozen=True)
class Decision:
    """What Algorithm 3 does for a client at ``where`` served by ``serving``."""

    where: Point
    serving: str
    distance_m: float  # from the serving edge
    threshold_m: float  # the serving edge's
    target: str | None  # the edge to migrate to; None: stay

    @property
    def migrate(self) -> bool:
        return self.target is not None


def decide(where: Point, serving: str, sites: Iterable[EdgeSite]) -> Decision:
    """Algorithm 3's distance rule for one position (module docstring)."""
    by_name = {s.name: s for s in sites}
    if serving not in by_name:
        raise ValueError(f"the serving edge {serving!r} has no position "
                         f"(edges: {', '.join(sorted(by_name)) or 'none'})")
    here = by_name[serving]
    distance = where.distance(here.at)
    target = None
    if distance > here.threshold_m:
        covering = [s for s in by_name.values() if s.name != serving and s.covers(where)]
        if covering:
            target = min(covering, key=lambda s: (where.distance(s.at), s.name)).name
    return Decision(where, serving, distance, here.threshold_m, target)


def first_trigger(path: Trajectory, serving: str, sites: Sequence[EdgeSite],
                  step_s: float) -> tuple[float, Decision] | None:
    """The first sample (every ``step_s`` from t = 0 to the end of the path) whose decision is
    to migrate, with its time; None when the client never leaves ``serving``'s coverage for
    another edge's."""
    if not step_s > 0:
        raise ValueError(f"step must be positive, not {step_s}")
    steps = math.ceil(path.duration_s / step_s)
    for i in range(steps + 1):
        t = min(i * step_s, path.duration_s)
        decision = decide(path.position(t), serving, sites)
        if decision.migrate:
            return t, decision
    return None
