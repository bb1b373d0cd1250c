"""Shared ``__main__`` plumbing: flags + config file -> logging -> server -> serve until signalled.

An agent's ``__main__.py``::

    import sys
    from agents.common.runner import run_agent

    def setup(server: AgentServer, config: AgentConfig) -> None:
        store = Store.open(config.resolved_data_dir / "ras.sqlite3")
        server.on_stop(store.close)
        server.add(ras_service_pb2_grpc.add_RasServiceServicer_to_server,
                   RasServicer(store, config.settings_as(RasSettings)),
                   "edgeferry.ras.v1.RasService", policy=RAS_POLICY)

    if __name__ == "__main__":
        sys.exit(run_agent("ras", setup))

Flags (every one overrides the config file)::

    --config PATH          default /etc/edgeferry/<agent>.yaml when that file exists
    --listen HOST:PORT     or --host / --port
    --ca-cert/--cert/--key PATH
    --data-dir PATH  --log-level LEVEL  --log-file PATH  --grace SECONDS
    --insecure-plaintext   loopback only
    --set KEY=VALUE        any dotted config key, value parsed as YAML (e.g. settings.peers=[a,b])
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from agents.common.config import AgentConfig, default_config_path, load_config
from agents.common.errors import EXIT_OK, AgentConfigError, AgentError
from agents.common.logging import configure_logging, get_logger
from agents.common.server import AgentServer

SetupFn = Callable[[AgentServer, AgentConfig], None]


def build_arg_parser(agent: str, description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m agents.{agent}",
        description=description or f"edgeferry {agent} agent",
    )
    parser.add_argument("--config", type=Path, help=f"default {default_config_path(agent)}")
    parser.add_argument("--listen", metavar="HOST:PORT")
    parser.add_argument("--host", dest="listen_host")
    parser.add_argument("--port", dest="listen_port", type=int)
    parser.add_argument("--ca-cert", dest="tls.ca_cert", type=Path)
    parser.add_argument("--cert", dest="tls.cert", type=Path)
    parser.add_argument("--key", dest="tls.key", type=Path)
    parser.add_argument("--data-dir", dest="data_dir", type=Path)
    parser.add_argument("--log-level", dest="log_level", type=str.upper)
    parser.add_argument("--log-file", dest="log_file", type=Path)
    parser.add_argument("--grace", dest="grace_seconds", type=float)
    parser.add_argument(
        "--insecure-plaintext",
        dest="insecure_plaintext",
        action="store_const",
        const=True,
        help="serve without TLS (loopback addresses only)",
    )
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    return parser


def _split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise AgentConfigError(f"--listen {value!r}: expected HOST:PORT (e.g. 0.0.0.0:50051)")
    return host.strip("[]"), int(port)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted-key overrides from parsed flags (only flags that were given)."""
    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key in ("config", "listen", "sets") or value is None:
            continue
        out[key] = str(value) if isinstance(value, Path) else value
    if args.listen:
        out["listen_host"], out["listen_port"] = _split_listen(args.listen)
    for item in args.sets:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise AgentConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            raise AgentConfigError(f"--set {item!r}: the value is not valid YAML") from None
    return out


def config_from_argv(agent: str, argv: Sequence[str] | None = None) -> AgentConfig:
    """Parse ``argv`` and load the configuration (file, then flags)."""
    args = build_arg_parser(agent).parse_args(argv)
    path: Path | None = args.config
    if path is None and default_config_path(agent).exists():
        path = default_config_path(agent)
    return load_config(path, overrides_from_args(args), defaults={"name": agent})


def serve(config: AgentConfig, setup: SetupFn | None = None) -> AgentServer:
    """Build and start a server for ``config`` (without signal handling or waiting)."""
    server = AgentServer(config)
    if setup is not None:
        setup(server, config)
    server.start()
    return server


def run_agent(agent: str, setup: SetupFn | None = None, argv: Sequence[str] | None = None) -> int:
    """Run an agent until SIGTERM/SIGINT; return the process exit code.

    Errors an operator can fix (bad config, missing or unsafe key files, port in use) print one
    line on stderr and return their exit code instead of a traceback.
    """
    try:
        config = config_from_argv(agent, argv)
        configure_logging(config.name, config.log_level, log_file=config.log_file)
        server = AgentServer(config)
        if setup is not None:
            setup(server, config)
        server.start()
    except AgentError as err:
        print(f"{agent}: error: {err}", file=sys.stderr)
        return err.exit_code
    server.install_signal_handlers()
    get_logger(f"{config.name}.runner").info("serving", address=server.address, pid=os.getpid())
    server.wait()
    return EXIT_OK
