"""Verbs whose features arrive with later issues: each says which issue brings it and exits 4."""

from __future__ import annotations

import click

from edgeferry.errors import EXIT_NOT_IMPLEMENTED


def _pending(name: str, summary: str, issue: str) -> click.Command:
    @click.command(name=name, help=f"{summary} (arrives with {issue}).",
                   context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def _cmd(args: tuple[str, ...]) -> None:
        click.echo(f"edgeferry {name}: not available yet; it arrives with {issue}.", err=True)
        raise click.exceptions.Exit(EXIT_NOT_IMPLEMENTED)

    return _cmd


COMMANDS: list[click.Command] = []
