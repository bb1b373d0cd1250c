"""SQLite persistence for agents: WAL, per-component schema migrations, transactions, 0600 files.

    store = Store.open(config.resolved_data_dir / "ras.sqlite3")
    store.migrate("ras", [
        "CREATE TABLE clouds (id TEXT PRIMARY KEY, pubkey BLOB NOT NULL)",    # version 1
        "ALTER TABLE clouds ADD COLUMN region TEXT",                         # version 2
    ])
    with store.transaction() as db:
        db.execute("INSERT INTO clouds (id, pubkey) VALUES (?, ?)", ("edge1", b"..."))
    replay = ReplayCache(store, namespace="rasp")
    if replay.admit(msg.nonce, msg.timestamp_ms / 1000, window=120) is not Freshness.FRESH:
        ...  # reject: REPLAY or STALE_NONCE
    revoked = SqliteRevocationStore(store, namespace="capabilities")

``ReplayCache`` and ``SqliteRevocationStore`` satisfy the ``agents.security.stores`` protocols
(``remember``/``seen``/``purge`` and ``revoke``/``is_revoked``/``purge``, times in ms), so they
can be handed to the security layer directly.

Migrations are append-only lists: each entry (SQL script or callable taking the connection) runs
once, in order, inside one transaction with its version bump; never edit an applied entry, add a
new one. Several components (the agent, the shared replay cache) keep separate version counters
in the ``schema_versions`` table of the same database.

One connection is shared by the agent's RPC threads and serialised by a lock; SQLite's
``busy_timeout`` covers other processes using the same file.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from agents.common.errors import StoreError

Migration = str | Callable[[sqlite3.Connection], object]

FILE_MODE = 0o600
DIR_MODE = 0o700


def _ensure_private_file(path: Path) -> None:
    """Create ``path`` with mode 0600 if missing; tighten it if it exists."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


class Store:
    """A SQLite database file owned by one agent."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            _ensure_private_file(self.path)
            self._db = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open store {self.path}: {err}") from None
        self._tighten_sidecars()

    @classmethod
    def open(cls, path: Path, **kwargs: Any) -> Store:
        return cls(path, **kwargs)

    def _tighten_sidecars(self) -> None:
        for suffix in ("-wal", "-shm", "-journal"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.chmod(side, FILE_MODE)

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT (ROLLBACK on error); nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement in its own transaction; return the number of rows changed."""
        with self.transaction() as db:
            return db.execute(sql, params).rowcount

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def query_one(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
            return row

    # -- schema -------------------------------------------------------------------------------
    def schema_version(self, component: str) -> int:
        row = self.query_one(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        )
        return int(row["version"]) if row else 0

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Apply the not-yet-applied ``migrations`` of ``component``; return the new version."""
        with self._lock:
            current = self.schema_version(component)
            if current > len(migrations):
                raise StoreError(
                    f"{self.path}: {component} schema is version {current} but this agent knows "
                    f"only {len(migrations)}; upgrade the agent or move the data dir away"
                )
            for version, step in enumerate(migrations[current:], start=current + 1):
                try:
                    self._apply(component, version, step)
                except sqlite3.Error as err:
                    raise StoreError(
                        f"{self.path}: migration {component} v{version} failed: {err}"
                    ) from None
            self._tighten_sidecars()
            return len(migrations)

    def _apply(self, component: str, version: int, step: Migration) -> None:
        with self.transaction() as db:
            if callable(step):
                step(db)
            else:
                for statement in _split_sql(step):
                    db.execute(statement)
            db.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                (component, version),
            )

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock, suppress(sqlite3.Error):
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


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


def _split_sql(script: str) -> list[str]:
    """Split a migration script into complete statements (executescript would auto-COMMIT)."""
    statements, buf = [], ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                statements.append(buf.strip())
            buf = ""
    if buf.strip(" \t\r\n;"):
        statements.append(buf.strip())  # incomplete: let SQLite report the syntax error
    return statements


REPLAY_CACHE_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE replay_cache (
        namespace  TEXT NOT NULL,
        nonce      BLOB NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (namespace, nonce)
    ) WITHOUT ROWID;
    CREATE INDEX replay_cache_expiry ON replay_cache (expires_at);
    """,
]


class Freshness(enum.Enum):
    """Outcome of `ReplayCache.admit` (map to ErrorCode REPLAY / STALE_NONCE)."""

    FRESH = "fresh"
    REPLAY = "replay"
    STALE = "stale"


class ReplayCache:
    """Nonces seen recently, persisted so a restarted agent still rejects replays.

    ``check_and_insert`` is atomic: of two concurrent calls with the same nonce exactly one
    returns True. A nonce is remembered until its expiry; callers must therefore also reject
    messages older than the ttl (timestamp freshness window), otherwise an old message could be
    replayed after its nonce expired.
    """

    COMPONENT = "edgeferry.replay_cache"

    def __init__(
        self,
        store: Store,
        namespace: str = "default",
        *,
        default_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        purge_every: int = 256,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.default_ttl = default_ttl
        self.clock = clock
        self._purge_every = purge_every
        self._inserts = 0
        store.migrate(self.COMPONENT, REPLAY_CACHE_MIGRATIONS)

    def check_and_insert(
        self, nonce: bytes, *, ttl: float | None = None, expires_at: float | None = None
    ) -> bool:
        """Record ``nonce``; True if it was fresh, False if it is a replay (already seen)."""
        if not nonce:
            raise ValueError("empty nonce")
        now = self.clock()
        expiry = expires_at if expires_at is not None else now + (ttl or self.default_ttl)
        with self.store.transaction() as db:
            # Insert, or take over the row only if the old entry has expired.
            changed = db.execute(
                "INSERT INTO replay_cache (namespace, nonce, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(namespace, nonce) DO UPDATE SET expires_at = excluded.expires_at "
                "WHERE replay_cache.expires_at <= ?",
                (self.namespace, bytes(nonce), expiry, now),
            ).rowcount
            self._inserts += 1
            if self._inserts % self._purge_every == 0:
                self._purge(db, now)
        return changed == 1

    def admit(self, nonce: bytes, sent_at: float, *, window: float) -> Freshness:
        """Freshness check for one protocol message: timestamp window *and* nonce replay.

        STALE when ``sent_at`` (sender's clock, seconds) is more than ``window`` seconds away
        from now; REPLAY when the nonce was already admitted; otherwise the nonce is remembered
        until ``sent_at + window`` (after which the timestamp check rejects the message anyway,
        so a replay can never slip through once the nonce is forgotten) and FRESH is returned.
        """
        if window <= 0:
            raise ValueError("window must be positive")
        if abs(self.clock() - sent_at) > window:
            return Freshness.STALE
        fresh = self.check_and_insert(nonce, expires_at=sent_at + window)
        return Freshness.FRESH if fresh else Freshness.REPLAY

    # agents.security.stores.ReplayCache protocol (times in integer milliseconds)
    def remember(self, key: bytes, until_ms: int) -> bool:
        """Record ``key`` until ``until_ms``; False (no change) if it is already recorded."""
        return self.check_and_insert(key, expires_at=until_ms / 1000.0)

    def purge(self, now_ms: int) -> int:
        """Forget entries that expired at or before ``now_ms``; return how many."""
        with self.store.transaction() as db:
            return self._purge(db, now_ms / 1000.0)

    def seen(self, nonce: bytes) -> bool:
        """True while ``nonce`` is remembered (not expired)."""
        row = self.store.query_one(
            "SELECT 1 FROM replay_cache WHERE namespace = ? AND nonce = ? AND expires_at > ?",
            (self.namespace, bytes(nonce), self.clock()),
        )
        return row is not None

    def purge_expired(self) -> int:
        """Delete expired nonces of this namespace; return how many were removed."""
        with self.store.transaction() as db:
            return self._purge(db, self.clock())

    def _purge(self, db: sqlite3.Connection, now: float) -> int:
        return db.execute(
            "DELETE FROM replay_cache WHERE namespace = ? AND expires_at <= ?",
            (self.namespace, now),
        ).rowcount

    def __len__(self) -> int:
        row = self.store.query_one(
            "SELECT COUNT(*) AS n FROM replay_cache WHERE namespace = ? AND expires_at > ?",
            (self.namespace, self.clock()),
        )
        return int(row["n"]) if row else 0


REVOCATION_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE revocations (
        namespace TEXT NOT NULL,
        key       BLOB NOT NULL,
        until_ms  INTEGER,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    """,
]


class SqliteRevocationStore:
    """Revoked capability versions / sessions, persisted (agents.security RevocationStore).

    An entry stays revoked until ``purge`` is called after its ``until_ms`` (None = forever);
    revoking again keeps the later of the two expiries.
    """

    COMPONENT = "edgeferry.revocations"

    def __init__(self, store: Store, namespace: str = "default") -> None:
        self.store = store
        self.namespace = namespace
        store.migrate(self.COMPONENT, REVOCATION_MIGRATIONS)

    def revoke(self, key: bytes, until_ms: int | None) -> None:
        self.store.execute(
            "INSERT INTO revocations (namespace, key, until_ms) VALUES (?, ?, ?) "
            "ON CONFLICT(namespace, key) DO UPDATE SET until_ms = CASE "
            "WHEN revocations.until_ms IS NULL OR excluded.until_ms IS NULL THEN NULL "
            "ELSE MAX(revocations.until_ms, excluded.until_ms) END",
            (self.namespace, bytes(key), until_ms),
        )

    def is_revoked(self, key: bytes) -> bool:
        row = self.store.query_one(
            "SELECT 1 FROM revocations WHERE namespace = ? AND key = ?",
            (self.namespace, bytes(key)),
        )
        return row is not None

    def purge(self, now_ms: int) -> int:
        """Forget entries whose ``until_ms`` has passed; return how many were dropped."""
        return self.store.execute(
            "DELETE FROM revocations WHERE namespace = ? AND until_ms IS NOT NULL "
            "AND until_ms <= ?",
            (self.namespace, now_ms),
        )

    def __len__(self) -> int:
        row = self.store.query_one(
            "SELECT COUNT(*) AS n FROM revocations WHERE namespace = ?", (self.namespace,)
        )
        return int(row["n"]) if row else 0


SESSION_TABLE_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE sessions (
        namespace  TEXT NOT NULL,
        key        BLOB NOT NULL,
        value      BLOB NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE INDEX sessions_expiry ON sessions (namespace, expires_at);
    """,
]


class TableFull(StoreError):
    """A bounded table holds ``capacity`` live entries already (after expiring old ones)."""


class SessionTable:
    """Protocol sessions of one agent: bounded, expiring, persisted one row per session.

    ``put`` writes (or rewrites) only that session's row, so a message costs the same with 10
    or 50 000 sessions stored. A new session first drops expired ones; if ``capacity`` live
    sessions remain, it raises `TableFull` and changes nothing. A session lives ``ttl_s``
    seconds from its creation (updates do not extend it): an abandoned handshake frees its slot.
    ``rows_written`` counts the rows each call wrote (tests and benchmarks read it).
    """

    COMPONENT = "edgeferry.sessions"

    def __init__(self, store: Store, namespace: str, *, capacity: int, ttl_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        if capacity < 1 or ttl_s <= 0:
            raise ValueError("capacity must be >= 1 and ttl_s > 0")
        self.store = store
        self.namespace = namespace
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.clock = clock
        self.rows_written = 0
        store.migrate(self.COMPONENT, SESSION_TABLE_MIGRATIONS)
        row = store.query_one("SELECT COUNT(*) AS n FROM sessions WHERE namespace = ?",
                              (namespace,))
        self._rows = int(row["n"]) if row else 0  # rows stored (live or not yet purged)

    def put(self, key: bytes, value: bytes) -> list[bytes]:
        """Store ``value`` under ``key``; return the keys of the sessions it expired to make
        room (so the caller can forget them too). `TableFull` when no room is left."""
        now = self.clock()
        with self.store.transaction() as db:
            updated = db.execute(
                "UPDATE sessions SET value = ? WHERE namespace = ? AND key = ? AND expires_at > ?",
                (bytes(value), self.namespace, bytes(key), now),
            ).rowcount
            if updated:
                self.rows_written += 1
                return []
            expired = self._expire(db, now)  # committed even when the table is full
            live = self._rows  # no COUNT(*): that scan alone grew with the table
            if live < self.capacity:
                db.execute(
                    "INSERT INTO sessions (namespace, key, value, expires_at) "
                    "VALUES (?, ?, ?, ?)",
                    (self.namespace, bytes(key), bytes(value), now + self.ttl_s),
                )
                self._rows += 1
                self.rows_written += 1
                return expired
        raise TableFull(
            f"{self.namespace}: {live} live sessions, the limit is {self.capacity}; "
            f"retry after old ones expire ({self.ttl_s:g} s) or raise the limit")

    def get(self, key: bytes) -> bytes | None:
        """The live session under ``key``, or None."""
        row = self.store.query_one(
            "SELECT value FROM sessions WHERE namespace = ? AND key = ? AND expires_at > ?",
            (self.namespace, bytes(key), self.clock()),
        )
        return None if row is None else bytes(row["value"])

    def delete(self, key: bytes) -> bool:
        """Forget one session; True if it was stored."""
        gone = self.store.execute("DELETE FROM sessions WHERE namespace = ? AND key = ?",
                                  (self.namespace, bytes(key))) == 1
        self._rows -= gone
        return gone

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every live session (at start-up, to rebuild the agent's memory)."""
        rows = self.store.query(
            "SELECT key, value FROM sessions WHERE namespace = ? AND expires_at > ?",
            (self.namespace, self.clock()),
        )
        return [(bytes(r["key"]), bytes(r["value"])) for r in rows]

    def expire(self) -> list[bytes]:
        """Drop the sessions past their lifetime; return their keys."""
        with self.store.transaction() as db:
            return self._expire(db, self.clock())

    def _expire(self, db: sqlite3.Connection, now: float) -> list[bytes]:
        rows = db.execute(
            "DELETE FROM sessions WHERE namespace = ? AND expires_at <= ? RETURNING key",
            (self.namespace, now),
        ).fetchall()
        self._rows -= len(rows)
        return [bytes(r[0]) for r in rows]

    def __len__(self) -> int:
        row = self.store.query_one(
            "SELECT COUNT(*) AS n FROM sessions WHERE namespace = ? AND expires_at > ?",
            (self.namespace, self.clock()),
        )
        return int(row["n"]) if row else 0


class SessionBound:
    """The same bound for sessions an agent keeps in memory only (SMF and SSP sessions): a
    capacity and a lifetime, enforced by `make_room` before a new session is accepted."""

    def __init__(self, *, capacity: int, ttl_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        if capacity < 1 or ttl_s <= 0:
            raise ValueError("capacity must be >= 1 and ttl_s > 0")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.clock = clock
        self._born: dict[Any, float] = {}

    def make_room(self, *tables: dict[Any, Any] | set[Any]) -> None:
        """Drop sessions older than ``ttl_s`` from ``tables`` (dicts keyed by session id, or
        sets of ids); `TableFull` if ``capacity`` remain in them together. Call before handling
        a message that may open a session. A session's age counts from the first call that
        sees it."""
        now = self.clock()
        for sessions in tables:
            for key in list(sessions):
                born = self._born.setdefault(key, now)
                if now - born >= self.ttl_s:
                    if isinstance(sessions, set):
                        sessions.discard(key)
                    else:
                        del sessions[key]
        live = set().union(*tables)
        for key in [k for k in self._born if k not in live]:
            del self._born[key]
        if len(live) >= self.capacity:
            raise TableFull(f"{len(live)} live sessions, the limit is {self.capacity}; "
                            f"retry after old ones expire ({self.ttl_s:g} s)")
