"""``python -m agents.node --config /etc/edgeferry/node.yaml``: the edge node agent.

Hosts NodeService and, when configured, the RASP endpoint and SSP chosen-server roles
(``settings.rasp_endpoint`` / ``settings.ssp_server``) on the same mTLS port.
"""

from __future__ import annotations

import sys

from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError
from agents.common.runner import run_agent
from agents.common.server import AgentServer
from agents.node.agent import NodeSettings, setup_with_roles


def setup(server: AgentServer, config: AgentConfig) -> None:
    ssp = config.settings_as(NodeSettings).ssp_server
    if ssp is not None and not config.listen_port and not ssp.advertise_port:
        # SSP step 5 tells applications this port: it must be known before serving.
        raise AgentConfigError("settings.ssp_server needs a fixed listen_port (or "
                               "ssp_server.advertise_port); port 0 cannot be advertised")
    setup_with_roles(server, config)


if __name__ == "__main__":
    sys.exit(run_agent("node", setup))
