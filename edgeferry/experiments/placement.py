"""The outcome of one placement (seed 000 Algorithm 2 at the SMF) read back and judged. No grpc.

The SMF's MigrateService with an empty destination records a "placement" phase whose detail is
JSON (`agents.security.advertisement.Placement.detail`)::

    {"chosen": "edge3", "reason": "chose edge3 (edge2: memory_bytes 2147483648 > 1610612736)",
     "refused": [{"cloud": "edge2", "shortfall": {"memory_bytes": [2147483648, 1610612736]}}]}

An older SMF wrote only the reason line (``chose X (c: shortfall; ...)``); when no cloud fits,
the call is refused (INSUFFICIENT_RESOURCES) with ``<service>: no cloud fits (...)``. Both lines
parse here too. `check` compares an outcome with the experiment's `PlacementExpectation`
(host names; the clouds are mapped to hosts with ``host_of``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agents.security.advertisement import parse_shortfall
from edgeferry.experiments.workloads import SHORTFALL_KEYS, PlacementExpectation

MIB = 1024 * 1024
_LINE = re.compile(r"(?:chose (?P<chosen>\S+)|no cloud fits) \((?P<why>.*)\)\s*$", re.S)
#: node-unit shortfall key -> (label, divisor, unit) for people
_UNITS = {"cpu_millicores": ("cpu", 1, "m"), "memory_bytes": ("memory", MIB, "MiB"),
          "storage_bytes": ("storage", MIB, "MiB"), "network_bps": ("network", 1_000_000, "Mbit/s"),
          "gpu": ("gpu", 1, "")}


@dataclass(frozen=True)
class Refusal:
    """A cloud Algorithm 2 left out, and per resource (node units) what was required and free."""

    cloud: str
    shortfall: dict[str, tuple[int, int]]

    def why(self) -> str:
        """E.g. ``memory 2048 MiB > free 1536 MiB``."""
        parts = []
        for key, (need, free) in self.shortfall.items():
            label, div, unit = _UNITS.get(key, (key, 1, ""))
            parts.append(f"{label} {need // div} {unit} > free {free // div} {unit}".replace(
                "  ", " ").strip())
        return ", ".join(parts) or "nothing requested"


@dataclass(frozen=True)
class PlacementOutcome:
    """Which cloud the SMF chose (None: none fits) and which it refused, as recorded."""

    chosen: str | None
    refused: tuple[Refusal, ...] = ()
    reason: str = ""
    more: int = 0  # refusals the SMF left out of a long detail
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, host_of: dict[str, str] | None = None) -> dict[str, Any]:
        """JSON-able record (trial detail), with each cloud's host when ``host_of`` knows it."""
        hosts = host_of or {}
        return {"chosen": self.chosen, "chosen_host": hosts.get(self.chosen or "", self.chosen),
                "refused": [{"cloud": r.cloud, "host": hosts.get(r.cloud, r.cloud),
                             "shortfall": {k: list(v) for k, v in r.shortfall.items()},
                             "why": r.why()} for r in self.refused],
                "reason": self.reason, "more": self.more}


def parse_placement(detail: str) -> PlacementOutcome:
    """The placement phase's detail (JSON, or the older reason line) or an INSUFFICIENT_RESOURCES
    refusal's message; ValueError when it is neither."""
    text = detail.strip()
    if text.startswith("{"):
        doc = json.loads(text)
        if not isinstance(doc, dict) or "chosen" not in doc:
            raise ValueError(f"placement detail without 'chosen': {text[:200]}")
        refused = tuple(
            Refusal(str(r["cloud"]), {str(k): (int(v[0]), int(v[1]))
                                      for k, v in (r.get("shortfall") or {}).items()})
            for r in doc.get("refused") or [])
        chosen = doc["chosen"]
        return PlacementOutcome(None if chosen is None else str(chosen), refused,
                                str(doc.get("reason", "")), int(doc.get("more", 0)))
    match = _LINE.search(text)
    if match is None:
        raise ValueError(f"not a placement outcome: {text[:200]}")
    why = match.group("why")
    found: list[Refusal] = []
    if why != "no fresh advertisement":
        for item in why.split("; "):
            cloud, _, short = item.partition(": ")
            found.append(Refusal(cloud, parse_shortfall(short)))
    return PlacementOutcome(match.group("chosen"), tuple(found), text)


def outcome_of(phases: list[dict[str, Any]]) -> PlacementOutcome | None:
    """The outcome in a trial's recorded phases (their ``detail`` dicts as `phases_of` makes
    them: the JSON detail merged in), or None when no placement phase ran."""
    for phase in phases:
        if phase.get("phase") != "placement":
            continue
        detail = dict(phase.get("detail") or {})
        detail.pop("smf_phase", None)
        if "detail" in detail and isinstance(detail["detail"], str):
            return parse_placement(detail["detail"])
        return parse_placement(json.dumps(detail))
    return None


def check(outcome: PlacementOutcome, expect: PlacementExpectation | None,
          host_of: dict[str, str] | None = None) -> list[str]:
    """What in ``outcome`` differs from ``expect`` (empty: as expected)."""
    if expect is None:
        return []
    hosts = host_of or {}
    chosen = None if outcome.chosen is None else hosts.get(outcome.chosen, outcome.chosen)
    refused = {hosts.get(r.cloud, r.cloud): r for r in outcome.refused}
    problems = []
    if expect.none_fits and chosen is not None:
        problems.append(f"expected no cloud to fit, the SMF chose {chosen}")
    if not expect.none_fits and chosen is None:
        problems.append("expected a placement, no cloud fits")
    if expect.chosen and chosen is not None and chosen not in expect.chosen:
        problems.append(f"chose {chosen}, expected one of {', '.join(expect.chosen)}")
    for host, resources in expect.refused.items():
        got = refused.get(host)
        if got is None:
            problems.append(f"expected {host} refused, it was not"
                            + (" (it was chosen)" if host == chosen else ""))
            continue
        short = [r for r in resources if SHORTFALL_KEYS[r] not in got.shortfall]
        if short:
            problems.append(f"{host} refused for {got.why()}, not for {', '.join(short)}")
    return problems


def table_row(trial: dict[str, Any]) -> list[str] | None:
    """One report row of a recorded trial (trials.jsonl line) with a placement in its detail:
    trial, requirement, chosen, refused and why, as expected."""
    detail = trial.get("detail") or {}
    placed = detail.get("placement")
    if not isinstance(placed, dict):
        return None
    req = detail.get("requirement") or {}
    requirement = (f"cpu {req.get('cpu', '?')} m, memory {req.get('memory_mib', '?')} MiB"
                   if req else "-")
    refused = "; ".join(f"{r.get('host') or r.get('cloud')}: {r.get('why', '')}"
                        for r in placed.get("refused") or []) or "none"
    if placed.get("more"):
        refused += f" (+{placed['more']} more)"
    expected = detail.get("expectation_problems")
    verdict = "-" if expected is None else ("yes" if not expected else "no: " + "; ".join(
        expected))
    return [str(trial.get("trial_id", "-")), str(detail.get("service", "-")), requirement,
            str(detail.get("source", "-")), str(placed.get("chosen_host") or "none fits"),
            refused, verdict]


PLACEMENT_HEADER = ["trial", "service", "requirement", "source", "chosen cloud",
                    "refused clouds (why)", "as expected"]
