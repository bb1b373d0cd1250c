"""SQLite persistence of the data-audit agent: edges, shares, container policies, edge state.

Stored values are the canonical text of the domain objects (``EdgeAttributes.canonical()``,
``ContainerPolicy.canonical()``), re-validated by the domain parser when loaded. Share keys are
stored only as SHA-256 digests; the plain key is returned once, to the edge owner.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from agents.audit.domain import (
    AlreadyExists,
    ContainerPolicy,
    EdgeAttributes,
    EdgeState,
    NotFound,
    NotOwner,
    parse_container_policy,
    parse_edge,
)
from agents.common.store import Migration, Store

COMPONENT = "edgeferry.audit"
SHARE_KEY_BYTES = 20  # 40 hex digits, like the paper's Figure 13

MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE edges (
        name        TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        region      TEXT NOT NULL,
        address     TEXT NOT NULL,
        attributes  TEXT NOT NULL,
        share_hash  BLOB NOT NULL UNIQUE,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE edge_shares (
        edge        TEXT NOT NULL REFERENCES edges(name) ON DELETE CASCADE,
        owner       TEXT NOT NULL,
        granted_at  REAL NOT NULL,
        PRIMARY KEY (edge, owner)
    );
    CREATE TABLE containers (
        name         TEXT PRIMARY KEY,
        owner        TEXT NOT NULL,
        location     TEXT NOT NULL,
        requirements TEXT NOT NULL,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL
    );
    CREATE TABLE edge_state (
        edge           TEXT PRIMARY KEY REFERENCES edges(name) ON DELETE CASCADE,
        cpu_percent    REAL NOT NULL,
        memory_percent REAL NOT NULL,
        alive          INTEGER NOT NULL,
        measured_at    REAL NOT NULL,
        detail         TEXT NOT NULL DEFAULT ''
    );
    """,
]


def share_key_digest(key: str) -> bytes:
    return hashlib.sha256(key.strip().lower().encode("ascii", "replace")).digest()


class AuditStore:
    """Registry of edges (with owners and shares), container policies and monitored state."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        store.migrate(COMPONENT, MIGRATIONS)

    # -- edges ----------------------------------------------------------------------------------
    def create_edge(self, owner: str, edge: EdgeAttributes) -> str:
        """Register a new edge owned by ``owner``; return its share key (shown once)."""
        key = secrets.token_hex(SHARE_KEY_BYTES)
        now = self.clock()
        try:
            self.store.execute(
                "INSERT INTO edges (name, owner, region, address, attributes, share_hash,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (edge.name, owner, edge.region, edge.address, json.dumps(edge.canonical()),
                 share_key_digest(key), now, now))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"edge {edge.name!r} is already registered") from None
        return key

    def edge_owner(self, name: str) -> str:
        row = self.store.query_one("SELECT owner FROM edges WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"no edge named {name!r} is registered")
        return str(row["owner"])

    def _require_edge_owner(self, owner: str, name: str) -> None:
        if self.edge_owner(name) != owner:
            raise NotOwner(f"edge {name!r} belongs to another owner")

    def update_edge(self, owner: str, edge: EdgeAttributes) -> None:
        with self.store.transaction():
            self._require_edge_owner(owner, edge.name)
            self.store.execute(
                "UPDATE edges SET region = ?, address = ?, attributes = ?, updated_at = ? "
                "WHERE name = ?",
                (edge.region, edge.address, json.dumps(edge.canonical()), self.clock(),
                 edge.name))

    def delete_edge(self, owner: str, name: str) -> None:
        with self.store.transaction():
            self._require_edge_owner(owner, name)
            self.store.execute("DELETE FROM edges WHERE name = ?", (name,))

    def rotate_share_key(self, owner: str, name: str) -> str:
        """A new share key for the edge; the old one stops working (existing shares stay)."""
        key = secrets.token_hex(SHARE_KEY_BYTES)
        with self.store.transaction():
            self._require_edge_owner(owner, name)
            self.store.execute("UPDATE edges SET share_hash = ?, updated_at = ? WHERE name = ?",
                               (share_key_digest(key), self.clock(), name))
        return key

    def redeem_share_key(self, owner: str, key: str) -> str:
        """Give ``owner`` the use of the edge the key belongs to; return the edge's name."""
        row = self.store.query_one("SELECT name FROM edges WHERE share_hash = ?",
                                   (share_key_digest(key),))
        if row is None:
            raise NotFound("no edge has that share key (mistyped, or rotated by its owner)")
        name = str(row["name"])
        self.store.execute(
            "INSERT INTO edge_shares (edge, owner, granted_at) VALUES (?, ?, ?) "
            "ON CONFLICT(edge, owner) DO NOTHING", (name, owner, self.clock()))
        return name

    def load_edges(self) -> dict[str, EdgeAttributes]:
        rows = self.store.query("SELECT name, region, address, attributes FROM edges")
        return {str(r["name"]): parse_edge(str(r["name"]), json.loads(r["attributes"]),
                                           region=str(r["region"]), address=str(r["address"]))
                for r in rows}

    def edge_rows(self) -> list[dict[str, Any]]:
        """Name, owner, region and address of every edge (for listings)."""
        return [dict(r) for r in self.store.query(
            "SELECT name, owner, region, address FROM edges ORDER BY name")]

    def accessible_edges(self, owner: str) -> set[str]:
        """Edges ``owner`` may migrate to: owned, or shared with them through a share key."""
        rows = self.store.query(
            "SELECT name FROM edges WHERE owner = ? UNION SELECT edge FROM edge_shares "
            "WHERE owner = ?", (owner, owner))
        return {str(r[0]) for r in rows}

    # -- containers -----------------------------------------------------------------------------
    def create_container(self, owner: str, policy: ContainerPolicy) -> None:
        now = self.clock()
        try:
            self.store.execute(
                "INSERT INTO containers (name, owner, location, requirements, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (policy.name, owner, policy.location, json.dumps(policy.canonical()), now, now))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"container {policy.name!r} is already registered") from None

    def container(self, name: str) -> tuple[str, ContainerPolicy]:
        """(owner, policy) of a registered container."""
        row = self.store.query_one(
            "SELECT owner, location, requirements FROM containers WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"no container named {name!r} is registered")
        policy = parse_container_policy(name, json.loads(row["requirements"]),
                                        location=str(row["location"]))
        return str(row["owner"]), policy

    def require_container_owner(self, owner: str, name: str) -> None:
        if self.container(name)[0] != owner:
            raise NotOwner(f"container {name!r} belongs to another owner")

    def update_container(self, owner: str, policy: ContainerPolicy) -> None:
        with self.store.transaction():
            self.require_container_owner(owner, policy.name)
            self.store.execute(
                "UPDATE containers SET location = ?, requirements = ?, updated_at = ? "
                "WHERE name = ?",
                (policy.location, json.dumps(policy.canonical()), self.clock(), policy.name))

    def set_container_location(self, owner: str, name: str, edge: str) -> None:
        with self.store.transaction():
            self.require_container_owner(owner, name)
            self.edge_owner(edge)  # must exist
            self.store.execute("UPDATE containers SET location = ?, updated_at = ? "
                               "WHERE name = ?", (edge, self.clock(), name))

    def delete_container(self, owner: str, name: str) -> None:
        with self.store.transaction():
            self.require_container_owner(owner, name)
            self.store.execute("DELETE FROM containers WHERE name = ?", (name,))

    def container_locations(self, limit: int = 100_000) -> dict[str, str]:
        """Container name -> the edge it runs on ("" when unknown), at most ``limit`` rows."""
        return {str(r["name"]): str(r["location"]) for r in self.store.query(
            "SELECT name, location FROM containers ORDER BY name LIMIT ?", (limit,))}

    def containers_of(self, owner: str) -> list[str]:
        return [str(r[0]) for r in self.store.query(
            "SELECT name FROM containers WHERE owner = ? ORDER BY name", (owner,))]

    # -- monitored state ------------------------------------------------------------------------
    def record_state(self, edge: str, state: EdgeState, detail: str = "") -> None:
        try:
            self.store.execute(
                "INSERT INTO edge_state (edge, cpu_percent, memory_percent, alive, measured_at,"
                " detail) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(edge) DO UPDATE SET "
                "cpu_percent = excluded.cpu_percent, memory_percent = excluded.memory_percent,"
                " alive = excluded.alive, measured_at = excluded.measured_at,"
                " detail = excluded.detail",
                (edge, state.cpu_percent, state.memory_percent, int(state.alive),
                 state.measured_at, (detail or state.failure)[:500]))
        except sqlite3.IntegrityError:
            raise NotFound(f"no edge named {edge!r} is registered") from None

    def load_states(self) -> dict[str, EdgeState]:
        rows = self.store.query(
            "SELECT edge, cpu_percent, memory_percent, alive, measured_at, detail"
            " FROM edge_state")
        return {str(r["edge"]): EdgeState(float(r["cpu_percent"]), float(r["memory_percent"]),
                                          bool(r["alive"]), float(r["measured_at"]),
                                          str(r["detail"] or ""))
                for r in rows}
