"""``python -m agents.tcfdl_manager --config /etc/edgeferry/tcfdl_manager.yaml``: the TCFDL
service manager (trusted authority)."""

from __future__ import annotations

import sys

from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer
from agents.tcfdl_manager.agent import setup_manager


def setup(server: AgentServer, config: AgentConfig) -> None:
    setup_manager(server, config)


if __name__ == "__main__":
    sys.exit(run_agent("tcfdl_manager", setup))
