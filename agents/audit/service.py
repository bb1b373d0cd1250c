"""The data-audit application layer: owners, registry, monitoring input, Evaluate + audit log.

No gRPC here: ``servicer.py`` maps protobuf messages to these calls and errors to status codes.
Every decision and every registry change is appended (and fsynced) to the audit log *before*
the call returns; if the log cannot be written the call fails and nothing is permitted.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agents.audit.auditlog import AuditLog, LogEntry, VerifyResult
from agents.audit.destination import MigrationDecision, Target, choose_destination
from agents.audit.domain import (
    AuditError,
    ContainerPolicy,
    EdgeAttributes,
    EdgeState,
    NotOwner,
    parse_container_policy,
    parse_edge,
)
from agents.audit.owners import OwnerVerifier
from agents.audit.store import AuditStore

#: containers whose liveness the service remembers at most (bounded state)
MAX_CONTAINER_LIVENESS = 10_000


@dataclass(frozen=True)
class ContainerLiveness:
    """The monitor's last survival check of a container (seed 002: containers get only that)."""

    edge: str
    alive: bool
    state: str  # the engine's state ("running", "exited", ...), "" when unknown
    checked_at: float  # Unix time, seconds
    detail: str = ""


@dataclass(frozen=True)
class Evaluation:
    """An audited migration request: the decision, how long the audit took, where it is logged."""

    request_id: str
    owner: str
    decision: MigrationDecision
    audit_seconds: float  # the decision itself (perf_counter), without logging
    log_seq: int


class AuditService:
    """Owner-scoped registry operations and migration audits, all recorded in the audit log."""

    def __init__(self, store: AuditStore, log: AuditLog, verifier: OwnerVerifier, *,
                 seed: int | None = None, max_state_age: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.log = log
        self.verifier = verifier
        self.max_state_age = max_state_age
        self.clock = clock
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self._lock = threading.Lock()
        self._edges: dict[str, EdgeAttributes] | None = None
        self._states: dict[str, EdgeState] = store.load_states()
        self._liveness: dict[str, ContainerLiveness] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def owner_of(self, token: bytes) -> str:
        return self.verifier.verify(token)

    def edges(self) -> dict[str, EdgeAttributes]:
        with self._lock:
            if self._edges is None:
                self._edges = self.store.load_edges()
            return self._edges

    def _changed(self) -> None:
        with self._lock:
            self._edges = None

    def _record(self, kind: str, caller: str, **fields: Any) -> int:
        return self.log.append({"kind": kind, "caller": caller, **fields}).seq

    # -- edges -----------------------------------------------------------------------------------
    def register_edge(self, token: bytes, name: str, attributes: Mapping[str, object], *,
                      region: str = "", address: str = "", caller: str = "") -> tuple[
                          EdgeAttributes, str]:
        owner = self.owner_of(token)
        edge = parse_edge(name, attributes, region=region, address=address)
        key = self.store.create_edge(owner, edge)
        self._changed()
        self._record("edge_registered", caller, owner=owner, edge=name, region=region,
                     address=address, attributes=edge.canonical())
        return edge, key

    def update_edge(self, token: bytes, name: str, attributes: Mapping[str, object], *,
                    region: str = "", address: str = "", caller: str = "") -> EdgeAttributes:
        owner = self.owner_of(token)
        edge = parse_edge(name, attributes, region=region, address=address)
        self.store.update_edge(owner, edge)
        self._changed()
        self._record("edge_updated", caller, owner=owner, edge=name, region=region,
                     address=address, attributes=edge.canonical())
        return edge

    def delete_edge(self, token: bytes, name: str, *, caller: str = "") -> None:
        owner = self.owner_of(token)
        self.store.delete_edge(owner, name)
        self._changed()
        with self._lock:
            self._states.pop(name, None)
        self._record("edge_deleted", caller, owner=owner, edge=name)

    def rotate_share_key(self, token: bytes, name: str, *, caller: str = "") -> str:
        owner = self.owner_of(token)
        key = self.store.rotate_share_key(owner, name)
        self._record("share_key_rotated", caller, owner=owner, edge=name)
        return key

    def redeem_share_key(self, token: bytes, key: str, *, caller: str = "") -> str:
        owner = self.owner_of(token)
        edge = self.store.redeem_share_key(owner, key)
        self._record("edge_shared", caller, owner=owner, edge=edge)
        return edge

    def list_edges(self, token: bytes) -> list[tuple[EdgeAttributes, str, EdgeState | None]]:
        """(edge, its owner, last state) for every edge the owner may use."""
        owner = self.owner_of(token)
        allowed = self.store.accessible_edges(owner)
        owners = {r["name"]: r["owner"] for r in self.store.edge_rows()}
        edges = self.edges()
        with self._lock:
            states = dict(self._states)
        return [(edges[n], owners[n], states.get(n)) for n in sorted(allowed) if n in edges]

    # -- containers ------------------------------------------------------------------------------
    def register_container(self, token: bytes, name: str, requirements: Mapping[str, object], *,
                           location: str = "", caller: str = "") -> ContainerPolicy:
        owner = self.owner_of(token)
        policy = parse_container_policy(name, requirements, location=location)
        if location:
            self.store.edge_owner(location)  # the current edge must be registered
        self.store.create_container(owner, policy)
        self._record("container_registered", caller, owner=owner, container=name,
                     location=location, requirements=policy.canonical())
        return policy

    def update_container(self, token: bytes, name: str, requirements: Mapping[str, object], *,
                         location: str = "", caller: str = "") -> ContainerPolicy:
        owner = self.owner_of(token)
        policy = parse_container_policy(name, requirements, location=location)
        if location:
            self.store.edge_owner(location)
        self.store.update_container(owner, policy)
        self._record("container_updated", caller, owner=owner, container=name,
                     location=location, requirements=policy.canonical())
        return policy

    def set_container_location(self, token: bytes, name: str, edge: str, *,
                               caller: str = "") -> None:
        owner = self.owner_of(token)
        self.store.set_container_location(owner, name, edge)
        self._record("container_moved", caller, owner=owner, container=name, location=edge)

    def delete_container(self, token: bytes, name: str, *, caller: str = "") -> None:
        owner = self.owner_of(token)
        self.store.delete_container(owner, name)
        self._record("container_deleted", caller, owner=owner, container=name)

    def get_container(self, token: bytes, name: str) -> ContainerPolicy:
        owner = self.owner_of(token)
        self.store.require_container_owner(owner, name)
        return self.store.container(name)[1]

    # -- monitoring ------------------------------------------------------------------------------
    def record_state(self, edge: str, state: EdgeState, *, source: str = "",
                     detail: str = "") -> None:
        """Store the monitor's observation of ``edge`` (polled or reported by its node agent)."""
        self.store.record_state(edge, state, detail)
        with self._lock:
            self._states[edge] = state

    def states(self) -> dict[str, EdgeState]:
        """The last observation of every monitored edge."""
        with self._lock:
            return dict(self._states)

    def container_locations(self) -> dict[str, str]:
        """Every registered container and the edge it runs on ("" when unknown)."""
        return self.store.container_locations(MAX_CONTAINER_LIVENESS)

    def record_liveness(self, seen: Mapping[str, ContainerLiveness]) -> None:
        """Replace the containers' survival checks with ``seen`` (one monitor poll); bounded:
        only registered containers, at most MAX_CONTAINER_LIVENESS of them."""
        known = self.container_locations()
        kept = {name: live for name, live in sorted(seen.items()) if name in known}
        with self._lock:
            self._liveness = dict(list(kept.items())[:MAX_CONTAINER_LIVENESS])

    def liveness(self, name: str) -> ContainerLiveness | None:
        """The monitor's last survival check of container ``name`` (None: never checked)."""
        with self._lock:
            return self._liveness.get(name)

    # -- the audit log --------------------------------------------------------------------------
    def read_log(self, token: bytes, *, start: int = 1, limit: int = 50
                 ) -> tuple[VerifyResult, list[LogEntry], int]:
        """(verification of the whole chain, up to ``limit`` verified entries from ``start``
        that name the token's owner, the seq to ask for next or 0). A log that fails
        verification returns no entries."""
        owner = self.owner_of(token)
        result = self.log.verify()
        if not result.ok:
            return result, [], 0
        found: list[LogEntry] = []
        for item in self.log.entries(start=max(start, 1)):
            if item.entry.get("owner") == owner:
                found.append(item)
                if len(found) >= limit:
                    return result, found, item.seq + 1 if item.seq < result.entries else 0
        return result, found, 0

    # -- the audit ------------------------------------------------------------------------------
    def evaluate(self, token: bytes, container: str, target: Target, *, seed: int | None = None,
                 caller: str = "", request_id: str = "") -> Evaluation:
        """Audit a migration of ``container`` (owned by the token's owner) to ``target``.

        Region / any-edge modes try edges in the order of ``random.Random(seed)``; without a
        seed one is drawn from the agent's RNG (seeded by configuration) and recorded.
        """
        request_id = request_id or uuid.uuid4().hex
        try:
            owner = self.owner_of(token)
            container_owner, policy = self.store.container(container)
            if container_owner != owner:
                raise NotOwner(f"container {container!r} belongs to another owner")
            return self._evaluate(owner, policy, target, seed, caller, request_id)
        except AuditError as err:  # refused requests are audited too
            self._record("request_refused", caller, request_id=request_id, container=container,
                         target=str(target), error=type(err).__name__, message=str(err))
            raise

    def _evaluate(self, owner: str, policy: ContainerPolicy, target: Target, seed: int | None,
                  caller: str, request_id: str) -> Evaluation:
        accessible = self.store.accessible_edges(owner)
        edges = self.edges()
        if seed is None:
            with self._lock:
                seed = self._rng.randrange(2**63)
        states = self.states()
        now = self.clock()
        t0 = time.perf_counter()
        decision = choose_destination(policy, edges, states, target, seed=seed,
                                      accessible=accessible, now=now,
                                      max_state_age=self.max_state_age)
        audit_seconds = time.perf_counter() - t0
        seq = self._record("decision", caller, request_id=request_id, owner=owner,
                           audit_seconds=audit_seconds, decision=decision.as_dict())
        return Evaluation(request_id, owner, decision, audit_seconds, seq)
