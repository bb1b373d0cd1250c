"""``python -m agents.ras --config /etc/edgeferry/ras.yaml``: the Resource Allocation Server."""

from __future__ import annotations

import sys

from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer
from agents.ras.agent import setup_ras


def setup(server: AgentServer, config: AgentConfig) -> None:
    setup_ras(server, config)


if __name__ == "__main__":
    sys.exit(run_agent("ras", setup))
