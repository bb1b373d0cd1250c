"""report.html comes from the Jinja2 template: Markdown rendered, data escaped; report.md and
the `edgeferry report RUN_DIR` verb as before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeferry.cli.main import cli
from edgeferry.experiments.results import RunDir
from tests.unit.reports.rundir import make_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    rd = make_run(tmp_path_factory.mktemp("runs"))
    result = CliRunner().invoke(cli, ["report", str(rd.path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"report: {rd.path / 'report.md'}",
                                          f"report: {rd.path / 'report.html'}"]
    return rd


def test_markdown_is_rendered_not_shown(run: RunDir) -> None:
    html = (run.path / "report.html").read_text()
    assert "<strong>complete</strong>" in html
    assert "**" not in html
    assert "<code>trials.jsonl</code>" in html and "`" not in html
    assert "<code>total</code> is the sum" in html  # a table's note
    md = (run.path / "report.md").read_text()
    assert "status **complete**" in md and "`trials.jsonl`" in md  # report.md stays Markdown


def test_data_is_escaped(run: RunDir) -> None:
    html = (run.path / "report.html").read_text()
    assert "<script>" not in html
    assert "RuntimeError: &lt;script&gt;boom&lt;/script&gt;" in html
    assert "hosts=[&#39;edge1&#39;, &#39;edge2&#39;]" in html


def test_tables_and_plots_are_all_there(run: RunDir) -> None:
    html = (run.path / "report.html").read_text()
    md = (run.path / "report.md").read_text()
    assert re.findall(r"<h2>([^<]+)</h2>", html) == [*re.findall(r"^## (.+)$", md, re.M)]
    assert html.count("<img ") == md.count("![") > 0
    assert html.count("data:image/png;base64,") == md.count("![")


def test_an_old_run_dir_reports_as_before(run: RunDir) -> None:
    """Run dirs written before step durations existed: the summary has the same lines."""
    md = (run.path / "report.md").read_text()
    summary = [line for line in md.split("\n## ")[0].splitlines() if line.startswith("- ")]
    assert [line[2:].split()[0].rstrip(":,") for line in summary] == [
        "experiment", "run", "trials", "edgeferry", "host", "lab", "raw"]


def test_step_durations_appear_in_the_summary(tmp_path: Path) -> None:
    rd = make_run(tmp_path)
    rd.record_step("target", 0.0, 1.25)
    rd.record_step("trials", 0.0, 10.0, "interrupted")
    rd.record_step("trials", 0.0, 5.5)  # resumed: the sessions add up
    result = CliRunner().invoke(cli, ["report", str(rd.path)])
    assert result.exit_code == 0, result.output
    md = (rd.path / "report.md").read_text()
    assert "- step durations: target 1.2 s, trials 15.5 s" in md
    assert "step durations: target 1.2 s, trials 15.5 s" in (rd.path / "report.html").read_text()
