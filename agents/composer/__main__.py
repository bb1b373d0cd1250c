"""``python -m agents.composer --config /etc/edgeferry/composer.yaml``: the SSO composer."""

from __future__ import annotations

import sys

from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer
from agents.composer.agent import setup_composer


def setup(server: AgentServer, config: AgentConfig) -> None:
    setup_composer(server, config)


if __name__ == "__main__":
    sys.exit(run_agent("composer", setup))
