"""Shared agent framework: config, mTLS gRPC server/client, JSON logs, SQLite store, runner.

Import from the submodules, e.g.::

    from agents.common.config import AgentConfig, load_config
    from agents.common.server import AgentServer
    from agents.common.client import secure_channel, peer_identity, require_peer
    from agents.common.store import Store, ReplayCache
    from agents.common.logging import get_logger
    from agents.common.runner import run_agent
"""
