"""``python -m agents.tcfdl_client --config /etc/edgeferry/tcfdl_client.yaml``: offload tasks and
write one JSON line per task (phases in ns), for a scenario or by hand.

Configuration (tls as every agent; ``settings``; any key also by ``--set settings.KEY=VALUE``)::

    settings:
      cluster: a
      nats: tls://10.10.0.11:4222
      nats_server_name: ""
      manager: 10.10.0.11:50070
      proxy: tcfdl-proxy.edge1        # this cluster's TEE proxy (its attestation is checked)
      function: mlp
      schemes: [none, hse, eae-umbral, eae-p256]
      sizes: [1024, 262144, 4194304]  # task bytes (random data)
      runs: 10                        # per scheme and size, after `warmup`
      warmup: 2
      out: /var/lib/edgeferry/tcfdl-client/results.jsonl   # "" -> stdout
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.common.client import secure_channel_from_config
from agents.common.errors import EXIT_ENVIRONMENT, EXIT_OK, AgentConfigError, AgentError
from agents.common.runner import config_from_argv
from agents.common.tls import certificate_cn
from agents.security.tcfdl.names import ADDRESS_PATTERN, CLUSTER_PATTERN, NATS_URL_PATTERN
from agents.tcfdl_client.offload import OffloadClient, OffloadRefused, OffloadUnavailable
from agents.tcfdl_manager.client import ManagerClient
from agents.tcfdl_master.client import connect, tls_context


class ClientSettings(BaseModel):
    """``settings`` of the offloading command (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str = Field(pattern=CLUSTER_PATTERN)
    nats: str = Field(pattern=NATS_URL_PATTERN)
    nats_server_name: str = ""
    manager: str = Field(pattern=ADDRESS_PATTERN)
    proxy: str = Field(pattern=r"^tcfdl-proxy\.[A-Za-z0-9._-]{1,128}$")
    function: str = "mlp"
    schemes: list[str] = Field(default_factory=lambda: ["none", "hse", "eae-umbral",
                                                        "eae-p256"], min_length=1)
    sizes: list[int] = Field(default_factory=lambda: [1024], min_length=1)
    runs: int = Field(default=10, ge=1, le=100_000)
    warmup: int = Field(default=2, ge=0, le=1000)
    timeout_s: float = Field(default=60.0, gt=0)
    out: str = ""


async def run(argv: Sequence[str] | None = None) -> int:
    """Offload every (scheme, size) `runs` times; one JSON line per measured task."""
    config = config_from_argv("tcfdl_client", argv)
    s = config.settings_as(ClientSettings)
    if config.tls is None:
        raise AgentConfigError("the TCFDL client needs tls (its identity is its certificate)")
    me = certificate_cn(config.tls.cert)
    channel = secure_channel_from_config(config.tls, s.manager)
    nc = await connect(s.nats, tls_context(config.tls.ca_cert, config.tls.cert,
                                           config.tls.key),
                       name=me, server_name=s.nats_server_name)
    client = OffloadClient(nc, ManagerClient(channel), me=me, cluster=s.cluster, proxy=s.proxy,
                           ca_cert=config.tls.ca_cert)
    out = open(s.out, "a") if s.out else sys.stdout  # noqa: SIM115
    try:
        for size in s.sizes:
            data = os.urandom(size)
            for scheme in s.schemes:
                for i in range(s.warmup + s.runs):
                    row: dict[str, Any] = {"function": s.function, "scheme": scheme,
                                           "bytes": size, "run": i - s.warmup,
                                           "warmup": i < s.warmup, "ts": time.time()}
                    try:
                        r = await client.offload(s.function, data, scheme=scheme,
                                                 timeout=s.timeout_s)
                        row.update(ok=True, total_ns=r.total_ns, phases=r.phases)
                    except (OffloadRefused, OffloadUnavailable) as err:
                        row.update(ok=False, error=str(err))
                    out.write(json.dumps(row) + "\n")
                    out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
        await nc.close()
        channel.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes as every agent's: 2 bad configuration, 3 unreachable services."""
    try:
        return asyncio.run(run(argv))
    except AgentError as err:
        print(f"tcfdl_client: error: {err}", file=sys.stderr)
        return err.exit_code
    except Exception as err:  # NATS or the manager unreachable
        print(f"tcfdl_client: error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_ENVIRONMENT


if __name__ == "__main__":
    sys.exit(main())
