"""Central-cloud baseline of BloSM Figure 11: one metadata store, no consensus, no replicas.

The source uploads the same signed transaction it would write to the ledger; the central
service checks the signature, the timestamp window and that the id is new (replay guard), and
stores it durably; the destination asks for the newest metadata of a container.  No grpc here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agents.ledger.codec import tx_from_dict, tx_to_dict
from agents.ledger.consensus import DEFAULT_TX_WINDOW_MS
from agents.ledger.errors import AdmissionRefused, InvalidMetadata, LedgerError, ReplayDetected
from agents.ledger.transactions import Transaction


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CentralStore:
    """SQLite table of signed metadata uploads (synchronous=FULL: the cloud is the only copy)."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock_ms: Callable[[], int] = wall_ms,
        window_ms: int = DEFAULT_TX_WINDOW_MS,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock_ms = clock_ms
        self._window_ms = window_ms
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        os.chmod(self.path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS metadata (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " tx_id TEXT UNIQUE NOT NULL, container_id TEXT NOT NULL, body TEXT NOT NULL)"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, tx: Transaction) -> str:
        try:
            tx.check()
        except InvalidMetadata as exc:
            raise AdmissionRefused(str(exc)) from exc
        if abs(self._clock_ms() - tx.timestamp_ms) > self._window_ms:
            raise AdmissionRefused("transaction timestamp is outside the accepted window")
        body = json.dumps(tx_to_dict(tx), sort_keys=True, separators=(",", ":"))
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO metadata (tx_id, container_id, body) VALUES (?, ?, ?)",
                    (tx.tx_id, tx.metadata.container_id, body),
                )
            except sqlite3.IntegrityError:
                raise ReplayDetected(f"transaction {tx.tx_id[:16]} was already uploaded") from None
        return tx.tx_id

    def latest(self, container_id: str) -> Transaction | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM metadata WHERE container_id = ? ORDER BY seq DESC LIMIT 1",
                (container_id,),
            ).fetchone()
        if row is None:
            return None
        tx = tx_from_dict(json.loads(row[0]))
        try:
            tx.check()  # the stored copy must still carry a valid submitter signature
        except LedgerError as exc:
            raise LedgerError(f"stored metadata for {container_id!r} was altered: {exc}") from exc
        return tx

    def size_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM metadata").fetchone()[0])
