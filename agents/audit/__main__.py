"""``python -m agents.audit --config /etc/edgeferry/audit.yaml``: the data-audit agent.

Node agents report utilisation through ReportEdgeState until the node agent's gRPC client
implements ``monitor.NodeProbe``; then pass it to ``setup_audit(..., probe=...)`` here.
"""

from __future__ import annotations

import sys

from agents.audit.agent import setup_audit
from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer


def setup(server: AgentServer, config: AgentConfig) -> None:
    setup_audit(server, config)


if __name__ == "__main__":
    sys.exit(run_agent("audit", setup))
