"""Errors an agent operator can hit at start-up or at run time.

Each carries a one-line message that says what to fix and an exit code used by
`agents.common.runner` (the deployed side does not import the controller's `edgeferry` package).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # bad configuration or flags
EXIT_ENVIRONMENT = 3  # missing/unsafe files, address in use, ...


class AgentError(Exception):
    """Base class: `str(err)` is a one-line message."""

    exit_code = EXIT_FAILURE


class AgentConfigError(AgentError):
    """The configuration file or command-line flags are invalid."""

    exit_code = EXIT_USAGE


class AgentStartError(AgentError):
    """The agent cannot start: TLS material missing or unsafe, bind failed, ..."""

    exit_code = EXIT_ENVIRONMENT


class StoreError(AgentError):
    """The agent's SQLite store cannot be opened or migrated."""

    exit_code = EXIT_ENVIRONMENT


class NoPeerIdentity(AgentError):
    """The RPC peer presented no verified certificate (plaintext or no client auth)."""
