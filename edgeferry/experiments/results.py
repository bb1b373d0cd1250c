"""A run directory: `reports/<experiment>/<run-id>/` with the raw results and provenance.

    run.json        provenance + status (running / complete / failed / interrupted)
    experiment.yaml the definition as run (copy)
    plan.json       every planned trial in run order (resume skips those already recorded)
    trials.jsonl    one line per finished trial, all phases inside (fsynced per line)
    trials.csv      the same, one row per phase (regenerated from the JSONL)
    report.md / report.html / plots/*.png    written by `edgeferry report`
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeferry.errors import ConfigError
from edgeferry.experiments.matrix import PlannedTrial

RUN_JSON = "run.json"
PLAN_JSON = "plan.json"
TRIALS_JSONL = "trials.jsonl"
TRIALS_CSV = "trials.csv"
EXPERIMENT_COPY = "experiment.yaml"
CSV_FIELDS = ("trial_id", "part", "scenario", "index", "repetition", "warmup", "params",
              "trial_outcome", "phase", "wall_s", "bytes", "phase_outcome", "bandwidth_bps")


def new_run_id(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


@dataclass
class RunDir:
    path: Path

    # -- creation / lookup ------------------------------------------------------------------
    @classmethod
    def create(cls, reports_root: Path, experiment: str, run_id: str | None = None) -> RunDir:
        base = reports_root / experiment
        base.mkdir(parents=True, exist_ok=True)
        rid = run_id or new_run_id()
        path, n = base / rid, 1
        while path.exists():
            n += 1
            path = base / f"{rid}-{n}"
        path.mkdir()
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        path = Path(path)
        if not (path / RUN_JSON).exists():
            raise ConfigError(f"{path} is not a run directory (no {RUN_JSON})")
        return cls(path)

    @classmethod
    def latest_unfinished(cls, reports_root: Path, experiment: str,
                          fingerprint: str) -> RunDir | None:
        base = reports_root / experiment
        if not base.is_dir():
            return None
        for candidate in sorted(base.iterdir(), reverse=True):
            run_json = candidate / RUN_JSON
            if not run_json.exists():
                continue
            try:
                info = json.loads(run_json.read_text())
            except json.JSONDecodeError:
                continue
            if info.get("status") in ("running", "interrupted", "failed") and \
                    info.get("experiment_fingerprint") == fingerprint:
                return cls(candidate)
            return None  # only the newest run is resumed automatically
        return None

    # -- run.json / plan ---------------------------------------------------------------------
    def read_info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.path / RUN_JSON).read_text())
        return info

    def write_info(self, info: dict[str, Any]) -> None:
        _write_json_atomic(self.path / RUN_JSON, info)

    def update_info(self, **fields: Any) -> dict[str, Any]:
        info = self.read_info()
        info.update(fields)
        self.write_info(info)
        return info

    def write_plan(self, plan: list[PlannedTrial]) -> None:
        _write_json_atomic(self.path / PLAN_JSON, [t.to_dict() for t in plan])

    def read_plan(self) -> list[PlannedTrial]:
        return [PlannedTrial.from_dict(d)
                for d in json.loads((self.path / PLAN_JSON).read_text())]

    # -- trials ------------------------------------------------------------------------------
    @property
    def jsonl(self) -> Path:
        return self.path / TRIALS_JSONL

    def read_trials(self, *, repair: bool = False) -> list[dict[str, Any]]:
        """Every complete line; a torn last line (crash mid-write) is dropped (and with
        ``repair`` cut from the file so appends continue cleanly)."""
        if not self.jsonl.exists():
            return []
        raw = self.jsonl.read_bytes()
        records, good_end = [], 0
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good_end += len(line)
        if repair and good_end != len(raw):
            with open(self.jsonl, "r+b") as fh:
                fh.truncate(good_end)
        return records

    def append_trial(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with open(self.jsonl, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        with open(self.path / TRIALS_CSV, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if fh.tell() == 0:
                writer.writerow(CSV_FIELDS)
            writer.writerows(csv_rows(record))

    def rewrite_csv(self) -> None:
        with open(self.path / TRIALS_CSV, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_FIELDS)
            for record in self.read_trials():
                writer.writerows(csv_rows(record))


def csv_rows(record: dict[str, Any]) -> list[list[Any]]:
    base = [record["trial_id"], record["part"], record["scenario"], record["index"],
            record["repetition"], record["warmup"],
            json.dumps(record["params"], sort_keys=True, default=str), record["outcome"]]
    phases = record.get("phases") or [{"phase": "", "wall_s": "", "bytes": "", "outcome": ""}]
    return [[*base, p["phase"], p["wall_s"], p["bytes"], p["outcome"],
             record.get("bandwidth_bps") or ""] for p in phases]
