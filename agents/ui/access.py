"""Who may call which route of the UI server (the HTTP counterpart of the agents' policy.py).

Every route the app serves has one entry, keyed by (HTTP method, path template); a route
without one is refused (deny by default, `agents.ui.web.guard`). Levels:

* ``public``: anyone (sign-up and sign-in pages, the OpenAPI document, static files);
* ``signed-in``: any signed-in owner;
* ``edge``: signed-in edge owners; ``container``: signed-in container owners.

What an owner may touch inside a route (only their own edges, containers, migrations and
audit-log entries) is decided by the audit agent (owner tokens) and `agents.ui.migrations`.
"""

from __future__ import annotations

PUBLIC = "public"
SIGNED_IN = "signed-in"
EDGE = "edge"
CONTAINER = "container"

ACCESS: dict[tuple[str, str], str] = {
    # pages
    ("GET", "/"): PUBLIC,
    ("GET", "/signup"): PUBLIC,
    ("POST", "/signup"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): SIGNED_IN,
    ("GET", "/edges"): EDGE,
    ("POST", "/edges"): EDGE,
    ("POST", "/edges/{name}/share-key"): EDGE,
    ("GET", "/containers"): CONTAINER,
    ("POST", "/containers"): CONTAINER,
    ("POST", "/share-keys/redeem"): CONTAINER,
    ("GET", "/decide"): CONTAINER,
    ("POST", "/decide"): CONTAINER,
    ("POST", "/migrations"): CONTAINER,
    ("GET", "/status"): SIGNED_IN,
    ("GET", "/status/live"): SIGNED_IN,
    ("GET", "/audit-log"): SIGNED_IN,
    ("GET", "/static"): PUBLIC,  # the static files (live.js, style.css), GET only
    # REST API
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/api/v1/csrf"): PUBLIC,
    ("POST", "/api/v1/accounts"): PUBLIC,
    ("POST", "/api/v1/session"): PUBLIC,
    ("DELETE", "/api/v1/session"): SIGNED_IN,
    ("GET", "/api/v1/me"): SIGNED_IN,
    ("GET", "/api/v1/edges"): SIGNED_IN,
    ("POST", "/api/v1/edges"): EDGE,
    ("POST", "/api/v1/edges/{name}/share-key"): EDGE,
    ("POST", "/api/v1/share-keys/redeem"): CONTAINER,
    ("GET", "/api/v1/containers"): CONTAINER,
    ("POST", "/api/v1/containers"): CONTAINER,
    ("GET", "/api/v1/containers/{name}"): CONTAINER,
    ("POST", "/api/v1/containers/{name}/decisions"): CONTAINER,
    ("GET", "/api/v1/migrations"): CONTAINER,
    ("POST", "/api/v1/migrations"): CONTAINER,
    ("GET", "/api/v1/migrations/{mid}"): CONTAINER,
    ("GET", "/api/v1/audit-log"): SIGNED_IN,
    ("GET", "/api/v1/events"): SIGNED_IN,
}


def rule_of(method: str, path: str) -> str | None:
    """The access level of a route (HEAD is GET's), or None when the table has no entry."""
    return ACCESS.get(("GET" if method == "HEAD" else method, path))
