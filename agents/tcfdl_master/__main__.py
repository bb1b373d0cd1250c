"""``python -m agents.tcfdl_master --config /etc/edgeferry/tcfdl_master.yaml``: a TCFDL
cluster's master (function registry, routing on the cluster's NATS server).

``python -m agents.tcfdl_master nats-config --cluster a ...`` writes that cluster's nats-server
configuration instead (see agents.tcfdl_master.natsconfig_cli)."""

from __future__ import annotations

import sys

from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer
from agents.tcfdl_master.agent import setup_master


def setup(server: AgentServer, config: AgentConfig) -> None:
    setup_master(server, config)


if __name__ == "__main__":
    if sys.argv[1:2] == ["nats-config"]:
        from agents.tcfdl_master.natsconfig_cli import main

        sys.exit(main(sys.argv[2:]))
    sys.exit(run_agent("tcfdl_master", setup))
