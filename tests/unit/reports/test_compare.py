"""`edgeferry report --compare A B`: per-group medians of two runs and the ratio B/A."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeferry.cli.main import cli
from edgeferry.errors import ConfigError
from edgeferry.experiments.results import RunDir
from edgeferry.reports.compare import compare_runs
from edgeferry.reports.render import table_rows
from edgeferry.reports.units import to_base
from tests.unit.reports.rundir import make_run
from tests.unit.reports.test_frame import raw_groups


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    a = make_run(root, seed=1)
    b = make_run(root, seed=1, scale=2.0)  # the same draws, every wall time doubled
    return a.path, b.path


def test_medians_and_ratio_come_from_the_raw_values(runs: tuple[Path, Path]) -> None:
    a, b = runs
    table = compare_runs(a, b)
    raw_a, raw_b = raw_groups(RunDir(a)), raw_groups(RunDir(b))
    rows = {(r[0], r[1], r[2]): dict(zip(table.header, r, strict=True)) for r in table.rows}
    assert rows.keys() == raw_a.keys() == raw_b.keys()
    for key, row in rows.items():
        med_a, med_b = float(np.median(raw_a[key])), float(np.median(raw_b[key]))
        assert int(row["n A"]) == len(raw_a[key]) and int(row["n B"]) == len(raw_b[key])
        unit = row["unit"] or "count"  # a metric the scenario gave no unit
        assert to_base(float(row["median A"]), unit) == pytest.approx(med_a, rel=1e-3), key
        assert to_base(float(row["median B"]), unit) == pytest.approx(med_b, rel=1e-3), key
        assert float(row["ratio B/A"]) == pytest.approx(med_b / med_a, rel=1e-3), key
        if not key[2].startswith("metric"):
            assert float(row["ratio B/A"]) == pytest.approx(2.0, rel=1e-9), key


def test_cli_prints_and_writes_the_table(runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = runs
    result = CliRunner().invoke(cli, ["report", "--compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    written = b / f"compare-{a.name}.md"
    assert f"comparison: {written}" in result.output and "ratio B/A" in result.output
    text = written.read_text()
    title = text.splitlines()[0].removeprefix("## ")
    rows = table_rows(text, title)
    assert len(rows) == len(compare_runs(a, b).rows)
    assert {r["ratio B/A"] for r in rows if not r["quantity"].startswith("metric")} == {"2"}
    out = tmp_path / "cmp.md"
    result = CliRunner().invoke(cli, ["report", "--compare", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0 and out.read_text() == text


def test_runs_of_different_experiments_are_refused(tmp_path: Path) -> None:
    a = make_run(tmp_path, experiment="fx").path
    b = make_run(tmp_path, experiment="other").path
    with pytest.raises(ConfigError, match="same experiment"):
        compare_runs(a, b)


def test_report_needs_a_run_dir_or_compare(runs: tuple[Path, Path]) -> None:
    a, b = runs
    for args in ([], [str(a), "--compare", str(a), str(b)], [str(a), "--out", "x.md"]):
        result = CliRunner().invoke(cli, ["report", *args])
        assert isinstance(result.exception, ConfigError), (args, result.output)
        assert result.exception.exit_code == 2


def test_json_through_the_installed_command(runs: tuple[Path, Path]) -> None:
    """`report --json` and `report --compare A B --json`: one JSON document on stdout; the
    rows are the written table's, each a header-keyed object; every wall-time ratio is 2."""
    import json

    from tests.entry import edgeferry

    a, b = runs
    done = edgeferry("report", str(a), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert Path(out["report_md"]).is_file() and Path(out["report_html"]).is_file()
    assert Path(out["report_md"]).parent == a
    done = edgeferry("report", "--compare", str(a), str(b), "--json")
    assert done.returncode == 0, done.stderr
    cmp = json.loads(done.stdout)
    text = Path(cmp["comparison"]).read_text()
    written = table_rows(text, text.splitlines()[0].removeprefix("## "))
    assert cmp["rows"] == written
    assert {r["ratio B/A"] for r in cmp["rows"] if not r["quantity"].startswith("metric")} \
        == {"2"}
