"""SQLite persistence of the node agent's RASP endpoint: the host's allocation (a baseline plus
one row per service that arrived by RASP). Resources are stored as their canonical encodings."""

from __future__ import annotations

from dataclasses import dataclass

from agents.common.store import Migration, Store
from agents.security import encoding
from agents.security.rasp import Resources

ENDPOINT_COMPONENT = "edgeferry.ras.endpoint"  # kept: names existing stores' migrations
ENDPOINT_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE endpoint_allocation (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        allocated BLOB NOT NULL
    );
    """,
    # per service that arrived here: its allocation (the row above is now only the baseline
    # ALLOC of services not placed by RASP)
    """
    CREATE TABLE endpoint_services (
        service     TEXT PRIMARY KEY,
        session_id  BLOB NOT NULL,
        source      TEXT NOT NULL,
        allocated   BLOB NOT NULL,
        arrived_at  REAL NOT NULL
    );
    """,
]



def _res(blob: bytes) -> Resources:
    return encoding.decode_as(Resources, bytes(blob))


@dataclass(frozen=True)
class Arrival:
    """A service that arrived at this host by RASP and holds `allocated` here."""

    service: str
    session_id: bytes
    source: str
    allocated: Resources


class EndpointStore:
    """An edge host's allocation as seen by its RASP endpoint: a baseline (services not placed
    by RASP) plus one allocation per service that arrived (step 10) and has not left."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(ENDPOINT_COMPONENT, ENDPOINT_MIGRATIONS)

    def allocated(self, default: Resources) -> Resources:
        row = self.store.query_one("SELECT allocated FROM endpoint_allocation WHERE id = 1")
        return default if row is None else _res(row["allocated"])

    def arrivals(self) -> dict[str, Arrival]:
        return {
            r["service"]: Arrival(r["service"], bytes(r["session_id"]), r["source"],
                                  _res(r["allocated"]))
            for r in self.store.query("SELECT * FROM endpoint_services")
        }

    def put_arrival(self, arrival: Arrival, at: float) -> None:
        """Record (or replace: a service is on a host at most once) a service's allocation."""
        self.store.execute(
            "INSERT INTO endpoint_services VALUES (?, ?, ?, ?, ?) ON CONFLICT(service) DO UPDATE "
            "SET session_id = excluded.session_id, source = excluded.source, "
            "allocated = excluded.allocated, arrived_at = excluded.arrived_at",
            (arrival.service, arrival.session_id, arrival.source,
             encoding.encode(arrival.allocated), at),
        )

    def drop_arrival(self, service: str, session_id: bytes) -> bool:
        """Free the allocation `service` got in `session_id`; False when it is not held."""
        return bool(self.store.execute(
            "DELETE FROM endpoint_services WHERE service = ? AND session_id = ?",
            (service, session_id),
        ))

    def set_allocated(self, value: Resources) -> None:
        self.store.execute(
            "INSERT INTO endpoint_allocation (id, allocated) VALUES (1, ?) "
            "ON CONFLICT(id) DO UPDATE SET allocated = excluded.allocated",
            (encoding.encode(value),),
        )
