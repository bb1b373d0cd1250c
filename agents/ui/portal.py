"""What a signed-in owner can do, over a `Backend` (the audit agent and the SMF).

No gRPC here: `agents.ui.backend` implements `Backend` with the audit agent's and the SMF's
clients; tests may give another. Inputs are validated here first with the audit agent's own
parsers (`agents.audit.domain`), so the web UI shows the CLI's messages before any call; the
audit agent validates again and decides ownership (every call carries the owner's sealed token).
Share keys the audit agent hands out (it stores only their digest) are kept per owner here so an
edge owner can see them again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.audit.convert import (
    CONTAINER_ELEMENTS,
    EDGE_ELEMENTS,
    AuditError,
    parse_container_policy,
    parse_edge,
)
from agents.common.store import Store

MAX_TEXT = 256  # any single form field
MAX_SHARE_KEYS = 1000  # edges one owner registers through the UI
MAX_CONTAINERS = 1000  # containers one owner registers through the UI

_SCHEMA = [
    """
    CREATE TABLE share_keys (username TEXT NOT NULL, edge TEXT NOT NULL, share_key TEXT NOT NULL,
                             PRIMARY KEY (username, edge));
    CREATE TABLE containers (username TEXT NOT NULL, name TEXT NOT NULL,
                             PRIMARY KEY (username, name));
    """,
]


class PortalError(Exception):
    """A refused request: ``status`` is the HTTP status to answer, ``str(err)`` one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class EdgeView:
    """One edge as an owner sees it."""

    name: str
    region: str
    address: str
    attributes: dict[str, str]
    owned: bool
    share_key: str
    state: dict[str, Any] | None


@dataclass(frozen=True)
class ContainerView:
    """One container policy as its owner sees it."""

    name: str
    location: str
    requirements: dict[str, str]


@dataclass(frozen=True)
class CheckView:
    """One row of a decision table."""

    element: str
    edge_element: str
    required: str
    actual: str
    constrained: bool
    held: bool
    note: str


@dataclass(frozen=True)
class DecisionView:
    """The audit of one container against one edge."""

    container: str
    edge: str
    permit: bool
    checks: tuple[CheckView, ...]
    reasons: tuple[str, ...]
    audit_seconds: float
    log_seq: int

    @property
    def failing(self) -> tuple[str, ...]:
        """The elements that did not hold (empty on permit)."""
        return tuple(c.element for c in self.checks if c.constrained and not c.held)


@dataclass(frozen=True)
class LogView:
    """A page of the owner's audit-log entries and the chain verification."""

    ok: bool
    total: int
    problem: str
    entries: tuple[dict[str, Any], ...]
    next_seq: int


@dataclass(frozen=True)
class Phase:
    """One phase of a migration as the SMF (or the audit) reported it."""

    name: str
    seconds: float
    outcome: str
    detail: str = ""


#: on_phase(phase): one phase of a running migration, as soon as it ended
PhaseCallback = Callable[[Phase], None]


@dataclass(frozen=True)
class Try:
    """One edge the audit tried for a region / any-edge migration, in the audit's order."""

    edge: str
    permit: bool
    reasons: tuple[str, ...] = ()  # of a deny: ``element: note`` per failing element


@dataclass(frozen=True)
class MigrationResult:
    """What the SMF answered to a migration (``tries``: a region / any-edge migration's)."""

    migrated: bool
    location: str
    phases: tuple[Phase, ...]
    error: str = ""
    tries: tuple[Try, ...] = ()


class BackendError(Exception):
    """The audit agent or the SMF refused a call; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Backend(Protocol):
    """The calls the UI server makes for an owner (``owner`` is the UI's account name)."""

    def register_edge(self, owner: str, name: str, attributes: Mapping[str, str], *,
                      region: str, address: str) -> str: ...

    def rotate_share_key(self, owner: str, edge: str) -> str: ...

    def redeem_share_key(self, owner: str, key: str) -> str: ...

    def list_edges(self, owner: str) -> list[EdgeView]: ...

    def register_container(self, owner: str, name: str, requirements: Mapping[str, str], *,
                           location: str) -> ContainerView: ...

    def get_container(self, owner: str, name: str) -> ContainerView: ...

    def evaluate(self, owner: str, container: str, edge: str) -> DecisionView: ...

    def read_log(self, owner: str, start: int, limit: int) -> LogView: ...

    def migrate(self, owner: str, container: str, edge: str,
                on_phase: PhaseCallback | None = None, *, region: str = "",
                any_edge: bool = False) -> MigrationResult:
        """Ask the SMF to migrate to ``edge`` (or with ``edge`` "" to the first permitted
        edge of ``region`` / anywhere); ``on_phase`` gets each SMF phase as soon as it ended
        (in the caller's thread, before this returns the result with the same phases)."""
        ...


#: gRPC status name -> HTTP status for refusals the owner can act on.
_HTTP_OF = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
            "PERMISSION_DENIED": 403, "FAILED_PRECONDITION": 409, "UNAUTHENTICATED": 502,
            "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}


def _bounded(value: str, what: str) -> str:
    if len(value) > MAX_TEXT:
        raise PortalError(400, f"{what}: at most {MAX_TEXT} characters")
    return value.strip()


def _clean(values: Mapping[str, str], allowed: Sequence[str]) -> dict[str, str]:
    """Non-empty fields of a form, bounded; unknown names are passed on (the parser names
    them in its message)."""
    if len(values) > 2 * len(allowed):
        raise PortalError(400, "too many fields")
    return {str(k)[:32]: _bounded(str(v), str(k)[:32]) for k, v in values.items()
            if str(v).strip()}


@dataclass
class Portal:
    """The owner-facing operations; every one is scoped to the signed-in ``owner``."""

    backend: Backend
    store: Store

    def __post_init__(self) -> None:
        self.store.migrate("ui-portal", _SCHEMA)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BackendError as err:
            raise PortalError(_HTTP_OF.get(err.code, 502), str(err)) from None

    # -- edge owners ----------------------------------------------------------------------------
    def register_edge(self, owner: str, name: str, attributes: Mapping[str, str], *,
                      region: str = "", address: str = "") -> str:
        """Validate (the audit agent's parser and messages) and register an edge; return and
        remember its share key."""
        attrs = _clean(attributes, EDGE_ELEMENTS)
        name, region, address = (_bounded(name, "name"), _bounded(region, "region"),
                                 _bounded(address, "address"))
        try:
            parse_edge(name, attrs, region=region, address=address)
        except AuditError as err:
            raise PortalError(400, str(err)) from None
        key = str(self._call(self.backend.register_edge, owner, name, attrs, region=region,
                             address=address))
        self._remember_key(owner, name, key)
        return key

    def rotate_share_key(self, owner: str, edge: str) -> str:
        """A new share key for an owned edge (the old one stops working)."""
        key = str(self._call(self.backend.rotate_share_key, owner, _bounded(edge, "edge")))
        self._remember_key(owner, edge, key)
        return key

    def _remember_key(self, owner: str, edge: str, key: str) -> None:
        with self.store.transaction() as db:
            count = db.execute("SELECT COUNT(*) FROM share_keys WHERE username = ?",
                               (owner,)).fetchone()[0]
            if count >= MAX_SHARE_KEYS:
                raise PortalError(409, f"at most {MAX_SHARE_KEYS} edges per owner")
            db.execute("INSERT OR REPLACE INTO share_keys VALUES (?, ?, ?)", (owner, edge, key))

    def edges(self, owner: str) -> list[EdgeView]:
        """Edges the owner may use (owned ones with their share key)."""
        keys = {str(r["edge"]): str(r["share_key"]) for r in self.store.query(
            "SELECT edge, share_key FROM share_keys WHERE username = ?", (owner,))}
        out = []
        for e in self._call(self.backend.list_edges, owner):
            out.append(EdgeView(e.name, e.region, e.address, e.attributes, e.owned,
                                keys.get(e.name, "") if e.owned else "", e.state))
        return out

    # -- container owners -----------------------------------------------------------------------
    def redeem_share_key(self, owner: str, key: str) -> str:
        """Redeem a share key; return the edge now available to the owner."""
        key = _bounded(key, "share key")
        if not key:
            raise PortalError(400, "share key: required")
        return str(self._call(self.backend.redeem_share_key, owner, key))

    def register_container(self, owner: str, name: str, requirements: Mapping[str, str], *,
                           location: str = "") -> ContainerView:
        """Validate (the CLI's messages) and register a container policy."""
        reqs = _clean(requirements, CONTAINER_ELEMENTS)
        name, location = _bounded(name, "name"), _bounded(location, "location")
        try:
            parse_container_policy(name, reqs, location=location)
        except AuditError as err:
            raise PortalError(400, str(err)) from None
        count = self.store.query_one("SELECT COUNT(*) AS n FROM containers WHERE username = ?",
                                     (owner,))
        if count is not None and int(count["n"]) >= MAX_CONTAINERS:
            raise PortalError(409, f"at most {MAX_CONTAINERS} containers per owner")
        result: ContainerView = self._call(self.backend.register_container, owner, name, reqs,
                                           location=location)
        self.store.execute("INSERT OR IGNORE INTO containers VALUES (?, ?)", (owner, name))
        return result

    def container_names(self, owner: str) -> list[str]:
        """Names of the containers this owner registered through the UI."""
        rows = self.store.query("SELECT name FROM containers WHERE username = ? ORDER BY name",
                                (owner,))
        return [str(r["name"]) for r in rows]

    def containers(self, owner: str) -> list[ContainerView]:
        """The owner's container policies with their current location."""
        out = []
        for name in self.container_names(owner):
            try:
                out.append(self._call(self.backend.get_container, owner, name))
            except PortalError as err:
                if err.status != 404:
                    raise
        return out

    def container(self, owner: str, name: str) -> ContainerView:
        """One of the owner's containers (404 for anyone else's)."""
        result: ContainerView = self._call(self.backend.get_container, owner,
                                           _bounded(name, "container"))
        return result

    def decide(self, owner: str, container: str, edge: str) -> DecisionView:
        """The per-element audit of ``container`` against ``edge`` (logged by the agent)."""
        container, edge = _bounded(container, "container"), _bounded(edge, "edge")
        if not container or not edge:
            raise PortalError(400, "container and edge: required")
        result: DecisionView = self._call(self.backend.evaluate, owner, container, edge)
        return result

    def audit_log(self, owner: str, start: int = 1, limit: int = 50) -> LogView:
        """A page of the owner's audit-log entries with the chain verification."""
        if not 1 <= limit <= 200 or start < 0:
            raise PortalError(400, "limit: 1-200; start: >= 0")
        result: LogView = self._call(self.backend.read_log, owner, start, limit)
        return result

    def migrate(self, owner: str, container: str, edge: str,
                on_phase: PhaseCallback | None = None, *, region: str = "",
                any_edge: bool = False) -> MigrationResult:
        """Ask the SMF to migrate the owner's container to ``edge`` (after the audit), or with
        ``edge`` "" to the first edge the audit permits in ``region`` / anywhere;
        ``on_phase`` gets each of the SMF's phases as it ends."""
        result: MigrationResult = self._call(self.backend.migrate, owner, container, edge,
                                             on_phase, region=region, any_edge=any_edge)
        return result
