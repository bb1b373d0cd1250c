"""Durable ledger state in SQLite, re-verified every time it is opened.

One database file can hold the chains of several ledger nodes (the `owner` column): the
validator's own chain, or the replicas of every peer identity a scale-mode host runs.  Each
owner's blocks are stored as canonical JSON and the whole chain is re-verified on load, so a
block edited on disk (any field), a missing block or a block signed by a non-authority makes
`load_chain` raise the precise `ChainError` instead of serving a tampered ledger.

Durability: the validator's store uses `synchronous=FULL` (a sealed block survives power loss
before it is pushed); peer stores default to `synchronous=NORMAL` in WAL mode (survives a crash
of the process; after a power loss a peer may miss its last blocks and catches up from the
validator, which is the protocol's normal path anyway).

Signing keys (Ed25519, PKCS#8 PEM) are files of mode 0600 created with O_EXCL.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.common.keys import KeyFileError, load_or_create_signing_key
from agents.ledger.chain import Authorities, Block, Chain
from agents.ledger.codec import block_from_json, block_to_json
from agents.ledger.errors import ChainError, LedgerError

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    owner TEXT NOT NULL,
    height INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (owner, height)
);
CREATE TABLE IF NOT EXISTS state (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS members (
    node_id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    role TEXT NOT NULL,
    address TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    reg_seq INTEGER NOT NULL,
    confirmed_height INTEGER NOT NULL DEFAULT -1,
    conf_seq INTEGER NOT NULL DEFAULT 0
);
"""


class StoreCorrupt(ChainError):
    """A stored row disagrees with its block (height or hash column vs body, unreadable body)."""


@dataclass(frozen=True)
class MemberRow:
    node_id: str
    public_key: bytes
    role: str
    address: str
    registered_by: str
    reg_seq: int
    confirmed_height: int
    conf_seq: int


class LedgerStore:
    """SQLite file for ledger chains, counters and (on the validator) the member registry."""

    def __init__(self, path: Path | str, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        os.chmod(self.path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------------------ chains

    def load_chain(self, owner: str, authorities: Authorities) -> Chain:
        """Read `owner`'s blocks in height order and re-verify every one of them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT height, block_hash, body FROM blocks WHERE owner = ? ORDER BY height",
                (owner,),
            ).fetchall()
        chain = Chain(authorities)
        for height, block_hash, body in rows:
            try:
                block = block_from_json(body)
            except LedgerError as exc:
                raise StoreCorrupt(height, f"{self.path}: {exc}") from exc
            if block.height != height or block.block_hash.hex() != block_hash:
                raise StoreCorrupt(height, f"{self.path}: row of {owner!r} disagrees with body")
            chain.append(block)  # raises ChainError on the first bad block
        return chain

    def append_block(self, owner: str, block: Block) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO blocks (owner, height, block_hash, body) VALUES (?, ?, ?, ?)",
                (owner, block.height, block.hash_hex, block_to_json(block)),
            )

    def owners(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT owner FROM blocks ORDER BY owner").fetchall()
        return [r[0] for r in rows]

    def size_bytes(self, owner: str | None = None) -> int:
        """Bytes of stored block bodies (all owners, or one)."""
        query = "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM blocks"
        args: tuple[str, ...] = ()
        if owner is not None:
            query += " WHERE owner = ?"
            args = (owner,)
        with self._lock:
            return int(self._db.execute(query, args).fetchone()[0])

    # ---------------------------------------------------------------------------- counters

    def get_counter(self, owner: str, key: str, default: int = 0) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM state WHERE owner = ? AND key = ?", (owner, key)
            ).fetchone()
        return default if row is None else int(row[0])

    def set_counter(self, owner: str, key: str, value: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO state (owner, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value",
                (owner, key, value),
            )

    # ------------------------------------------------------------------------------ members

    def save_member(self, row: MemberRow) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO members (node_id, public_key, role, address, registered_by, reg_seq,"
                " confirmed_height, conf_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (node_id) DO UPDATE SET address = excluded.address,"
                " reg_seq = excluded.reg_seq",
                (row.node_id, row.public_key, row.role, row.address, row.registered_by,
                 row.reg_seq, row.confirmed_height, row.conf_seq),
            )

    def save_confirmation(self, node_id: str, confirmed_height: int, conf_seq: int) -> None:
        self.save_confirmations([(node_id, confirmed_height, conf_seq)])

    def save_confirmations(self, rows: list[tuple[str, int, int]]) -> None:
        """Persist (node_id, confirmed_height, conf_seq) for many peers in one transaction."""
        if not rows:
            return
        with self._tx() as db:
            db.executemany(
                "UPDATE members SET confirmed_height = ?, conf_seq = ? WHERE node_id = ?",
                [(h, seq, node_id) for node_id, h, seq in rows],
            )

    def members(self) -> list[MemberRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT node_id, public_key, role, address, registered_by, reg_seq,"
                " confirmed_height, conf_seq FROM members ORDER BY node_id"
            ).fetchall()
        return [MemberRow(r[0], bytes(r[1]), *r[2:]) for r in rows]


# ------------------------------------------------------------------------------------ key files


def load_or_create_key(path: Path | str) -> Ed25519PrivateKey:
    """Load an Ed25519 PKCS#8 PEM key (must be 0600 or stricter), creating it if absent
    (`agents.common.keys`; refusals as LedgerError)."""
    try:
        return load_or_create_signing_key(Path(path))
    except KeyFileError as err:
        raise LedgerError(str(err)) from None


__all__ = [
    "ChainError",
    "LedgerStore",
    "MemberRow",
    "StoreCorrupt",
    "load_or_create_key",
]
