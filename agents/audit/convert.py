"""The audit agent's public conversions for the processes that call it (no gRPC here).

Owners write edge attributes and container requirements as text; callers that validate before
calling (the UI server, as the CLI does) convert them with the agent's own parsers, so users get
the agent's messages word for word, and seal owner tokens in the agent's format. Everything
here is the audit agent's own code (`agents.audit.domain`, `agents.audit.owners`), re-exported
as its public surface (tests/unit/test_boundaries.py).
"""

from __future__ import annotations

from agents.audit.domain import (
    CONTAINER_ELEMENTS,
    EDGE_ELEMENT_DESCRIPTIONS,
    EDGE_ELEMENTS,
    ELEMENT_SPECS,
    AuditError,
    ContainerPolicy,
    EdgeAttributes,
    ElementSpec,
    parse_container_policy,
    parse_edge,
)
from agents.audit.owners import read_key_file, seal_owner_token

__all__ = [
    "CONTAINER_ELEMENTS",
    "EDGE_ELEMENTS",
    "EDGE_ELEMENT_DESCRIPTIONS",
    "ELEMENT_SPECS",
    "AuditError",
    "ContainerPolicy",
    "EdgeAttributes",
    "ElementSpec",
    "parse_container_policy",
    "parse_edge",
    "read_key_file",
    "seal_owner_token",
]
