"""Errors a user can hit, each carrying a one-line message and an exit code scripts rely on."""

from __future__ import annotations

# Exit codes (documented in README "Exit codes").
EXIT_OK = 0
EXIT_FAILURE = 1  # the operation ran and failed (e.g. a trial or a check failed)
EXIT_USAGE = 2  # bad input: flags, files, configuration
EXIT_ENVIRONMENT = 3  # the machine is not ready: not root, no Docker engine, missing tool
EXIT_NOT_IMPLEMENTED = 4  # the verb exists but the feature has not landed yet


class EdgeferryError(Exception):
    """Base class: `str(err)` is a one-line message that says what to fix."""

    exit_code = EXIT_FAILURE


class ConfigError(EdgeferryError):
    """Bad user input (lab file, flags, experiment definition)."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(EdgeferryError):
    """The machine cannot do what was asked (not root, Docker unreachable, tool missing)."""

    exit_code = EXIT_ENVIRONMENT


class OperationFailed(EdgeferryError):
    """An operation ran and failed."""

    exit_code = EXIT_FAILURE
