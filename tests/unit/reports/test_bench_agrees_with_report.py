"""One recorded migration trial through both paths: benchmarks/bench_migration_lab.py's row and
cell, and an experiment run directory's report (the scenario's metrics, the report's tables).
Both must show the same total, downtime, bounds, ratios, bytes and bandwidths, and those must be
the bounds computed here by hand from the fixture's raw values."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edgeferry.bounds import TrialMeasurements
from edgeferry.experiments.results import RunDir
from edgeferry.experiments.scenario import PhaseResult
from edgeferry.experiments.scenarios.migration_common import transfer_metrics
from edgeferry.reports.render import table_rows, write_report

REPO = Path(__file__).resolve().parents[3]
FIXTURE = Path(__file__).parent / "data" / "migration_trial.json"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_migration_lab", REPO / "benchmarks" / "bench_migration_lab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def recorded() -> tuple[dict[str, Any], TrialMeasurements, list[PhaseResult]]:
    fx = json.loads(FIXTURE.read_text())
    phases = [PhaseResult(phase=p["phase"], wall_s=p["wall_s"], bytes=p["bytes"])
              for p in fx["phases"]]
    return fx, TrialMeasurements.from_dict(fx["measurements"]), phases


def hand() -> dict[str, float]:
    """The fixture's figures, worked out from its raw values (bytes x 8 / bit/s)."""
    bound = 0.412 + 4612337 * 8 / 38.9e6 + 54210448 * 8 / 39.4e6 + 0.655
    downtime_bound = 0.412 + 4431902 * 8 / 38.9e6 + 4402876 * 8 / 39.4e6 + 0.655
    return {"bound_s": bound, "downtime_bound_s": downtime_bound,
            "total_over_bound": 15.2 / bound, "downtime_over_bound": 3.41 / downtime_bound,
            "downtime_s": 3.41, "migration_s": 15.2, "moved_mb": (4612337 + 54210448) / 1e6,
            "push_after_mb": 4.431902, "pull_after_mb": 4.402876, "bw_push": 38.9,
            "bw_pull": 39.4, "pulled_after_manifest_mb": 4.196352,
            "downtime_phases_s": 0.398 + 0.161 + 0.97 + 0.031 + 1.002 + 0.52 + 0.08}


def report_of(tmp_path: Path) -> str:
    fx, m, phases = recorded()
    metrics = transfer_metrics(phases, m)  # what MigrationScenario.measured_metrics returns
    rd = RunDir.create(tmp_path, "agree")
    rd.write_info({
        "experiment": "agree", "experiment_file": "agree.yaml", "experiment_fingerprint": "0" * 16,
        "run_id": "r", "status": "complete", "started_at": 1_700_000_000.0, "provenance": {},
        "parts": {"nms": {"scenario": "nms-secure-migration", "enabled": True, "note": "",
                          "metrics": {}}},
        "definition": {"parts": [{"name": "nms", "phases": [p.phase for p in phases]}]}})
    rd.append_trial({
        "trial_id": "nms/0001", "part": "nms", "scenario": "nms-secure-migration", "index": 0,
        "repetition": 0, "warmup": False, "params": fx["params"],
        "resolved_params": fx["params"], "started_at": time.time(), "outcome": "ok",
        "error": None, "total_s": sum(p.wall_s for p in phases),
        "total_bytes": sum(p.bytes for p in phases), "bandwidth_bps": m.bw_pull_bps,
        "phases": [p.to_dict() for p in phases], "metrics": metrics,
        "detail": {"measurements": m.to_dict()}})
    md_path, _ = write_report(rd.path)
    return md_path.read_text()


def test_bench_and_report_show_the_same_numbers(tmp_path: Path) -> None:
    _fx, m, phases = recorded()
    expect = hand()
    cell = bench().summarise([bench().trial_row(4, "cold", "diff", m, phases)])
    md = report_of(tmp_path)
    down = table_rows(md, "Downtime and its bound")
    assert len(down) == 1
    row = down[0]
    bound_rows = table_rows(md, "Physical bound (bytes moved / measured bandwidth)")
    assert len(bound_rows) == 1
    b = bound_rows[0]

    def same(shown: str, bench_value: float, hand_value: float) -> None:
        # the report prints 4 significant digits; the bench keeps the float
        assert bench_value == pytest.approx(hand_value, rel=1e-12)
        assert float(shown) == pytest.approx(hand_value, rel=5e-4), (shown, hand_value)

    same(row["downtime (s)"], cell["downtime_s"], expect["downtime_s"])
    same(row["downtime bound (s)"], cell["downtime_bound_s"], expect["downtime_bound_s"])
    same(row["downtime / bound"], cell["downtime_over_bound"], expect["downtime_over_bound"])
    same(row["total (s)"], cell["migration_s"], expect["migration_s"])
    same(row["bound (s)"], cell["bound_s"], expect["bound_s"])
    same(row["total / bound"], cell["total_over_bound"], expect["total_over_bound"])
    same(row["push MB after stop (wire)"], cell["push_wire_after_stop_mb"],
         expect["push_after_mb"])
    same(row["pull MB after stop (wire)"], cell["pull_wire_after_stop_mb"],
         expect["pull_after_mb"])
    same(row["pull MB after stop (manifest)"], cell["pulled_after_stop_mb"],
         expect["pulled_after_manifest_mb"])
    same(row["bw push (Mbit/s)"], cell["bw_push_mbps"], expect["bw_push"])
    same(row["bw pull (Mbit/s)"], cell["bw_pull_mbps"], expect["bw_pull"])
    same(row["control stop (s)"], cell["control_stop_s"], 0.412)
    same(row["control start (s)"], cell["control_start_s"], 0.655)
    # the bound table: the same bound, the wire MB of both links, the round trip and ratio
    same(b["bound (median)"], cell["bound_s"], expect["bound_s"])
    same(b["MB moved (median)"], cell["push_wire_mb"] + cell["pull_wire_mb"],
         expect["moved_mb"])
    same(b["measured total (median)"], cell["migration_s"], expect["migration_s"])
    same(b["ratio measured/bound"], cell["total_over_bound"], expect["total_over_bound"])
    assert b["unit"] == "s"
    # the SMF's phase sum is kept beside the probed downtime, not in its place
    assert cell["downtime_phases_s"] == pytest.approx(expect["downtime_phases_s"])
    assert cell["downtime_phases_s"] != pytest.approx(cell["downtime_s"])


def test_the_report_draws_downtime_against_size(tmp_path: Path) -> None:
    _fx, m, phases = recorded()
    rd = RunDir.create(tmp_path, "plot")
    rd.write_info({"experiment": "plot", "status": "complete", "started_at": 0.0,
                   "provenance": {}, "parts": {}, "definition": {"parts": [{"name": "nms"}]}})
    for i, (volume, downtime) in enumerate(((4, 3.41), (16, 4.9), (64, 9.8))):
        other = TrialMeasurements.from_dict({**m.to_dict(), "downtime_s": downtime})
        rd.append_trial({
            "trial_id": f"nms/{i}", "part": "nms", "scenario": "nms-secure-migration",
            "index": i, "repetition": 0, "warmup": False, "params": {"volume_mb": volume},
            "resolved_params": {}, "started_at": 0.0, "outcome": "ok", "error": None,
            "total_s": 15.2, "total_bytes": 1, "bandwidth_bps": 4e7,
            "phases": [p.to_dict() for p in phases], "metrics": transfer_metrics(phases, other),
            "detail": {}})
    md = write_report(rd.path)[0].read_text()
    assert "![nms: downtime vs volume_mb](plots/nms-downtime.png)" in md
    png = rd.path / "plots" / "nms-downtime.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = table_rows(md, "Downtime and its bound")
    assert [float(r["downtime (s)"]) for r in rows] == [3.41, 4.9, 9.8]
