"""The `edgeferry` command: thin verbs over the typed library, one module per verb."""

from __future__ import annotations

import sys

import click

from edgeferry import __version__
from edgeferry.cli import audit as audit_cmd
from edgeferry.cli import deploy as deploy_cmd
from edgeferry.cli import lab as lab_cmd
from edgeferry.cli import pending
from edgeferry.cli import pki as pki_cmd
from edgeferry.cli import report as report_cmd
from edgeferry.cli import results as results_cmd
from edgeferry.cli import run as run_cmd
from edgeferry.cli import smf as smf_cmd
from edgeferry.cli import ui as ui_cmd
from edgeferry.errors import EdgeferryError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeferry")
def cli() -> None:
    """Provision edge labs, deploy the agents and run secure service-migration experiments."""


cli.add_command(lab_cmd.lab)
cli.add_command(deploy_cmd.deploy)
cli.add_command(deploy_cmd.verify)
cli.add_command(run_cmd.run)
cli.add_command(report_cmd.report)
cli.add_command(results_cmd.results)
cli.add_command(audit_cmd.audit)
cli.add_command(smf_cmd.smf)
cli.add_command(pki_cmd.pki)
cli.add_command(ui_cmd.ui)
for _cmd in pending.COMMANDS:
    cli.add_command(_cmd)


def main(argv: list[str] | None = None) -> int:
    """Entry point: turn library errors into one-line messages and documented exit codes."""
    try:
        # Without standalone mode click *returns* the code of a `click.exceptions.Exit` (a
        # DENY, a pending verb) instead of raising it; the commands themselves return None.
        rc = cli.main(args=argv, prog_name="edgeferry", standalone_mode=False)
    except EdgeferryError as err:
        click.secho(f"edgeferry: error: {err}", fg="red", err=True)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("edgeferry: aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return 2
    except click.exceptions.Exit as err:
        return err.exit_code
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
