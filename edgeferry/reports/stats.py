"""Statistics of a run directory: per part, parameter combination and phase; comparisons.

Only measured trials count: warm-ups and failed trials are listed (n failed) but excluded.
Percentiles, medians and the median's bootstrap confidence interval are `edgeferry.stats`'s (its
docstring states the one definition: linear interpolation between order statistics, numpy's
default).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeferry.experiments.provenance import measured_bandwidth_bps
from edgeferry.experiments.results import RunDir
from edgeferry.reports.units import from_base, kind, to_base
from edgeferry.stats import Interval, median, median_ci, percentile

TOTAL = "total"
#: per-trial metrics of the migration scenarios (`edgeferry.bounds.trial_metrics`): the bound,
#: the wire MB of both links
BOUND_METRIC = "bound_s"
WIRE_MB = ("push_wire_mb", "pull_wire_mb")


@dataclass(frozen=True)
class Summary:
    """n, median, p5 and p95 of a group's values (kept, for the median's confidence interval)."""

    n: int
    median: float
    p5: float
    p95: float
    values: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        """The summary of a non-empty list of values."""
        return cls(len(values), median(values), percentile(values, 5), percentile(values, 95),
                   tuple(values))

    def median_ci(self) -> Interval | None:
        """95 % percentile-bootstrap confidence interval of the median (`edgeferry.stats`,
        seeded: the same values give the same interval); None for fewer than 3 values."""
        return median_ci(self.values)


def params_label(params: dict[str, Any], empty: str = "-") -> str:
    """Parameter values as one label: "bandwidth=40mbit, image_size_mb=264"."""
    return ", ".join(f"{k}={v}" for k, v in params.items()) or empty


@dataclass
class GroupStats:
    part: str
    scenario: str
    params: dict[str, Any]
    phases: dict[str, Summary]  # seconds; includes TOTAL
    metrics: dict[str, Summary]
    failed: int
    warmups: int
    bytes_median: float | None
    bound_s: Summary | None  # edgeferry.bounds' bound_s, else bytes * 8 / bandwidth, per trial
    bandwidth_source: str = ""

    @property
    def params_label(self) -> str:
        return params_label(self.params)


@dataclass
class Comparison:
    label: str
    part: str
    quantity: str  # "phase X" / "metric Y"
    where: dict[str, Any]
    reference: float
    unit: str
    source: str
    ours: float | None  # median in the reference's unit
    n: int
    ratio: float | None  # ours / reference


@dataclass
class RunStats:
    info: dict[str, Any]
    records: list[dict[str, Any]]
    groups: list[GroupStats] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    lab_bandwidth_bps: float | None = None


def _phase_order(records: list[dict[str, Any]], requested: list[str]) -> list[str]:
    seen: list[str] = list(requested)
    for r in records:
        for p in r["phases"]:
            if p["phase"] not in seen:
                seen.append(p["phase"])
    return seen


def phase_value(record: dict[str, Any], phase: str) -> float | None:
    if phase == TOTAL:
        return float(record["total_s"])
    vals = [p["wall_s"] for p in record["phases"] if p["phase"] == phase]
    return float(sum(vals)) if vals else None


def is_measured(record: dict[str, Any]) -> bool:
    """A trial the report's figures count: not a warm-up, and it succeeded."""
    return not record["warmup"] and record["outcome"] == "ok"


def measured(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials the report's figures count (`is_measured`)."""
    return [r for r in records if is_measured(r)]


def compute(run_dir: Path | RunDir) -> RunStats:
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir.open(Path(run_dir))
    info = rd.read_info()
    records = rd.read_trials()
    lab_bw = measured_bandwidth_bps((info.get("provenance") or {}).get("lab"))
    stats = RunStats(info=info, records=records, lab_bandwidth_bps=lab_bw)
    definition = info.get("definition") or {}
    parts = {p["name"]: p for p in definition.get("parts", [])}
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    order: list[tuple[str, str]] = []
    for r in records:
        key = (r["part"], json.dumps(r["params"], sort_keys=True, default=str))
        if key not in by_group:
            order.append(key)
        by_group[key].append(r)
    for part_name in parts or {k[0]: None for k in order}:
        keys = sorted((k for k in order if k[0] == part_name), key=lambda k: _sort_key(
            by_group[k][0]["params"]))
        for key in keys:
            group = by_group[key]
            stats.groups.append(_group(group, parts.get(part_name, {}).get("phases") or [],
                                       lab_bw))
    for part, ref in _references(definition):
        stats.comparisons.append(_compare(part, ref, records))
    return stats


def _sort_key(params: dict[str, Any]) -> list[tuple[int, float | str]]:
    out: list[tuple[int, float | str]] = []
    for v in params.values():
        out.append((0, float(v)) if isinstance(v, int | float) else (1, str(v)))
    return out


def _group(group: list[dict[str, Any]], requested: list[str],
           lab_bw: float | None) -> GroupStats:
    good = measured(group)
    phases: dict[str, Summary] = {}
    for phase in [*_phase_order(good, requested), TOTAL]:
        values = [v for r in good if (v := phase_value(r, phase)) is not None]
        if values:
            phases[phase] = Summary.of(values)
    metric_names = sorted({m for r in good for m in r.get("metrics", {})})
    metrics = {m: Summary.of([float(r["metrics"][m]) for r in good if m in r["metrics"]])
               for m in metric_names}
    bounds, source = [], ""
    byte_values = [float(r["total_bytes"]) for r in good if r.get("total_bytes")]
    if good and all(BOUND_METRIC in r.get("metrics", {}) for r in good):
        # the migration scenarios' one bound (edgeferry.bounds), recorded per trial
        bounds = [float(r["metrics"][BOUND_METRIC]) for r in good]
        byte_values = [1e6 * sum(float(r["metrics"].get(k, 0.0)) for k in WIRE_MB)
                       for r in good]
        source = ("edgeferry.bounds: wire bytes of each link / its receiver-side iperf3 "
                  "bandwidth before the trial + control stop and start")
    else:
        for r in good:
            bw = r.get("bandwidth_bps") or lab_bw
            if r.get("total_bytes") and bw:
                bounds.append(r["total_bytes"] * 8 / bw)
                source = "measured before the trial" if r.get("bandwidth_bps") else \
                    "lab's iperf3 measurement at `lab up` (slowest edge link)"
    first = group[0]
    return GroupStats(
        part=first["part"], scenario=first["scenario"], params=first["params"], phases=phases,
        metrics=metrics, failed=sum(1 for r in group if r["outcome"] != "ok" and not r["warmup"]),
        warmups=sum(1 for r in group if r["warmup"]),
        bytes_median=median(byte_values) if byte_values else None,
        bound_s=Summary.of(bounds) if bounds else None, bandwidth_source=source)


def _references(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    parts = definition.get("parts", [])
    out = [(p["name"], ref) for p in parts for ref in p.get("references", [])]
    for ref in definition.get("references", []):
        out.append((ref.get("part") or parts[0]["name"], ref))
    return out


def select(records: list[dict[str, Any]], part: str,
           where: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in measured(records) if r["part"] == part
            and all(r["params"].get(k) == v for k, v in where.items())]


def _compare(part: str, ref: dict[str, Any], records: list[dict[str, Any]]) -> Comparison:
    chosen = select(records, part, ref.get("where") or {})
    unit = ref["unit"]
    if ref.get("phase"):
        quantity = f"phase {ref['phase']}"
        values = [v for r in chosen if (v := phase_value(r, ref["phase"])) is not None]
        base = values  # seconds
    else:
        quantity = f"metric {ref['metric']}"
        base = [float(r["metrics"][ref["metric"]]) for r in chosen
                if ref["metric"] in r.get("metrics", {})]
    ours = None
    if base:
        med = median(base)
        ours = from_base(med, unit) if kind(unit) in ("time", "rate", "size") else med
    ratio = None if ours is None or ref["value"] == 0 else ours / ref["value"]
    return Comparison(label=ref["label"], part=part, quantity=quantity,
                      where=ref.get("where") or {}, reference=float(ref["value"]), unit=unit,
                      source=ref["source"], ours=ours, n=len(base), ratio=ratio)


__all__ = ["TOTAL", "Comparison", "GroupStats", "RunStats", "Summary", "compute", "select",
           "to_base"]
