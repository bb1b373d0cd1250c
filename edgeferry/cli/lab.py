"""`edgeferry lab up|down|status`: the emulated lab on this machine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from edgeferry.errors import ConfigError
from edgeferry.lab.config import LabSpec, format_rate, load_spec
from edgeferry.lab.provider import EmulatedLab
from edgeferry.lab.state import LabState, spec_of_running_lab

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _log(message: str) -> None:
    console.print(f"[dim]…[/dim] {message}")


@click.group()
def lab() -> None:
    """Bring the emulated lab (systemd host containers on a shaped network) up and down."""


_name_option = click.option(
    "--name", default=None, help="Lab name (default: from the lab file, or 'lab')."
)


@lab.command()
@click.option(
    "--lab-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Lab definition YAML (default: the embedded one-control, three-edge lab).",
)
@_name_option
@click.option("--edges", type=int, default=None, help="Number of edge hosts.")
@click.option("--edge-profile", default=None, help="Profile for every edge host (x86, jetson).")
@click.option("--bandwidth", default=None, help="Edge link rate, e.g. 40mbit (default 40mbit).")
@click.option("--subnet", default=None, help="Lab network, e.g. 10.250.0.0/24.")
@click.option(
    "--bandwidth-check/--no-bandwidth-check",
    default=True,
    show_default=True,
    help="Validate the shaping with iperf3 after changes.",
)
def up(
    lab_file: Path | None,
    name: str | None,
    edges: int | None,
    edge_profile: str | None,
    bandwidth: str | None,
    subnet: str | None,
    bandwidth_check: bool,
) -> None:
    """Build the host image if needed, start the hosts, shape links, write the inventory."""
    spec = load_spec(
        lab_file,
        name=name,
        subnet=subnet,
        bandwidth=bandwidth,
        edges=edges,
        edge_profile=edge_profile,
    )
    result = EmulatedLab(spec, log=_log).up(check_bandwidth=bandwidth_check)
    if result.changed:
        for change in result.changes:
            console.print(f"[green]changed[/green] {change}")
    else:
        console.print(f"lab {spec.name!r} is up to date: nothing changed")
    _print_status(spec, result.state)
    console.print(f"inventory: {result.state.inventory}/hosts.yml")


def _spec_for(name: str | None) -> LabSpec:
    lab_name = name or "lab"
    spec = spec_of_running_lab(lab_name)
    if spec is None:
        raise ConfigError(
            f"lab {lab_name!r} is not up (no state); start it with `edgeferry lab up`"
        )
    return spec


@lab.command()
@_name_option
def down(name: str | None) -> None:
    """Remove the lab's containers, network, volumes, shaping, inventory and state."""
    lab_name = name or "lab"
    spec = spec_of_running_lab(lab_name) or load_spec(None, name=lab_name)
    emulated = EmulatedLab(spec, log=_log)
    removed = emulated.down()
    for item in removed:
        console.print(f"[red]removed[/red] {item}")
    left = emulated.leftovers()
    if left:
        raise ConfigError(f"could not remove: {', '.join(left)}")
    if not removed:
        console.print(f"lab {lab_name!r} was not up: nothing to remove")


@lab.command()
@_name_option
@click.option("--json", "as_json", is_flag=True, help="Print the lab state as JSON.")
def status(name: str | None, as_json: bool) -> None:
    """Show hosts, addresses, profiles, shaping and measured bandwidth."""
    spec = _spec_for(name)
    state = LabState.load(spec.name)
    assert state is not None
    ui = deployed_ui(state)
    if as_json:
        import json

        doc = {**state.__dict__, "ui_url": ui[0] if ui else None,
               "ui_ca_cert": str(ui[1]) if ui else None}
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    _print_status(spec, state, live=EmulatedLab(spec, log=_log).host_status())
    if ui:
        console.print(f"UI server: {ui[0]}  (trust the lab CA {ui[1]} in the browser: README, "
                      "'The UI server')")
    else:
        console.print("UI server: not deployed (`edgeferry deploy -i "
                      f"{state.inventory or 'inventory/<lab>'}` places it on the control host)")


def deployed_ui(state: LabState) -> tuple[str, Path] | None:
    """The URL of the UI server deployed on the lab (the first control host's, from the
    controller's deployment manifests) and the lab CA certificate a browser must trust; None
    when it is not deployed."""
    from edgeferry.deploy.manifest import ui_urls
    from edgeferry.deploy.revocation import pki_dir

    if not state.inventory:
        return None
    inventory = Path(state.inventory)
    urls = ui_urls(inventory)
    control = [h for h in state.hosts_by_role("control") if h in urls] or sorted(urls)
    if not control:
        return None
    return urls[control[0]], pki_dir(inventory) / "ca" / "ca.crt"


def _fmt_measured(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    mean, sd = entry["mean_bps"] / 1e6, entry["stdev_bps"] / 1e6
    return f"{mean:.1f} ± {sd:.1f} (n={len(entry['samples_bps'])})"


def _fmt_platform(platform: str, emulation: str | None) -> str:
    """``linux/arm64 (qemu-user)``: the workloads' platform and how they run (the host itself,
    systemd, sshd, Docker engine and agents, is native on every class). "" is the engine's
    own platform."""
    if not platform:
        import platform as host_platform

        from agents.common.platforms import native_platform
        platform = str(native_platform(host_platform.machine()))
    return f"{platform} ({emulation or 'not up'})"


def _print_status(spec: LabSpec, state: LabState,
                  live: dict[str, dict[str, Any]] | None = None) -> None:
    table = Table(title=f"lab {spec.name!r} ({spec.subnet})")
    for column in ("host", "role", "profile", "address", "cpus/mem", "workloads", "shaping"):
        table.add_column(column)
    if live is not None:
        table.add_column("container")
    table.add_column("up Mbit/s (mean ± sd)")
    table.add_column("down Mbit/s (mean ± sd)")
    for host in spec.hosts:
        info = state.hosts.get(host.name, {})
        rate = spec.rate_bps(host)
        bw = state.bandwidth.get(host.name, {})
        row = [
            host.name,
            host.role,
            host.profile
            if host.profile == spec.host_class(host)
            else f"{host.profile} ({spec.host_class(host)})",
            host.address or "-",
            f"{info.get('cpus', '?')} / {info.get('memory_bytes', 0) / 2**30:.1f} GiB",
            _fmt_platform(spec.workload_platform(host), info.get("emulation")),
            format_rate(rate) + " tbf" if rate else "none",
        ]
        if live is not None:
            row.append(live[host.name]["container"])
        row += [_fmt_measured(bw.get("up")), _fmt_measured(bw.get("down"))]
        table.add_row(*row)
    console.print(table)
