"""``python -m agents.ui --config /etc/edgeferry/ui.yaml``: the UI server over HTTPS.

Same flags as the other agents (``agents.common.runner``); serves with uvicorn until SIGTERM or
SIGINT and prints one line with its URL when it listens.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from agents.common.errors import AgentError
from agents.common.logging import configure_logging, get_logger
from agents.common.runner import config_from_argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run the UI server; the exit code."""
    import uvicorn

    from agents.ui.agent import build_server
    from agents.ui.web import create_app

    try:
        config = config_from_argv("ui", argv)
        configure_logging(config.name, config.log_level, log_file=config.log_file)
        built = build_server(config)
    except AgentError as err:
        print(f"ui: error: {err}", file=sys.stderr)
        return err.exit_code
    assert config.tls is not None
    server = uvicorn.Server(uvicorn.Config(
        create_app(built.state), host=config.listen_host, port=config.listen_port,
        ssl_certfile=str(built.certfile), ssl_keyfile=str(built.keyfile),
        log_level="warning", access_log=False, server_header=False,
        limit_concurrency=200, timeout_graceful_shutdown=int(config.grace_seconds)))
    get_logger("ui.runner").info("serving", url=f"https://{config.listen_host}:"
                                 f"{config.listen_port}/")
    try:
        server.run()
    finally:
        built.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
