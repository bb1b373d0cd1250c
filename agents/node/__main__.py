"""``python -m agents.node --config /etc/edgeferry/node.yaml``: the edge node agent."""

from __future__ import annotations

import sys

from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer
from agents.node.agent import setup as setup_node


def setup(server: AgentServer, config: AgentConfig) -> None:
    setup_node(server, config)


if __name__ == "__main__":
    sys.exit(run_agent("node", setup))
