"""`edgeferry results RUN_DIR`: a run's trials as a table (one row per trial x phase), exported.

The same frame as `edgeferry.reports.frame.load_results(run_dir)` in Python.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from edgeferry.errors import ConfigError
from edgeferry.reports.frame import json_rows, load_results, overview, summary_table
from edgeferry.reports.render import Table


def print_table(table: Table, console: Console | None = None) -> None:
    """A report table on the terminal (rich), with its note underneath."""
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    shown = RichTable(title=table.title, title_justify="left")
    for cell in table.header:
        shown.add_column(cell)
    for row in table.rows:
        shown.add_row(*(Text(cell) for cell in row))
    console.print(shown if table.rows else Text(f"{table.title}: (none)"))
    if table.note:
        console.print(Text(table.note, style="dim"))


def _export(write: Any, out: Path) -> None:
    try:
        write(out)
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err.strerror or err}") from None


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print the rows as JSON (an object with the run, counts and `rows`).")
@click.option("--parquet", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the frame to this Parquet file (pyarrow).")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Also write the frame to this CSV file.")
def results(run_dir: Path, as_json: bool, parquet: Path | None, csv_out: Path | None) -> None:
    """One row per trial x phase of RUN_DIR's trials.jsonl: parameters as `param.<name>`
    columns, metrics as `metric.<name>`, wall_s/bytes/outcomes; summary, JSON or export."""
    frame = load_results(run_dir)
    written: list[Path] = []
    if parquet is not None:
        _export(lambda out: frame.to_parquet(out, index=False), parquet)
        written.append(parquet)
    if csv_out is not None:
        _export(lambda out: frame.to_csv(out, index=False), csv_out)
        written.append(csv_out)
    facts = overview(frame)
    if as_json:
        click.echo(json.dumps({"run_dir": str(run_dir), **facts, "rows": json_rows(frame)},
                              indent=2, default=str))
        for path in written:
            click.echo(f"wrote {path}", err=True)
        return
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    console.print(f"{run_dir}: {facts['trials']} trials ({facts['measured']} measured, "
                  f"{facts['warmups']} warm-ups, {facts['failed']} failed), "
                  f"{facts['row_count']} rows x {len(facts['columns'])} columns", markup=False)
    console.print("parameters: " + (", ".join(facts["parameters"]) or "-"), markup=False)
    console.print("metrics: " + (", ".join(facts["metrics"]) or "-"), markup=False)
    print_table(summary_table(frame), console)
    for path in written:
        console.print(f"wrote {path}", markup=False)
