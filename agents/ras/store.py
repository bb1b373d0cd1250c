"""SQLite persistence of the RAS table and the registry's RASP sessions. Resources and
identities are stored as their canonical encodings. Sessions live in the shared bounded
`SessionTable` (one row per session, written only when that session changes)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agents.common.store import Migration, SessionTable, Store
from agents.security import encoding
from agents.security.crypto import PublicIdentity
from agents.security.rasp import CloudEntry, RasTable, RegistrySession, Resources

SESSIONS_NAMESPACE = "rasp-registry"


def _move_sessions_to_session_table(db: sqlite3.Connection) -> None:
    """v3: the registry's sessions move to the shared bounded session table (one row each);
    each existing one gets a fresh lifetime from now (the old table had no creation time)."""
    rows = db.execute("SELECT * FROM rasp_sessions").fetchall()
    until = time.time() + DEFAULT_SESSION_TTL_S
    for row in rows:
        session = RegistrySession(
            server=row[1], cloud=row[2], res_cb=_res(row[3]),
            res_sa=None if row[4] is None else _res(row[4]), done=int(row[5]))
        db.execute("INSERT OR REPLACE INTO sessions (namespace, key, value, expires_at) "
                   "VALUES (?, ?, ?, ?)",
                   (SESSIONS_NAMESPACE, bytes(row[0]), encoding.encode(session), until))
    db.execute("DROP TABLE rasp_sessions")


DEFAULT_SESSION_TTL_S = 3600.0
DEFAULT_SESSION_CAPACITY = 10_000


RAS_COMPONENT = "edgeferry.ras"
RAS_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE clouds (
        name      TEXT PRIMARY KEY,
        identity  BLOB NOT NULL,
        maximum   BLOB NOT NULL,
        allocated BLOB NOT NULL
    );
    CREATE TABLE servers (name TEXT PRIMARY KEY, identity BLOB NOT NULL);
    CREATE TABLE allocations (
        server    TEXT NOT NULL,
        cloud     TEXT NOT NULL,
        allocated BLOB NOT NULL,
        PRIMARY KEY (server, cloud)
    );
    CREATE TABLE locations (service TEXT PRIMARY KEY, cloud TEXT NOT NULL);
    CREATE TABLE rasp_sessions (
        session_id BLOB PRIMARY KEY,
        server     TEXT NOT NULL,
        cloud      TEXT NOT NULL,
        res_cb     BLOB NOT NULL,
        res_sa     BLOB,
        done       INTEGER NOT NULL
    );
    """,
    # per service: the allocation its last arrival made (moved at step 12, see release.py)
    """
    CREATE TABLE service_allocations (
        service    TEXT PRIMARY KEY,
        server     TEXT NOT NULL,
        cloud      TEXT NOT NULL,
        session_id BLOB NOT NULL,
        allocated  BLOB NOT NULL
    );
    """,
    _move_sessions_to_session_table,
]

@dataclass(frozen=True)
class ServiceAllocation:
    """One service's allocation: where it arrived (cloud), from where (server), by which RASP
    session, and how much it holds."""

    server: str
    cloud: str
    session_id: bytes
    allocated: Resources


def _res(blob: bytes) -> Resources:
    return encoding.decode_as(Resources, bytes(blob))


@dataclass
class RegistryTable(RasTable):
    """The RAS table plus the allocation of every service placed by RASP. A service's
    allocation moves at step 12 from the cloud it left to the one it arrived at."""

    services: dict[str, ServiceAllocation] = field(default_factory=dict)
    #: (service, old allocation or None, new allocation) of the last step 12 recorded
    last_move: tuple[str, ServiceAllocation | None, ServiceAllocation] | None = None

    def record_migration(self, server: str, cloud: str, used: Resources, service: str) -> None:
        super().record_migration(server, cloud, used, service)
        old = self.services.pop(service, None)
        if old is not None:
            self._take_back(old)
        new = ServiceAllocation(server, cloud, b"", used)
        self.services[service] = new
        self.last_move = (service, old, new)

    def _take_back(self, old: ServiceAllocation) -> None:
        entry = self.clouds.get(old.cloud)
        if entry is not None:
            entry.allocated = minus(entry.allocated, old.allocated)
        key = (old.server, old.cloud)
        cell = self.allocations.get(key)
        if cell is not None:
            rest = minus(cell, old.allocated)
            if rest.any_positive():
                self.allocations[key] = rest
            else:
                del self.allocations[key]


def minus(a: Resources, b: Resources) -> Resources:
    """a - b per resource, never below zero."""
    return Resources(*(max(x - y, 0) for x, y in zip(a.values(), b.values(), strict=True)))


class RasStore:
    """The registry's durable state: RAS table + RASP sessions (bounded, expiring)."""

    def __init__(self, store: Store, *, session_capacity: int = DEFAULT_SESSION_CAPACITY,
                 session_ttl_s: float = DEFAULT_SESSION_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.sessions = SessionTable(store, SESSIONS_NAMESPACE, capacity=session_capacity,
                                     ttl_s=session_ttl_s, clock=clock)
        store.migrate(RAS_COMPONENT, RAS_MIGRATIONS)

    def load(self) -> tuple[RegistryTable, dict[bytes, RegistrySession]]:
        table = RegistryTable()
        for row in self.store.query("SELECT * FROM clouds"):
            table.clouds[row["name"]] = CloudEntry(
                PublicIdentity.from_bytes(bytes(row["identity"])),
                _res(row["maximum"]),
                _res(row["allocated"]),
            )
        for row in self.store.query("SELECT * FROM servers"):
            table.servers[row["name"]] = PublicIdentity.from_bytes(bytes(row["identity"]))
        for row in self.store.query("SELECT * FROM allocations"):
            table.allocations[(row["server"], row["cloud"])] = _res(row["allocated"])
        for row in self.store.query("SELECT * FROM locations"):
            table.locations[row["service"]] = row["cloud"]
        for row in self.store.query("SELECT * FROM service_allocations"):
            table.services[row["service"]] = ServiceAllocation(
                row["server"], row["cloud"], bytes(row["session_id"]), _res(row["allocated"]))
        sessions = {
            key: encoding.decode_as(RegistrySession, value)
            for key, value in self.sessions.items()
        }
        return table, sessions

    def save_session(self, session_id: bytes, session: RegistrySession) -> list[bytes]:
        """Write one session's row (TableFull when a new one finds no room); return the ids
        of sessions expired to make room."""
        return self.sessions.put(session_id, encoding.encode(session))

    def save_move(self, table: RegistryTable, service: str) -> None:
        """After a step 12: the clouds' and pairs' allocations (few rows) and the rows of the
        one service that moved, not the rows of every service ever placed."""
        with self.store.transaction() as db:
            for name in ("clouds", "allocations"):
                db.execute(f"DELETE FROM {name}")
            self._write_clouds(db, table)
            db.execute("INSERT OR REPLACE INTO locations VALUES (?, ?)",
                       (service, table.locations[service]))
            placed = table.services.get(service)
            if placed is None:
                db.execute("DELETE FROM service_allocations WHERE service = ?", (service,))
            else:
                db.execute("INSERT OR REPLACE INTO service_allocations VALUES (?, ?, ?, ?, ?)",
                           (service, placed.server, placed.cloud, placed.session_id,
                            encoding.encode(placed.allocated)))

    @staticmethod
    def _write_clouds(db: sqlite3.Connection, table: RasTable) -> None:
        db.executemany(
            "INSERT INTO clouds VALUES (?, ?, ?, ?)",
            [(n, e.public.to_bytes(), encoding.encode(e.maximum), encoding.encode(e.allocated))
             for n, e in table.clouds.items()],
        )
        db.executemany(
            "INSERT INTO allocations VALUES (?, ?, ?)",
            [(s, c, encoding.encode(r)) for (s, c), r in table.allocations.items()],
        )

    def save(self, table: RasTable) -> None:
        """Write the RAS table (clouds, servers, allocations: small) in one transaction."""
        services = table.services if isinstance(table, RegistryTable) else {}
        with self.store.transaction() as db:
            for name in ("clouds", "servers", "allocations", "locations",
                         "service_allocations"):
                db.execute(f"DELETE FROM {name}")
            self._write_clouds(db, table)
            db.executemany(
                "INSERT INTO servers VALUES (?, ?)",
                [(n, p.to_bytes()) for n, p in table.servers.items()],
            )
            db.executemany("INSERT INTO locations VALUES (?, ?)", list(table.locations.items()))
            db.executemany(
                "INSERT INTO service_allocations VALUES (?, ?, ?, ?, ?)",
                [(name, a.server, a.cloud, a.session_id, encoding.encode(a.allocated))
                 for name, a in services.items()],
            )
