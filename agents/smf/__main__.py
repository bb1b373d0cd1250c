"""``python -m agents.smf --config /etc/edgeferry/smf.yaml``: the Service Management Framework."""

from __future__ import annotations

import sys

from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer
from agents.smf.agent import setup_smf


def setup(server: AgentServer, config: AgentConfig) -> None:
    setup_smf(server, config)


if __name__ == "__main__":
    sys.exit(run_agent("smf", setup))
