"""`edgeferry deploy` and `edgeferry verify`: provision an inventory and check it."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from edgeferry.cli.output import echo_json, json_option
from edgeferry.deploy.runner import PlaybookResult, resolve_inventory
from edgeferry.deploy.stamp import deploy_site
from edgeferry.deploy.verify import run_infra_tests
from edgeferry.errors import OperationFailed

_INVENTORY_HELP = "Inventory folder (default: inventory/lab, written by `edgeferry lab up`)."


def recap_table(result: PlaybookResult) -> Table:
    """The per-host recap of a run as a table."""
    table = Table(title=f"{result.playbook} on {result.inventory.name}: {result.status}")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for recap in result.hosts.values():
        style = None if recap.healthy else "red"
        table.add_row(recap.host, str(recap.ok), str(recap.changed), str(recap.failed),
                      str(recap.unreachable), str(recap.skipped), str(recap.rescued),
                      str(recap.ignored), style=style)
    return table


@click.command("deploy")
@click.option("-i", "--inventory", "inventory", default=None, help=_INVENTORY_HELP)
@click.option("--tags", default=None, help="Only these role tags, e.g. pki,agents.")
@click.option("--limit", default=None, help="Only these hosts or groups (ansible --limit).")
@click.option("--check", is_flag=True, help="Dry run (ansible --check).")
@click.option("--force", is_flag=True,
              help="Run the playbook even when every host's deploy stamp says nothing changed.")
@click.option("--strategy", default=None, metavar="NAME",
              help="Ansible strategy: mitogen_linear (default; EDGEFERRY_ANSIBLE_STRATEGY "
                   "changes the default), linear (ansible's own), free, mitogen_free, ...")
@json_option
def deploy(inventory: str | None, tags: str | None, limit: str | None, check: bool,
           force: bool, strategy: str | None, as_json: bool) -> None:
    """Provision the hosts and deploy the agents (playbooks/site.yml via ansible-runner).

    A full deploy is skipped when every host holds a deploy stamp with the digest of the
    current inputs (project files, inventory, PKI, registry passwords; younger than 12 h);
    --force runs it anyway. With --json the progress goes to stderr and stdout gets the recap
    as JSON."""
    inv = resolve_inventory(inventory)
    console = Console(stderr=as_json)
    console.print(f"deploying playbooks/site.yml to {inv}")
    done = deploy_site(inv, tags=tags.split(",") if tags else None, limit=limit, check=check,
                       force=force, strategy=strategy,
                       progress=lambda line: console.print(line, highlight=False, markup=False))
    result = done.result
    if as_json:
        echo_json({"skipped": result is None, "ok": done.ok, "seconds": round(done.seconds, 3),
                   "stamps": done.verdict.reasons if done.verdict else None,
                   "status": result.status if result else "skipped",
                   "rc": result.rc if result else 0,
                   "strategy": result.strategy if result else None,
                   "run_dir": result.run_dir if result else None,
                   "hosts": result.hosts if result else {},
                   "failures": result.failures if result else []})
    elif result is not None:
        console.print(recap_table(result))
        console.print(f"took {done.seconds:.1f} s (strategy {result.strategy}); artifacts in "
                      f"{result.run_dir}")
    else:
        console.print(f"took {done.seconds:.1f} s; nothing deployed (use --force to run the "
                      "playbook anyway)")
    if result is not None and not result.ok:
        first = result.failures[0] if result.failures else f"status {result.status}"
        raise OperationFailed(f"deploy failed (rc={result.rc}): {first}")


@click.command("verify")
@click.option("-i", "--inventory", "inventory", default=None, help=_INVENTORY_HELP)
@json_option
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def verify(inventory: str | None, as_json: bool, pytest_args: tuple[str, ...]) -> None:
    """Check the deployed hosts with the testinfra suite (tests/infra). With --json the suite's
    output goes to stderr and stdout gets the counts from its junit report."""
    from edgeferry.deploy.verify import junit_summary

    inv = resolve_inventory(inventory)
    rc, run_dir = run_infra_tests(inv, list(pytest_args), output_to_stderr=as_json)
    junit = run_dir / "junit.xml"
    if as_json:
        echo_json({"inventory": inv, "rc": rc, "junit": junit,
                   **(junit_summary(junit) if junit.is_file() else {})})
    else:
        click.echo(f"junit report: {junit}")
    if rc != 0:
        raise OperationFailed(f"verify failed: the testinfra suite exited with {rc}")
