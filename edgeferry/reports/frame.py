"""A run's results as one pandas DataFrame, read from the raw trials.jsonl (the source of truth).

One row per trial x phase (a trial that recorded no phase, e.g. one that failed before its first,
has one row with an empty `phase`). Columns, in this order:

    run, trial_id, part, scenario, index, repetition, warmup, trial_outcome, measured, error,
    started_at, total_s, total_bytes, bandwidth_bps     -- per trial, repeated on its phase rows
    parameters                                          -- the report's label: "size_mb=8, mode=a"
    param.<name>                                        -- one column per parameter (as planned)
    metric.<name>                                       -- one column per trial-level metric
    phase, wall_s, bytes, phase_outcome                 -- per phase

`measured` is what every statistic of the report counts: not a warm-up and the trial's outcome
"ok". Times are seconds, sizes bytes, rates bit/s. The `param.`/`metric.` prefixes keep a
parameter or metric from colliding with a fixed column (a migration has a `bandwidth`
parameter). A column whose values mix kinds (numbers and text, or lists/objects) holds text
(lists and objects as JSON), so the frame always round-trips through Parquet.

The report's per-group median of a phase is the median of `wall_s` over the measured rows of
(part, parameters, phase): `frame[frame.measured].groupby(["part", "parameters", "phase"])`.
(A scenario that records the same phase twice in one trial counts its sum in the report.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from edgeferry.errors import ConfigError
from edgeferry.experiments.results import RunDir
from edgeferry.reports.render import Table, ci_cell, fmt
from edgeferry.reports.stats import is_measured, params_label
from edgeferry.reports.units import best_time_unit, from_base
from edgeferry.stats import median, median_ci

PARAM = "param."
METRIC = "metric."
TRIAL_COLUMNS = ("run", "trial_id", "part", "scenario", "index", "repetition", "warmup",
                 "trial_outcome", "measured", "error", "started_at", "total_s", "total_bytes",
                 "bandwidth_bps", "parameters")
PHASE_COLUMNS = ("phase", "wall_s", "bytes", "phase_outcome")


def open_run(run_dir: Path | str) -> RunDir:
    """The run directory, or a one-line ConfigError saying why it is not one."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such run directory")
    rd = RunDir.open(path)
    try:
        rd.read_info()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path / 'run.json'} is not valid JSON ({err}); "
                          "is this a run directory?") from None
    return rd


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "json"


def _uniform(values: list[Any]) -> list[Any]:
    """Values of one column, made one kind: as they are when they agree, else text."""
    kinds = {_kind(v) for v in values if v is not None}
    if len(kinds) <= 1 and "json" not in kinds:
        return values
    return [None if v is None else v if isinstance(v, str)
            else json.dumps(v, sort_keys=True, default=str) for v in values]


def _trial_rows(record: dict[str, Any], run: str) -> list[dict[str, Any]]:
    params = record.get("params") or {}
    trial: dict[str, Any] = {
        "run": run, "trial_id": record["trial_id"], "part": record["part"],
        "scenario": record["scenario"], "index": record["index"],
        "repetition": record["repetition"], "warmup": bool(record["warmup"]),
        "trial_outcome": record["outcome"],
        "measured": is_measured(record),
        "error": record.get("error"), "started_at": record.get("started_at"),
        "total_s": record.get("total_s"), "total_bytes": record.get("total_bytes"),
        "bandwidth_bps": record.get("bandwidth_bps"), "parameters": params_label(params)}
    trial.update({PARAM + k: v for k, v in params.items()})
    trial.update({METRIC + k: v for k, v in (record.get("metrics") or {}).items()})
    phases = record.get("phases") or [{}]
    return [{**trial, "phase": p.get("phase"), "wall_s": p.get("wall_s"),
             "bytes": p.get("bytes"), "phase_outcome": p.get("outcome")} for p in phases]


def frame_of(records: list[dict[str, Any]], run: str = "") -> pd.DataFrame:
    """The DataFrame of trial records (as trials.jsonl holds them); see the module docstring."""
    rows = [row for r in records for row in _trial_rows(r, run)]
    params = sorted({k for row in rows for k in row if k.startswith(PARAM)})
    metrics = sorted({k for row in rows for k in row if k.startswith(METRIC)})
    columns = [*TRIAL_COLUMNS, *params, *metrics, *PHASE_COLUMNS]
    data = {c: _uniform([row.get(c) for row in rows]) for c in columns}
    return pd.DataFrame(data, columns=columns)


def load_results(run_dir: Path | str) -> pd.DataFrame:
    """A run directory's trials.jsonl as a DataFrame: one row per trial x phase, one column
    per parameter (`param.<name>`) and per metric (`metric.<name>`)."""
    rd = open_run(run_dir)
    return frame_of(rd.read_trials(), rd.path.name)


def parameter_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's `param.<name>` columns."""
    return [c for c in frame.columns if c.startswith(PARAM)]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's `metric.<name>` columns."""
    return [c for c in frame.columns if c.startswith(METRIC)]


def summary_table(frame: pd.DataFrame) -> Table:
    """Per part, parameters and phase: measured rows, median wall time with its 95 % bootstrap
    CI, and median bytes (`edgeferry.stats`, the report's definitions)."""
    rows: list[list[str]] = []
    good = frame[frame["measured"] & frame["phase"].notna()]
    for (part, label, phase), group in good.groupby(["part", "parameters", "phase"], sort=False):
        walls = [float(v) for v in group["wall_s"].dropna()]
        sizes = [float(v) for v in group["bytes"].dropna()]
        wall = median(walls) if walls else None
        unit = best_time_unit(wall or 0.0)
        rows.append([str(part), str(label), str(phase), str(len(walls)),
                     fmt(None if wall is None else from_base(wall, unit)),
                     ci_cell(median_ci(walls), from_base(1.0, unit)), unit,
                     fmt(median(sizes) / 1e6 if sizes else None)])
    return Table("Measured phases", ["part", "parameters", "phase", "n", "median wall",
                                     "median 95% CI", "unit", "median MB"], rows,
                 "Warm-ups and failed trials excluded, as in the report; the CI is the report's "
                 "(percentile bootstrap, seeded; — below 3 trials).")


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as plain JSON-able dicts (missing values None, full float precision)."""
    return [{k: None if pd.api.types.is_scalar(v) and pd.isna(v) else v
             for k, v in row.items()} for row in frame.to_dict(orient="records")]


def overview(frame: pd.DataFrame) -> dict[str, Any]:
    """Counts and column groups of a results frame (what `edgeferry results` prints first)."""
    trials = frame.drop_duplicates("trial_id")
    return {
        "row_count": len(frame), "trials": len(trials),
        "measured": int(trials["measured"].sum()), "warmups": int(trials["warmup"].sum()),
        "failed": int(((trials["trial_outcome"] != "ok") & ~trials["warmup"]).sum()),
        "parameters": parameter_columns(frame), "metrics": metric_columns(frame),
        "columns": list(frame.columns)}
