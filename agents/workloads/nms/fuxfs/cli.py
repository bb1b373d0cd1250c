"""The fuxfs command: ``python -m agents.workloads.nms.fuxfs MOUNTPOINT ...`` (see the package
docstring for its options)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..auth import AuthenticationFailed, SharedKeyAuth
from ..client import NmsClient, NmsError, NmsUnavailable, Resolver, static_resolver
from ..tls import SERVER_NAME, ClientTls
from .device import NmsDevice
from .fuse import mount
from .layout import FuxfsCorrupt
from .volume import DEFAULT_CACHE_BLOCKS, DEFAULT_VOLUME, FuxVolume


def _endpoint(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"{value!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def file_resolver(path: Path, fallback: tuple[str, int] | None = None) -> Resolver:
    """Resolve the NMS from a file holding ``HOST:PORT``, re-read at every (re)connect."""

    def resolve() -> tuple[str, int]:
        try:
            return _endpoint(path.read_text())
        except (OSError, argparse.ArgumentTypeError):
            if fallback is None:
                raise
            return fallback

    return resolve


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agents.workloads.nms.fuxfs",
                                description="Mount a fuxfs volume stored on a Network Memory "
                                            "Server (runs in the foreground)")
    p.add_argument("mountpoint", type=Path)
    p.add_argument("--server", type=_endpoint, metavar="HOST:PORT",
                   help="the NMS address (the fallback when --server-file is given)")
    p.add_argument("--server-file", type=Path, metavar="PATH",
                   help="file holding HOST:PORT, re-read at every reconnect (after a migration)")
    p.add_argument("--key-file", type=Path, required=True, help="session key file (mode 0600)")
    p.add_argument("--ca-file", type=Path, default=os.environ.get("NMS_CA_FILE"),
                   help="the lab CA certificate the NMS certificate must chain to "
                        "(default: $NMS_CA_FILE)")
    p.add_argument("--server-name", default=SERVER_NAME,
                   help="the name the NMS certificate must carry (default: %(default)s)")
    p.add_argument("--volume", default=DEFAULT_VOLUME, help="volume name (default: %(default)s)")
    p.add_argument("--client-id", default=os.environ.get("USER", "fuxfs"))
    p.add_argument("--retry-deadline", type=float, default=120.0,
                   help="seconds to keep reconnecting before an operation fails with EIO")
    p.add_argument("--cache-blocks", type=int, default=DEFAULT_CACHE_BLOCKS)
    p.add_argument("--debug", action="store_true", help="log every FUSE call")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if args.server is None and args.server_file is None:
        parser.error("give --server HOST:PORT or --server-file PATH")
    if args.ca_file is None:
        parser.error("give --ca-file (the lab CA certificate) or set NMS_CA_FILE")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s fuxfs %(levelname)s %(message)s")
    if not args.mountpoint.is_dir():
        print(f"fuxfs: mount point {args.mountpoint} is not a directory; mkdir it first",
              file=sys.stderr)
        return 2
    try:
        auth = SharedKeyAuth.from_file(args.key_file, args.client_id)
    except (OSError, ValueError) as err:
        print(f"fuxfs: cannot use key file {args.key_file}: {err}", file=sys.stderr)
        return 2
    try:
        tls = ClientTls.from_ca_file(Path(args.ca_file), args.server_name)
    except OSError as err:
        print(f"fuxfs: cannot use CA file {args.ca_file}: {err}", file=sys.stderr)
        return 2
    resolver = (file_resolver(args.server_file, args.server) if args.server_file
                else static_resolver(*args.server))
    client = NmsClient(resolver, auth, tls, retry_deadline=args.retry_deadline)
    try:
        volume = FuxVolume.load(NmsDevice(client), args.volume, cache_blocks=args.cache_blocks)
    except AuthenticationFailed as err:
        print(f"fuxfs: the NMS was not authenticated or refused the session key ({err}); "
              "check --key-file and --ca-file", file=sys.stderr)
        return 1
    except (NmsError, NmsUnavailable, FuxfsCorrupt, OSError) as err:
        print(f"fuxfs: cannot open volume {args.volume!r}: {err}", file=sys.stderr)
        return 1
    try:
        mount(volume, args.mountpoint, debug=args.debug)
    except (RuntimeError, OSError) as err:
        print(f"fuxfs: mounting on {args.mountpoint} failed: {err}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0

