"""``python -m agents.tcfdl_proxy --config /etc/edgeferry/tcfdl_proxy.yaml``: a cluster's TEE
proxy (no TEE hardware: its own process and Unix user, attestation emulated)."""

from __future__ import annotations

import sys

from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer
from agents.tcfdl_proxy.agent import setup_proxy


def setup(server: AgentServer, config: AgentConfig) -> None:
    setup_proxy(server, config)


if __name__ == "__main__":
    sys.exit(run_agent("tcfdl_proxy", setup))
