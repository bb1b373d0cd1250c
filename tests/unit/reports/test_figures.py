"""An experiment's own figures (`plots:`): validated up front, drawn from the measured trials."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from edgeferry.errors import ConfigError
from edgeferry.experiments.schema import parse_experiment
from edgeferry.reports.plots import figure_lines
from edgeferry.reports.render import write_report
from edgeferry.reports.stats import compute

from .rundir import MIGRATE_PARAMS, make_run


def test_figure_points_are_the_medians_of_the_measured_trials(tmp_path: Path) -> None:
    rd = make_run(tmp_path)
    info = rd.read_info()
    spec = {"title": "score vs size", "x": "size_mb", "y": "score", "series": "mode",
            "labels": {"migrate": "lab"}}
    info["definition"]["plots"] = [spec]
    rd.write_info(info)
    md, _html = write_report(rd.path)
    assert (rd.path / "plots" / "figure-1.png").stat().st_size > 1000
    assert "![score vs size](plots/figure-1.png)" in md.read_text()
    # independent: medians straight from the JSONL, measured trials only
    expected: dict[tuple[str, float], float] = {}
    for params in MIGRATE_PARAMS:
        scores = [t["metrics"]["score"] for t in rd.read_trials()
                  if t["part"] == "migrate" and t["params"] == params
                  and t["outcome"] == "ok" and not t["warmup"]]
        expected[(f"mode={params['mode']}", float(params["size_mb"]))] = \
            statistics.median(scores)
    lines = figure_lines(compute(rd.path), spec, ["migrate"])
    got = {(series, x): med for (_part, series), pts in lines.items() for x, med, _, _ in pts}
    assert got == pytest.approx(expected)


def _doc(plot: dict[str, object]) -> dict[str, object]:
    return {"name": "fig", "description": "d", "target": {"lab": {}},
            "scenario": "link-bandwidth", "workload": {},
            "parameters": {"host": "edge1", "direction": ["up", "down"], "rate": "10mbit"},
            "plots": [plot]}


@pytest.mark.parametrize(("plot", "message"), [
    ({"title": "t", "x": "nodes", "y": "bandwidth_bps"}, "no part sweeps the parameter 'nodes'"),
    ({"title": "t", "x": "rate", "y": "hit_ratio"}, "records no metric or phase 'hit_ratio'"),
    ({"title": "t", "x": "rate", "y": "iperf3", "series": "policy"},
     "has no parameter 'policy'"),
    ({"title": "t", "x": "rate", "y": "iperf3", "parts": ["nope"]}, "no part 'nope'"),
])
def test_a_figure_naming_what_the_experiment_lacks_is_refused(plot, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_experiment(_doc(plot), "fig.yaml")


def test_a_valid_figure_passes() -> None:
    exp = parse_experiment(_doc({"title": "t", "x": "rate", "y": "iperf3",
                                 "series": "direction"}), "fig.yaml")
    assert exp.plots[0].series == "direction"
