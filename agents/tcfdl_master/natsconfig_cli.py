"""``python -m agents.tcfdl_master nats-config``: write one cluster's nats-server configuration
(agents.tcfdl_master.natsconf) from flags, for the deployment (a systemd unit then runs
``nats-server -c <file>``)::

    python -m agents.tcfdl_master nats-config --cluster b --listen 0.0.0.0:4222 \\
        --cert /etc/edgeferry/tls/nats.crt --key /etc/edgeferry/tls/nats.key \\
        --ca /etc/edgeferry/tls/ca.crt --store-dir /var/lib/edgeferry/nats \\
        --master tcfdl-master.edge2 --worker tcfdl-worker.edge3 --client tcfdl-client.edge2 \\
        --hub a=10.10.0.11:7422 --out /etc/edgeferry/nats-b.conf
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from agents.tcfdl_master.natsconf import ORGANIZATION, ClusterNats, Hub, render


def _hub(value: str) -> Hub:
    cluster, sep, url = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--hub {value!r}: expected CLUSTER=HOST:PORT")
    return Hub(cluster, url)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, render, write the file (0640); exit code 0, or 2 for bad input."""
    p = argparse.ArgumentParser(prog="python -m agents.tcfdl_master nats-config")
    p.add_argument("--cluster", required=True)
    p.add_argument("--listen", required=True, help="HOST:PORT for clients")
    p.add_argument("--leaf-listen", default="", help="HOST:PORT where other clusters join")
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--store-dir", type=Path, required=True)
    p.add_argument("--master", action="append", default=[])
    p.add_argument("--worker", action="append", default=[])
    p.add_argument("--client", action="append", default=[])
    p.add_argument("--leaf", action="append", default=[], help="CN of a joining server")
    p.add_argument("--hub", action="append", default=[], type=_hub)
    p.add_argument("--organization", default=ORGANIZATION, help="the certificates' O")
    p.add_argument("--role-unit", action="store_true",
                   help="certificates carry OU=<role> (the deployment's pki role)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    try:
        text = render(ClusterNats(a.cluster, a.listen, a.cert, a.key, a.ca, a.store_dir,
                                  masters=a.master, workers=a.worker, clients=a.client,
                                  leaf_listen=a.leaf_listen, hubs=a.hub, leaves=a.leaf,
                                  organization=a.organization, role_unit=a.role_unit))
    except ValueError as err:
        print(f"nats-config: error: {err}")
        return 2
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    print(f"wrote {a.out}")
    return 0
