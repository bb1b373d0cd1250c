"""``python -m agents.blockcache --config /etc/edgeferry/blockcache.yaml``: the block store
(origin mode, control host) or an edge's block cache and service executor (edge mode)."""

from __future__ import annotations

import sys

from agents.blockcache.agent import setup_blockcache
from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer


def setup(server: AgentServer, config: AgentConfig) -> None:
    setup_blockcache(server, config)


if __name__ == "__main__":
    sys.exit(run_agent("blockcache", setup))
