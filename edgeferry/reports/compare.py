"""Two runs of one experiment side by side: per-group medians of A and B and the ratio B/A.

A group is what the report's tables group by: part, parameter combination, and a phase (with
`total`) or a per-trial metric. Medians come from `edgeferry.reports.stats` (measured trials
only) and so from `edgeferry.stats`, the one percentile definition.
"""

from __future__ import annotations

from pathlib import Path

from edgeferry.errors import ConfigError
from edgeferry.reports.frame import open_run
from edgeferry.reports.render import Table, fmt, md_table
from edgeferry.reports.stats import RunStats, Summary, compute
from edgeferry.reports.units import best_time_unit, from_base

HEADER = ["part", "parameters", "quantity", "n A", "median A", "n B", "median B", "unit",
          "ratio B/A"]

Key = tuple[str, str, str]


def _summaries(stats: RunStats) -> dict[Key, tuple[Summary, str]]:
    """(part, parameters, quantity) -> (summary in base units, kind: "time" or a metric unit)."""
    units = {name: part.get("metrics", {})
             for name, part in (stats.info.get("parts") or {}).items()}
    out: dict[Key, tuple[Summary, str]] = {}
    for g in stats.groups:
        for phase, s in g.phases.items():
            out[(g.part, g.params_label, phase)] = (s, "time")
        for metric, s in g.metrics.items():
            out[(g.part, g.params_label, f"metric {metric}")] = (
                s, units.get(g.part, {}).get(metric, ""))
    return out


def _row(key: Key, a: tuple[Summary, str] | None, b: tuple[Summary, str] | None) -> list[str]:
    present = a or b
    assert present is not None, key  # every key comes from one of the two runs
    kind = present[1]
    med_a = a[0].median if a else None
    med_b = b[0].median if b else None
    if kind == "time":
        unit = best_time_unit(med_a if med_a is not None else med_b or 0.0)
        scale = from_base(1.0, unit)
    elif kind == "bit/s":
        unit, scale = "Mbit/s", 1e-6
    else:
        unit, scale = kind, 1.0
    ratio = med_b / med_a if med_a and med_b is not None else None
    return [*key, str(a[0].n) if a else "0", fmt(None if med_a is None else med_a * scale),
            str(b[0].n) if b else "0", fmt(None if med_b is None else med_b * scale), unit,
            fmt(ratio)]


def compare_runs(run_a: Path, run_b: Path) -> Table:
    """The comparison table of two run directories of the same experiment (refused otherwise).
    Groups present in only one run are listed with "-" for the other."""
    stats_a, stats_b = compute(open_run(run_a)), compute(open_run(run_b))
    name_a, name_b = stats_a.info.get("experiment"), stats_b.info.get("experiment")
    if name_a != name_b:
        raise ConfigError(f"{run_a} is a run of {name_a!r} but {run_b} of {name_b!r}; "
                          "compare two runs of the same experiment")
    a, b = _summaries(stats_a), _summaries(stats_b)
    keys = list(a) + [k for k in b if k not in a]
    rows = [_row(k, a.get(k), b.get(k)) for k in keys]
    return Table(f"{name_a}: {Path(run_b).name} (B) vs {Path(run_a).name} (A)", HEADER, rows,
                 "Medians of measured trials (warm-ups and failed trials excluded), linear "
                 "interpolation between order statistics; `total` is the sum of a trial's "
                 "phases; ratio = median B / median A.")


def write_comparison(table: Table, out: Path) -> Path:
    """The comparison as a Markdown table at `out`."""
    try:
        out.write_text(md_table(table))
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err.strerror or err}") from None
    return out
