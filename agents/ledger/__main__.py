"""``python -m agents.ledger --config /etc/edgeferry/ledger.yaml``: validator, peers or central."""

from __future__ import annotations

import sys

from agents.common.config import AgentConfig
from agents.common.runner import run_agent
from agents.common.server import AgentServer
from agents.ledger.agent import (
    LedgerSettings,
    bootstrap,
    setup_central,
    setup_peers,
    setup_validator,
)


def setup(server: AgentServer, config: AgentConfig) -> None:
    role = config.settings_as(LedgerSettings).role
    if role == "validator":
        setup_validator(server, config)
    elif role == "central":
        setup_central(server, config)
    else:
        host = setup_peers(server, config)
        # Catch up once the server listens (the validator pushes to our advertised address).
        original_start = server.start

        def start_then_bootstrap() -> int:
            port = original_start()
            bootstrap(host, server, config)
            return port

        server.start = start_then_bootstrap  # type: ignore[method-assign]


if __name__ == "__main__":
    sys.exit(run_agent("ledger", setup))
