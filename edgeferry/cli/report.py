"""`edgeferry report RUN_DIR`: render report.md and report.html from a run's raw results;
`edgeferry report --compare A B`: per-group medians of two runs of one experiment, B/A."""

from __future__ import annotations

from pathlib import Path

import click

from edgeferry.cli.output import echo_json, json_option
from edgeferry.errors import ConfigError
from edgeferry.reports.render import write_report


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
                required=False)
@click.option("--compare", nargs=2, type=click.Path(path_type=Path, file_okay=False),
              default=None, metavar="A B",
              help="Compare two run directories of the same experiment instead: medians of A "
                   "and B per part, parameters and phase/metric, and the ratio B/A.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="With --compare: where the Markdown table goes "
                   "(default: B/compare-<A's run id>.md).")
@json_option
def report(run_dir: Path | None, compare: tuple[Path, Path] | None, out: Path | None,
           as_json: bool) -> None:
    """Write RUN_DIR/report.md and RUN_DIR/report.html (tables, plots, comparisons), or with
    --compare A B the medians of two runs side by side."""
    if compare:
        if run_dir is not None:
            raise ConfigError("give either RUN_DIR or --compare A B, not both")
        _compare(*compare, out, as_json)
        return
    if run_dir is None:
        raise ConfigError("give a run directory (edgeferry report RUN_DIR) or --compare A B")
    if out is not None:
        raise ConfigError("--out goes with --compare A B")
    md, html = write_report(run_dir)
    if as_json:
        echo_json({"run_dir": run_dir, "report_md": md, "report_html": html})
        return
    click.echo(f"report: {md}")
    click.echo(f"report: {html}")


def _compare(run_a: Path, run_b: Path, out: Path | None, as_json: bool) -> None:
    from edgeferry.cli.results import print_table
    from edgeferry.reports.compare import compare_runs, write_comparison

    table = compare_runs(run_a, run_b)
    written = write_comparison(table, out or Path(run_b) / f"compare-{Path(run_a).name}.md")
    if as_json:  # one object per row, keyed by the table's header
        echo_json({"comparison": written, "title": table.title, "note": table.note,
                   "rows": [dict(zip(table.header, row, strict=True)) for row in table.rows]})
        return
    print_table(table)
    click.echo(f"comparison: {written}")
