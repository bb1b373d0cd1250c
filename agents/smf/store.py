"""SQLite persistence of the SMF: CMSs, services and their servers, users, devices, the service
location records (with fencing epochs), the migration history (`SmfStore`) and the journal of
container migrations (`MigrationJournal`, used by agents/smf/container.py)."""

from __future__ import annotations

import json
import time

from agents.common.store import Migration, Store
from agents.security import encoding
from agents.security.capability import SealedCapability
from agents.security.crypto import PublicIdentity
from agents.security.rasp import Resources
from agents.smf.domain import (
    RUNNING,
    DeviceEntry,
    JournalRow,
    Location,
    MigrationState,
    PhaseRecord,
    ServerEntry,
    ServiceEntry,
    StaleEpoch,
    UserEntry,
)

COMPONENT = "edgeferry.smf"
MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE cms (name TEXT PRIMARY KEY, identity BLOB NOT NULL);
    CREATE TABLE services (
        global_id   TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        version     TEXT NOT NULL,
        local_id    TEXT NOT NULL,
        description TEXT NOT NULL,
        port        INTEGER NOT NULL,
        transport   TEXT NOT NULL,
        requirement BLOB NOT NULL,
        image_ref   TEXT NOT NULL,
        capability  BLOB NOT NULL,
        UNIQUE (name, version)
    );
    CREATE TABLE service_servers (
        service_id TEXT NOT NULL REFERENCES services (global_id),
        name       TEXT NOT NULL,
        global_id  TEXT NOT NULL,
        identity   BLOB NOT NULL,
        ipv4       TEXT NOT NULL,
        port       INTEGER NOT NULL,
        max_load   INTEGER NOT NULL,
        position   INTEGER NOT NULL,
        PRIMARY KEY (service_id, name)
    );
    CREATE TABLE users (
        global_id      TEXT PRIMARY KEY,
        first_name     TEXT NOT NULL,
        surname        TEXT NOT NULL,
        role           TEXT NOT NULL,
        rank           INTEGER NOT NULL,
        specialisation TEXT NOT NULL,
        capability     BLOB NOT NULL
    );
    CREATE TABLE devices (
        global_id     TEXT PRIMARY KEY,
        local_id      TEXT NOT NULL UNIQUE,
        name          TEXT NOT NULL,
        owner_first   TEXT NOT NULL,
        owner_surname TEXT NOT NULL,
        capability    BLOB NOT NULL
    );
    CREATE TABLE locations (
        service_id TEXT PRIMARY KEY REFERENCES services (global_id),
        server     TEXT NOT NULL,
        epoch      INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE migrations (
        id          TEXT PRIMARY KEY,
        service_id  TEXT NOT NULL,
        source      TEXT NOT NULL,
        destination TEXT NOT NULL,
        started_at  REAL NOT NULL,
        outcome     TEXT NOT NULL,
        epoch       INTEGER NOT NULL,
        phases      TEXT NOT NULL
    );
    """,
    # issue 17: the phase order a migration ran in ("diff" or "paper"; "" before)
    "ALTER TABLE migrations ADD COLUMN phase_order TEXT NOT NULL DEFAULT ''",
]


def _server(row: object) -> ServerEntry:
    r = row  # sqlite3.Row
    return ServerEntry(
        name=r["name"],  # type: ignore[index]
        global_id=r["global_id"],  # type: ignore[index]
        public=PublicIdentity.from_bytes(bytes(r["identity"])),  # type: ignore[index]
        ipv4=r["ipv4"],  # type: ignore[index]
        port=int(r["port"]),  # type: ignore[index]
        max_load=int(r["max_load"]),  # type: ignore[index]
    )


class SmfStore:
    """Typed access to the SMF's tables."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(COMPONENT, MIGRATIONS)

    # -- CMS -------------------------------------------------------------------------------------
    def cms(self) -> dict[str, PublicIdentity]:
        """Every registered CMS by name."""
        return {
            r["name"]: PublicIdentity.from_bytes(bytes(r["identity"]))
            for r in self.store.query("SELECT * FROM cms")
        }

    def put_cms(self, public: PublicIdentity) -> None:
        """Insert or replace a CMS's identity."""
        self.store.execute(
            "INSERT INTO cms VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET identity = "
            "excluded.identity",
            (public.name, public.to_bytes()),
        )

    # -- services ----------------------------------------------------------------------------------
    def add_service(self, service: ServiceEntry) -> None:
        """Insert a service, its servers and its first location (epoch 1, first server)."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO services VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (service.global_id, service.name, service.version, service.local_id,
                 service.description, service.port, service.transport,
                 encoding.encode(service.requirement), service.image_ref,
                 service.capability.to_bytes()),
            )
            for pos, server in enumerate(service.servers):
                self._put_server(db, service.global_id, server, pos)
            db.execute(
                "INSERT INTO locations VALUES (?, ?, 1, ?)",
                (service.global_id, service.servers[0].name, time.time()),
            )

    @staticmethod
    def _put_server(db: object, service_id: str, s: ServerEntry, position: int) -> None:
        db.execute(  # type: ignore[attr-defined]
            "INSERT INTO service_servers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (service_id, s.name, s.global_id, s.public.to_bytes(), s.ipv4, s.port, s.max_load,
             position),
        )

    def add_server(self, service_id: str, server: ServerEntry) -> None:
        """Append a server to a service's servers."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 AS p FROM service_servers "
                "WHERE service_id = ?", (service_id,),
            ).fetchone()
            self._put_server(db, service_id, server, int(row["p"]))

    def services(self) -> list[ServiceEntry]:
        """Every service with its servers, ordered by name and version."""
        servers: dict[str, list[ServerEntry]] = {}
        for r in self.store.query("SELECT * FROM service_servers ORDER BY service_id, position"):
            servers.setdefault(r["service_id"], []).append(_server(r))
        return [
            ServiceEntry(
                global_id=r["global_id"], name=r["name"], version=r["version"],
                local_id=r["local_id"], description=r["description"], port=int(r["port"]),
                transport=r["transport"],
                requirement=encoding.decode_as(Resources, bytes(r["requirement"])),
                image_ref=r["image_ref"],
                capability=SealedCapability.from_bytes(bytes(r["capability"])),
                servers=tuple(servers.get(r["global_id"], ())),
            )
            for r in self.store.query("SELECT * FROM services ORDER BY name, version")
        ]

    def service(self, global_id: str) -> ServiceEntry | None:
        """The service `global_id`, or None."""
        return next((s for s in self.services() if s.global_id == global_id), None)

    # -- users and devices -------------------------------------------------------------------------
    def add_user(self, u: UserEntry) -> None:
        """Insert a user."""
        self.store.execute(
            "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)",
            (u.global_id, u.first_name, u.surname, u.role, u.rank, u.specialisation,
             u.capability.to_bytes()),
        )

    def set_user_capability(self, global_id: str, cap: SealedCapability) -> None:
        """Replace a user's USER CAP (after a reissue)."""
        self.store.execute("UPDATE users SET capability = ? WHERE global_id = ?",
                           (cap.to_bytes(), global_id))

    def users(self) -> list[UserEntry]:
        """Every user, ordered by id."""
        return [
            UserEntry(r["global_id"], r["first_name"], r["surname"], r["role"], int(r["rank"]),
                      r["specialisation"], SealedCapability.from_bytes(bytes(r["capability"])))
            for r in self.store.query("SELECT * FROM users ORDER BY global_id")
        ]

    def user(self, global_id: str) -> UserEntry | None:
        """The user `global_id`, or None."""
        return next((u for u in self.users() if u.global_id == global_id), None)

    def add_device(self, d: DeviceEntry) -> None:
        """Insert a device."""
        self.store.execute(
            "INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?)",
            (d.global_id, d.local_id, d.name, d.owner_first_name, d.owner_surname,
             d.capability.to_bytes()),
        )

    def set_device_capability(self, global_id: str, cap: SealedCapability) -> None:
        """Replace a device's DEV CAP (after a reissue)."""
        self.store.execute("UPDATE devices SET capability = ? WHERE global_id = ?",
                           (cap.to_bytes(), global_id))

    def devices(self) -> list[DeviceEntry]:
        """Every device, ordered by id."""
        return [
            DeviceEntry(r["global_id"], r["local_id"], r["name"], r["owner_first"],
                        r["owner_surname"], SealedCapability.from_bytes(bytes(r["capability"])))
            for r in self.store.query("SELECT * FROM devices ORDER BY global_id")
        ]

    def device(self, global_id: str) -> DeviceEntry | None:
        """The device `global_id`, or None."""
        return next((d for d in self.devices() if d.global_id == global_id), None)

    # -- locations ---------------------------------------------------------------------------------
    def location(self, service_id: str) -> Location | None:
        """The service's location record, or None."""
        r = self.store.query_one("SELECT * FROM locations WHERE service_id = ?", (service_id,))
        return None if r is None else Location(service_id, r["server"], int(r["epoch"]))

    def commit_location(self, service_id: str, expected_epoch: int, server: str) -> Location:
        """Move the location forward: only from `expected_epoch` to `expected_epoch + 1`."""
        changed = self.store.execute(
            "UPDATE locations SET server = ?, epoch = epoch + 1, updated_at = ? "
            "WHERE service_id = ? AND epoch = ?",
            (server, time.time(), service_id, expected_epoch),
        )
        if changed != 1:
            current = self.location(service_id)
            raise StaleEpoch(
                f"location of {service_id} is at epoch {current.epoch if current else '?'}, "
                f"not {expected_epoch}; another migration moved it first"
            )
        return Location(service_id, server, expected_epoch + 1)

    # -- migration history -------------------------------------------------------------------------
    def record_migration(self, migration_id: str, service_id: str, source: str,
                         destination: str, started_at: float, outcome: str, epoch: int,
                         phases: list[PhaseRecord], order: str = "") -> None:
        """Append a migration to the history with its outcome, phase order and records."""
        self.store.execute(
            "INSERT INTO migrations (id, service_id, source, destination, started_at, outcome, "
            "epoch, phases, phase_order) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (migration_id, service_id, source, destination, started_at, outcome, epoch,
             json.dumps([p.as_dict() for p in phases]), order),
        )

    def migration_orders(self, service_id: str) -> list[tuple[str, str, str]]:
        """(migration id, outcome, phase order) of a service's migrations, oldest first."""
        return [(r["id"], r["outcome"], r["phase_order"]) for r in self.store.query(
            "SELECT id, outcome, phase_order FROM migrations WHERE service_id = ? "
            "ORDER BY started_at, rowid", (service_id,))]


# -- container migration journal ----------------------------------------------------------------
# A component of its own (tables created only where the container phases are configured).
CONTAINER_COMPONENT = "edgeferry.smf.container"
CONTAINER_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE container_migrations (
        service_id     TEXT PRIMARY KEY,
        migration_id   TEXT NOT NULL,
        source         TEXT NOT NULL,
        destination    TEXT NOT NULL,
        location_epoch INTEGER NOT NULL,
        attempt        INTEGER NOT NULL,
        state          TEXT NOT NULL,
        cleanup        TEXT NOT NULL,
        detail         TEXT NOT NULL,
        updated_at     REAL NOT NULL
    );
    """,
    # issue 17: the registry reference the service runs from after its last committed
    # migration (the diff-first order pre-pulls it at the next destination)
    """
    CREATE TABLE container_images (
        service_id TEXT PRIMARY KEY,
        image_ref  TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
]


class MigrationJournal:
    """Per service: the current (or last) container migration, its attempt and outcome."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(CONTAINER_COMPONENT, CONTAINER_MIGRATIONS)

    def get(self, service_id: str) -> JournalRow | None:
        """The service's journal row (None before its first container migration)."""
        r = self.store.query_one("SELECT * FROM container_migrations WHERE service_id = ?",
                                 (service_id,))
        if r is None:
            return None
        return JournalRow(r["service_id"], r["migration_id"], r["source"], r["destination"],
                          int(r["location_epoch"]), int(r["attempt"]), r["state"],
                          json.loads(r["cleanup"]), r["detail"])

    def begin(self, state: MigrationState, migration_id: str, attempt: int) -> None:
        """Record `attempt` of node migration `migration_id` as running (pending cleanups kept)."""
        self.store.execute(
            "INSERT INTO container_migrations VALUES (?, ?, ?, ?, ?, ?, ?, '{}', '', ?) "
            "ON CONFLICT(service_id) DO UPDATE SET migration_id = excluded.migration_id, "
            "source = excluded.source, destination = excluded.destination, "
            "location_epoch = excluded.location_epoch, attempt = excluded.attempt, "
            "state = excluded.state, detail = '', updated_at = excluded.updated_at",
            (state.service.global_id, migration_id, state.source.name, state.destination.name,
             state.epoch, attempt, RUNNING, time.time()))

    def finish(self, service_id: str, outcome: str, detail: str = "") -> None:
        """Set the migration's final state (committed, rolled_back or failed) and its detail."""
        self.store.execute(
            "UPDATE container_migrations SET state = ?, detail = ?, updated_at = ? "
            "WHERE service_id = ?", (outcome, detail[:500], time.time(), service_id))

    def image(self, service_id: str) -> str:
        """The registry reference the service runs from since its last committed container
        migration ("" before the first)."""
        r = self.store.query_one("SELECT image_ref FROM container_images WHERE service_id = ?",
                                 (service_id,))
        return "" if r is None else str(r["image_ref"])

    def set_image(self, service_id: str, image_ref: str) -> None:
        """Record the reference the service runs from after a committed migration."""
        self.store.execute(
            "INSERT INTO container_images VALUES (?, ?, ?) ON CONFLICT(service_id) DO UPDATE "
            "SET image_ref = excluded.image_ref, updated_at = excluded.updated_at",
            (service_id, image_ref, time.time()))

    def set_cleanup(self, service_id: str, server: str, workload: str | None) -> None:
        """Record (workload) or clear (None) a stopped container left on ``server``."""
        row = self.get(service_id)
        pending = dict(row.cleanup) if row else {}
        if workload is None:
            pending.pop(server, None)
        else:
            pending[server] = workload
        self.store.execute("UPDATE container_migrations SET cleanup = ? WHERE service_id = ?",
                           (json.dumps(pending), service_id))
