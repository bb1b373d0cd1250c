"""`load_results` / `edgeferry results`: the frame is the raw JSONL, and its medians are the
report's (both checked against numpy medians of the values written)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from edgeferry.cli.main import cli
from edgeferry.errors import ConfigError
from edgeferry.experiments.results import RunDir
from edgeferry.reports.frame import load_results, summary_table
from edgeferry.reports.render import table_rows, write_report
from edgeferry.reports.stats import TOTAL, compute
from edgeferry.reports.units import to_base
from tests.entry import edgeferry
from tests.unit.reports.rundir import label, make_run

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return make_run(tmp_path_factory.mktemp("runs"))


def raw_groups(rd: RunDir) -> dict[tuple[str, str, str], list[float]]:
    """(part, label, phase or "total" or "metric m") -> values of measured trials, from the
    JSONL lines as written (json.loads, nothing of edgeferry's)."""
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for line in rd.jsonl.read_text().splitlines():
        r = json.loads(line)
        if r["warmup"] or r["outcome"] != "ok":
            continue
        key = (r["part"], label(r["params"]))
        for p in r["phases"]:
            groups[(*key, p["phase"])].append(p["wall_s"])
        groups[(*key, TOTAL)].append(sum(p["wall_s"] for p in r["phases"]))
        for m, v in r["metrics"].items():
            groups[(*key, f"metric {m}")].append(v)
    return groups


def test_one_row_per_trial_and_phase_with_parameter_and_metric_columns(run: RunDir) -> None:
    frame = load_results(run.path)
    records = [json.loads(line) for line in run.jsonl.read_text().splitlines()]
    assert len(frame) == sum(max(1, len(r["phases"])) for r in records)
    assert frame["trial_id"].nunique() == len(records)
    for col in ("param.size_mb", "param.mode", "param.nodes", "param.hosts", "metric.score",
                "metric.rate", "wall_s", "bytes", "phase_outcome", "trial_outcome",
                "bandwidth_bps", "measured", "parameters"):
        assert col in frame.columns, col
    first = frame.iloc[0]
    assert (first["param.size_mb"], first["param.mode"], first["phase"]) == (1, "a", "push")
    assert frame["param.size_mb"].dtype.kind in "if"
    probe = frame[frame["part"] == "probe"]
    assert set(probe["param.hosts"]) == {'["edge1", "edge2"]'}  # a list parameter: JSON text
    assert probe["param.size_mb"].isna().all()
    no_phase = frame[frame["phase"].isna()]
    assert len(no_phase) == 1 and no_phase.iloc[0]["error"] == "OperationFailed: no route"
    assert int(frame.drop_duplicates("trial_id")["measured"].sum()) == 3 * 5 + 5


def test_group_medians_equal_the_reports_and_numpys(run: RunDir) -> None:
    frame = load_results(run.path)
    expected = {k: float(np.median(v)) for k, v in raw_groups(run).items()}
    good = frame[frame["measured"]]
    ours = {(part, lab, phase): v for (part, lab, phase), v in
            good.groupby(["part", "parameters", "phase"])["wall_s"].median().items()}
    trials = good.drop_duplicates("trial_id")
    ours |= {(part, lab, TOTAL): v for (part, lab), v in
             trials.groupby(["part", "parameters"])["total_s"].median().items()}
    for metric in ("score", "rate"):
        ours |= {(part, lab, f"metric {metric}"): v for (part, lab), v in
                 trials.groupby(["part", "parameters"])[f"metric.{metric}"].median().dropna()
                 .items()}
    assert ours.keys() == expected.keys()
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, rel=1e-12), key
    stats = compute(run)
    report = {(g.part, g.params_label, phase): s.median
              for g in stats.groups for phase, s in g.phases.items()}
    report |= {(g.part, g.params_label, f"metric {m}"): s.median
               for g in stats.groups for m, s in g.metrics.items()}
    assert report.keys() == expected.keys()
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, rel=1e-12), key
    md, _ = write_report(run.path)
    for row in table_rows(md.read_text(), "Wall time per phase"):
        key = (row["part"], row["parameters"], row["phase"])
        assert to_base(float(row["median"]), row["unit"]) == pytest.approx(expected[key],
                                                                            rel=1e-3)


def test_summary_table_median_and_ci_equal_the_reports(run: RunDir) -> None:
    # the results frame's summary and report.md's phase table show the same median and 95 %
    # CI per (part, parameters, phase), and the CI brackets numpy's median of the raw values
    frame = load_results(run.path)
    table = summary_table(frame)
    ours = {(r[0], r[1], r[2]): dict(zip(table.header, r, strict=True)) for r in table.rows}
    md, _ = write_report(run.path)
    report = {(r["part"], r["parameters"], r["phase"]): r
              for r in table_rows(md.read_text(), "Wall time per phase") if r["phase"] != TOTAL}
    assert ours.keys() == report.keys()
    expected = {k: v for k, v in raw_groups(run).items() if k in ours}
    for key, row in ours.items():
        assert (row["median wall"], row["median 95% CI"], row["unit"]) == (
            report[key]["median"], report[key]["median 95% CI"], report[key]["unit"]), key
        lo, hi = (to_base(float(x), row["unit"]) for x in row["median 95% CI"].strip("[]")
                  .split(", "))
        assert lo <= float(np.median(expected[key])) <= hi, key


def test_parquet_round_trip_equals_the_frame(run: RunDir, tmp_path: Path) -> None:
    frame = load_results(run.path)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), frame)


def test_an_empty_run_loads_as_an_empty_frame(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "fx")
    rd.write_info({"experiment": "fx", "status": "running"})
    frame = load_results(rd.path)
    assert frame.empty and "wall_s" in frame.columns
    result = CliRunner().invoke(cli, ["results", str(rd.path)])
    assert result.exit_code == 0, result.output


def test_bad_run_directories_are_one_line_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such run directory"):
        load_results(tmp_path / "missing")
    with pytest.raises(ConfigError, match="not a run directory"):
        load_results(tmp_path)
    (tmp_path / "run.json").write_text("{torn")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_results(tmp_path)


def test_cli_summary_json_and_exports(run: RunDir, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["results", str(run.path)])
    assert result.exit_code == 0, result.output
    assert "27 trials (20 measured, 3 warm-ups, 4 failed)" in result.output
    assert "param.size_mb" in result.output and "metric.score" in result.output
    result = runner.invoke(cli, ["results", str(run.path), "--json", "--parquet",
                                 str(tmp_path / "r.parquet"), "--csv", str(tmp_path / "r.csv")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    frame = load_results(run.path)
    assert len(payload["rows"]) == payload["row_count"] == len(frame)
    assert payload["measured"] == 20 and payload["parameters"][0] == "param.hosts"
    raw = json.loads(run.jsonl.read_text().splitlines()[0])
    first = payload["rows"][0]
    assert first["wall_s"] == raw["phases"][0]["wall_s"]  # full precision
    assert first["param.size_mb"] == raw["params"]["size_mb"] and first["param.nodes"] is None
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "r.parquet"), frame)
    csv = pd.read_csv(tmp_path / "r.csv")
    assert list(csv.columns) == list(frame.columns) and len(csv) == len(frame)
    assert csv["wall_s"].to_numpy() == pytest.approx(frame["wall_s"].to_numpy(), nan_ok=True)


def test_entry_point_exit_codes(run: RunDir, tmp_path: Path) -> None:
    good = edgeferry("results", str(run.path))
    assert good.returncode == 0, good.stderr
    assert "Measured phases" in good.stdout
    for bad in (tmp_path / "missing", tmp_path):
        proc = edgeferry("results", str(bad))
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("edgeferry: error: ") and "Traceback" not in proc.stderr
