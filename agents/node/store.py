"""The node agent's SQLite store: workloads (reservations) and migration phase records.

A phase record is written as RUNNING before the engine is touched and completed with its
outcome and the serialised response afterwards, so a restarted agent knows which phases of a
migration finished (their stored answers are returned again), which failed, and which were
interrupted (RUNNING rows of a previous process are re-run: every phase is safe to repeat).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.common.store import Migration, Store
from agents.node.domain import Resources, check_epoch

COMPONENT = "edgeferry.node"
MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE workloads (
        name         TEXT PRIMARY KEY,
        container_id TEXT NOT NULL,
        image        TEXT NOT NULL,
        reserved     TEXT NOT NULL,
        migration_id TEXT,
        epoch        INTEGER,
        created_at   REAL NOT NULL
    );
    CREATE TABLE migrations (
        migration_id TEXT PRIMARY KEY,
        max_epoch    INTEGER NOT NULL,
        updated_at   REAL NOT NULL
    );
    CREATE TABLE phases (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        migration_id TEXT NOT NULL,
        epoch        INTEGER NOT NULL,
        phase        TEXT NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('running', 'ok', 'failed')),
        wall_seconds REAL NOT NULL DEFAULT 0,
        bytes_moved  INTEGER NOT NULL DEFAULT 0,
        detail       TEXT NOT NULL DEFAULT '',
        response     BLOB,
        started_at   REAL NOT NULL,
        finished_at  REAL,
        UNIQUE (migration_id, epoch, phase)
    );
    """,
]

RUNNING, OK, FAILED = "running", "ok", "failed"


@dataclass(frozen=True)
class PhaseRow:
    migration_id: str
    epoch: int
    phase: str
    state: str
    wall_seconds: float
    bytes_moved: int
    detail: str
    response: bytes | None


@dataclass(frozen=True)
class WorkloadRow:
    name: str
    container_id: str
    image: str
    reserved: Resources
    migration_id: str | None
    epoch: int | None


class NodeStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(COMPONENT, MIGRATIONS)

    @classmethod
    def open(cls, path: Path) -> NodeStore:
        return cls(Store.open(path))

    def close(self) -> None:
        self.store.close()

    # -- fencing and phases ---------------------------------------------------------------------
    def fence(self, migration_id: str, epoch: int) -> int:
        """Check ``epoch`` against the stored fence and raise it; raise `Fenced` if stale."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT max_epoch FROM migrations WHERE migration_id = ?", (migration_id,)
            ).fetchone()
            new = check_epoch(migration_id, epoch, int(row[0]) if row else None)
            db.execute(
                "INSERT INTO migrations (migration_id, max_epoch, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(migration_id) DO UPDATE SET max_epoch = excluded.max_epoch, "
                "updated_at = excluded.updated_at",
                (migration_id, new, time.time()),
            )
            return new

    def max_epoch(self, migration_id: str) -> int | None:
        row = self.store.query_one(
            "SELECT max_epoch FROM migrations WHERE migration_id = ?", (migration_id,)
        )
        return int(row["max_epoch"]) if row else None

    def phase(self, migration_id: str, epoch: int, phase: str) -> PhaseRow | None:
        row = self.store.query_one(
            "SELECT * FROM phases WHERE migration_id = ? AND epoch = ? AND phase = ?",
            (migration_id, epoch, phase),
        )
        return _phase_row(row) if row else None

    def begin_phase(self, migration_id: str, epoch: int, phase: str) -> None:
        self.store.execute(
            "INSERT INTO phases (migration_id, epoch, phase, state, started_at) "
            "VALUES (?, ?, ?, 'running', ?) ON CONFLICT(migration_id, epoch, phase) DO UPDATE "
            "SET state = 'running', started_at = excluded.started_at, finished_at = NULL",
            (migration_id, epoch, phase, time.time()),
        )

    def finish_phase(self, migration_id: str, epoch: int, phase: str, *, state: str,
                     wall_seconds: float, bytes_moved: int, detail: str,
                     response: bytes | None) -> None:
        self.store.execute(
            "UPDATE phases SET state = ?, wall_seconds = ?, bytes_moved = ?, detail = ?, "
            "response = ?, finished_at = ? WHERE migration_id = ? AND epoch = ? AND phase = ?",
            (state, wall_seconds, bytes_moved, detail, response, time.time(),
             migration_id, epoch, phase),
        )

    def phases(self, migration_id: str) -> list[PhaseRow]:
        rows = self.store.query(
            "SELECT * FROM phases WHERE migration_id = ? ORDER BY seq", (migration_id,)
        )
        return [_phase_row(r) for r in rows]

    # -- workloads ------------------------------------------------------------------------------
    def put_workload(self, row: WorkloadRow) -> None:
        self.store.execute(
            "INSERT INTO workloads (name, container_id, image, reserved, migration_id, epoch, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "container_id = excluded.container_id, image = excluded.image, "
            "reserved = excluded.reserved, migration_id = excluded.migration_id, "
            "epoch = excluded.epoch, created_at = excluded.created_at",
            (row.name, row.container_id, row.image, json.dumps(row.reserved.as_dict()),
             row.migration_id, row.epoch, time.time()),
        )

    def drop_workload(self, name: str) -> bool:
        return self.store.execute("DELETE FROM workloads WHERE name = ?", (name,)) > 0

    def workload(self, name: str) -> WorkloadRow | None:
        row = self.store.query_one("SELECT * FROM workloads WHERE name = ?", (name,))
        return _workload_row(row) if row else None

    def workloads(self) -> list[WorkloadRow]:
        return [_workload_row(r) for r in self.store.query("SELECT * FROM workloads")]


def _phase_row(row: Any) -> PhaseRow:
    return PhaseRow(row["migration_id"], int(row["epoch"]), row["phase"], row["state"],
                    float(row["wall_seconds"]), int(row["bytes_moved"]), row["detail"],
                    row["response"])


def _workload_row(row: Any) -> WorkloadRow:
    return WorkloadRow(row["name"], row["container_id"], row["image"],
                       Resources.from_dict(json.loads(row["reserved"])),
                       row["migration_id"], row["epoch"])
