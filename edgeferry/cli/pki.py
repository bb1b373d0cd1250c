"""`edgeferry pki ...`: revoke a lab certificate and list the revoked ones.

    edgeferry pki revoke node.edge1 -i inventory/lab --reason key_compromise
    edgeferry pki list -i inventory/lab

Revoking is recorded on the controller; `edgeferry deploy` then issues a new key and
certificate, publishes the CRL to every host and the agents refuse the revoked certificate.
"""

from __future__ import annotations

import click

from edgeferry.cli.output import echo_json, json_option
from edgeferry.deploy.revocation import REASONS, load_revocations, pki_dir, revoke
from edgeferry.deploy.runner import resolve_inventory

_INVENTORY_HELP = "Inventory folder (default: inventory/lab, written by `edgeferry lab up`)."


@click.group("pki")
def pki() -> None:
    """Lab CA certificates: revoke one, list the revoked ones."""


@pki.command("revoke")
@click.argument("name")
@click.option("-i", "--inventory", "inventory", default=None, help=_INVENTORY_HELP)
@click.option("--reason", type=click.Choice(REASONS), default="unspecified", show_default=True)
def revoke_cmd(name: str, inventory: str | None, reason: str) -> None:
    """Revoke certificate NAME (node.edge1, host.edge1, controller) of the inventory's lab CA."""
    folder = pki_dir(resolve_inventory(inventory))
    entry = revoke(folder, name, reason)
    click.echo(f"revoked {entry.name} (serial {entry.serial_number:x}, {entry.reason}); "
               "its key and certificate were deleted on the controller.")
    click.echo("Run `edgeferry deploy` to issue a new one and publish the CRL to every host; "
               "until then the hosts still accept it.")


@pki.command("list")
@click.option("-i", "--inventory", "inventory", default=None, help=_INVENTORY_HELP)
@json_option
def list_cmd(inventory: str | None, as_json: bool) -> None:
    """List the revoked certificates that have not expired yet."""
    entries = load_revocations(pki_dir(resolve_inventory(inventory)))
    if as_json:
        return echo_json(entries)
    if not entries:
        click.echo("no revoked certificates")
    for e in entries:
        click.echo(f"{e.name}  serial {e.serial_number:x}  revoked {e.revocation_date}  "
                   f"{e.reason}  expires {e.not_after}")
