"""SQLite persistence of the RAS table and the registry's RASP sessions, and of an endpoint's
allocation. Resources and identities are stored as their canonical encodings."""

from __future__ import annotations

from agents.common.store import Migration, Store
from agents.security import encoding
from agents.security.crypto import PublicIdentity
from agents.security.rasp import CloudEntry, RasTable, RegistrySession, Resources

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
]

ENDPOINT_COMPONENT = "edgeferry.ras.endpoint"
ENDPOINT_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE endpoint_allocation (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        allocated BLOB NOT NULL
    );
    """,
]


def _res(blob: bytes) -> Resources:
    return encoding.decode_as(Resources, bytes(blob))


class RasStore:
    """The registry's durable state: RAS table + RASP sessions."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(RAS_COMPONENT, RAS_MIGRATIONS)

    def load(self) -> tuple[RasTable, dict[bytes, RegistrySession]]:
        table = RasTable()
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
        sessions = {
            bytes(row["session_id"]): RegistrySession(
                server=row["server"],
                cloud=row["cloud"],
                res_cb=_res(row["res_cb"]),
                res_sa=None if row["res_sa"] is None else _res(row["res_sa"]),
                done=int(row["done"]),
            )
            for row in self.store.query("SELECT * FROM rasp_sessions")
        }
        return table, sessions

    def save(self, table: RasTable, sessions: dict[bytes, RegistrySession]) -> None:
        """Write the whole state in one transaction (the table is small)."""
        with self.store.transaction() as db:
            for name in ("clouds", "servers", "allocations", "locations", "rasp_sessions"):
                db.execute(f"DELETE FROM {name}")
            db.executemany(
                "INSERT INTO clouds VALUES (?, ?, ?, ?)",
                [
                    (n, e.public.to_bytes(), encoding.encode(e.maximum),
                     encoding.encode(e.allocated))
                    for n, e in table.clouds.items()
                ],
            )
            db.executemany(
                "INSERT INTO servers VALUES (?, ?)",
                [(n, p.to_bytes()) for n, p in table.servers.items()],
            )
            db.executemany(
                "INSERT INTO allocations VALUES (?, ?, ?)",
                [(s, c, encoding.encode(r)) for (s, c), r in table.allocations.items()],
            )
            db.executemany("INSERT INTO locations VALUES (?, ?)", list(table.locations.items()))
            db.executemany(
                "INSERT INTO rasp_sessions VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (sid, s.server, s.cloud, encoding.encode(s.res_cb),
                     None if s.res_sa is None else encoding.encode(s.res_sa), s.done)
                    for sid, s in sessions.items()
                ],
            )


class EndpointStore:
    """An edge host's allocation as seen by its RASP endpoint (grows with each inbound M_Trf)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(ENDPOINT_COMPONENT, ENDPOINT_MIGRATIONS)

    def allocated(self, default: Resources) -> Resources:
        row = self.store.query_one("SELECT allocated FROM endpoint_allocation WHERE id = 1")
        return default if row is None else _res(row["allocated"])

    def set_allocated(self, value: Resources) -> None:
        self.store.execute(
            "INSERT INTO endpoint_allocation (id, allocated) VALUES (1, ?) "
            "ON CONFLICT(id) DO UPDATE SET allocated = excluded.allocated",
            (encoding.encode(value),),
        )


def dump(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """Every table of a store as sorted rows (state snapshots for tests and diagnostics)."""
    names = [
        r["name"]
        for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    ]
    out: dict[str, list[tuple[object, ...]]] = {}
    for name in names:
        rows = [tuple(r) for r in store.query(f'SELECT * FROM "{name}"')]
        out[name] = sorted(rows, key=repr)
    return out
