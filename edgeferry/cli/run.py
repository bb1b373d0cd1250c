"""`edgeferry run EXPERIMENT.yaml`: run an experiment definition and write its report."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click
from rich.console import Console

from edgeferry import resources
from edgeferry.cli.output import echo_json, json_option
from edgeferry.errors import OperationFailed
from edgeferry.experiments.progress import RichProgress
from edgeferry.experiments.runner import RunOptions, run_experiment
from edgeferry.experiments.schema import load_experiment
from edgeferry.experiments.steps import DefaultSteps
from edgeferry.reports.render import write_report

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def shipped_definition(path: Path) -> Path:
    """`path` itself when it exists; else the definition edgeferry ships under that relative path
    (`experiments/quick.yaml` or `quick.yaml` from any folder, also from an installed wheel)."""
    if path.exists() or path.is_absolute():
        return path
    shipped = resources.shipped_root()
    for candidate in (shipped / path, resources.experiments_dir() / path):
        if candidate.is_file():
            return candidate
    return path


@click.command()
@click.argument("experiment", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--resume", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Continue this unfinished run directory (default: the newest unfinished run "
                   "of the same definition is resumed automatically).")
@click.option("--new", is_flag=True, help="Start a new run even if an unfinished one exists.")
@click.option("--skip-deploy", is_flag=True, help="Do not deploy (agents are already deployed).")
@click.option("--force-deploy", is_flag=True,
              help="Run the deploy playbook even when every host's deploy stamp says nothing "
                   "changed.")
@click.option("--skip-verify", is_flag=True, help="Skip the host verification before trials.")
@click.option("--check", is_flag=True, help="Only validate the definition and the scenarios.")
@click.option("--reports-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where run directories go (default: <workspace>/reports).")
@json_option
def run(experiment: Path, resume: Path | None, new: bool, skip_deploy: bool, force_deploy: bool,
        skip_verify: bool, check: bool, reports_dir: Path | None, as_json: bool) -> None:
    """Run every trial of EXPERIMENT (a YAML definition) and write report.md/report.html.
    A relative path that does not exist names a shipped definition (e.g. experiments/quick.yaml).
    With --json the progress goes to stderr and stdout gets the outcome as JSON."""
    from edgeferry.experiments.matrix import expand
    from edgeferry.experiments.runner import resolve_scenarios

    experiment = shipped_definition(experiment)
    exp = load_experiment(experiment)
    if check:
        from edgeferry.experiments.steps import check_target

        resolve_scenarios(exp)
        check_target(exp)
        trials = len(expand(exp))
        if as_json:
            return echo_json({"experiment": str(experiment), "valid": True, "trials": trials,
                              "parts": len(exp.enabled_parts)})
        console.print(f"{experiment}: valid; {trials} trials in "
                      f"{len(exp.enabled_parts)} part(s)")
        return
    out = Console(stderr=True, highlight=False) if as_json else console
    progress = RichProgress(out)
    options = RunOptions(resume=resume, new=new, skip_deploy=skip_deploy,
                         skip_verify=skip_verify, reports_root=reports_dir)
    # SIGTERM (a service manager, `kill`) stops a run as Ctrl-C does: the part's teardown runs
    # (a lab scenario's remote processes are stopped) and the run can be resumed
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcome = run_experiment(exp, steps=DefaultSteps(force_deploy=force_deploy),
                                 progress=progress, options=options)
    except KeyboardInterrupt:
        out.print("[yellow]interrupted[/yellow]: run `edgeferry run "
                      f"{experiment}` again to resume")
        raise click.exceptions.Abort() from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    with outcome.run_dir.timed("report"):
        md, html = write_report(outcome.run_dir.path)
    if as_json:
        echo_json({"run_dir": outcome.run_dir.path, "trials_run": outcome.trials_run,
                   "trials_failed": outcome.trials_failed, "total": outcome.total,
                   "resumed": outcome.resumed, "report_md": md, "report_html": html})
    else:
        console.print(f"{outcome.trials_run} trials run ({outcome.trials_failed} failed) of "
                      f"{outcome.total}" + (" (resumed)" if outcome.resumed else ""))
        console.print(f"report: {md}")
        console.print(f"report: {html}")
    if outcome.trials_failed:  # the report is written; scripts still see the failure (exit 1)
        raise OperationFailed(f"{outcome.trials_failed} of {outcome.trials_run} trials failed "
                              f"(see {md})")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
