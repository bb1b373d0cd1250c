"""``python -m agents.audit --config /etc/edgeferry/audit.yaml``: the data-audit agent.

With ``settings.monitor: true`` (the deployed agent: role default
``edgeferry_audit_monitor``) it polls every registered edge's node agent each
``settings.monitor_interval_s`` (role default ``edgeferry_audit_monitor_period_s``, 600 s);
ReportEdgeState (the controller, the node agents) stays a second source.
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
