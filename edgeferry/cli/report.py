"""`edgeferry report RUN_DIR`: render report.md and report.html from a run's raw results."""

from __future__ import annotations

from pathlib import Path

import click

from edgeferry.reports.render import write_report


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
def report(run_dir: Path) -> None:
    """Write RUN_DIR/report.md and RUN_DIR/report.html (tables, plots, comparisons)."""
    md, html = write_report(run_dir)
    click.echo(f"report: {md}")
    click.echo(f"report: {html}")
