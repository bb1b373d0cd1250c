"""`edgeferry ui`: serve the UI server (seed 002's web UI and REST API) and print its URL.

    edgeferry ui --config ui.yaml                 # serve until Ctrl-C
    edgeferry ui --config ui.yaml --url-only      # print the URL the config serves, and exit

The configuration is the UI agent's (`agents.ui.agent`: listen address, the lab CA, the UI's
certificate ``ui.<host>`` and key, the audit agent's address and the owner-token key shared
with it). The browser must trust the lab CA (import ``ca.crt``) or accept the certificate.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeferry.errors import ConfigError


def url_of(host: str, port: int) -> str:
    """The HTTPS URL a browser on the host opens for a server listening on host:port."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"https://{shown}:{port}/"


@click.command("ui")
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The UI server's configuration file (agents/ui/agent.py documents it).")
@click.option("--listen", metavar="HOST:PORT", help="Override the configured address.")
@click.option("--url-only", is_flag=True, help="Print the URL and exit without serving.")
def ui(config_path: Path, listen: str | None, url_only: bool) -> None:
    """Serve the data-audit web UI and REST API over HTTPS and print its URL."""
    from agents.common.errors import AgentError
    from agents.common.runner import config_from_argv

    argv = ["--config", str(config_path), *(["--listen", listen] if listen else [])]
    try:
        config = config_from_argv("ui", argv)
    except AgentError as err:
        raise ConfigError(f"{config_path}: {err}") from None
    click.echo(f"UI server: {url_of(config.listen_host, config.listen_port)} "
               f"(REST API under /api/v1, OpenAPI at /api/v1/openapi.json)")
    if url_only:
        return
    from agents.ui.__main__ import main

    sys.stdout.flush()
    code = main(argv)
    if code:
        raise click.exceptions.Exit(code)
