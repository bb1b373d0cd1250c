"""Store: WAL, migrations per component, transactions, file modes; ReplayCache semantics."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.common.errors import StoreError
from agents.common.store import Freshness, ReplayCache, SqliteRevocationStore, Store
from agents.security.stores import ReplayCache as SecurityReplayCache
from agents.security.stores import RevocationStore


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "data" / "agent.sqlite3")
    yield s
    s.close()


def test_files_are_private_and_wal_is_on(store: Store) -> None:
    store.migrate("t", ["CREATE TABLE t (x INTEGER)"])
    store.execute("INSERT INTO t VALUES (1)")
    row = store.query_one("PRAGMA journal_mode")
    assert row is not None and row[0] == "wal"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    for side in store.path.parent.iterdir():
        assert stat.S_IMODE(side.stat().st_mode) == 0o600, side


def test_existing_loose_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "loose.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    Store.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_migrations_apply_once_in_order_per_component(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    v1 = ["CREATE TABLE a (id TEXT PRIMARY KEY)"]
    v2 = [*v1, "ALTER TABLE a ADD COLUMN region TEXT; CREATE INDEX a_region ON a (region);"]
    with Store.open(path) as s:
        assert s.migrate("agent", v1) == 1
        s.execute("INSERT INTO a (id) VALUES ('edge1')")
    with Store.open(path) as s:
        assert s.schema_version("agent") == 1
        assert s.migrate("agent", v2) == 2
        assert s.migrate("agent", v2) == 2  # idempotent
        s.execute("UPDATE a SET region = 'kr'")
        assert [tuple(r) for r in s.query("SELECT id, region FROM a")] == [("edge1", "kr")]
        assert s.migrate("other", [lambda db: db.execute("CREATE TABLE b (x)")]) == 1
        assert s.schema_version("agent") == 2 and s.schema_version("other") == 1


def test_newer_schema_than_code_is_refused(store: Store) -> None:
    store.migrate("agent", ["CREATE TABLE a (x)", "CREATE TABLE b (x)"])
    with pytest.raises(StoreError, match="version 2 but this agent knows only 1"):
        store.migrate("agent", ["CREATE TABLE a (x)"])


def test_failed_migration_rolls_back_whole_step(store: Store) -> None:
    with pytest.raises(StoreError, match="migration agent v1 failed"):
        store.migrate("agent", ["CREATE TABLE ok (x); CREATE TABLE broken (;"])
    assert store.schema_version("agent") == 0
    assert store.query_one("SELECT name FROM sqlite_master WHERE name = 'ok'") is None


def test_transaction_commits_or_rolls_back(store: Store) -> None:
    store.migrate("t", ["CREATE TABLE t (x INTEGER UNIQUE)"])
    with store.transaction() as db:
        db.execute("INSERT INTO t VALUES (1)")
        with store.transaction() as inner:  # nested joins the outer transaction
            inner.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as db:
        db.execute("INSERT INTO t VALUES (3)")
        db.execute("INSERT INTO t VALUES (1)")
    assert [r[0] for r in store.query("SELECT x FROM t ORDER BY x")] == [1, 2]


def test_unopenable_path_is_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open store"):
        Store.open(blocker / "sub" / "db.sqlite3")


def test_replay_cache_detects_replay_and_is_namespaced(store: Store) -> None:
    rasp, ssp = ReplayCache(store, "rasp"), ReplayCache(store, "ssp")
    assert rasp.check_and_insert(b"n1")
    assert not rasp.check_and_insert(b"n1")
    assert ssp.check_and_insert(b"n1")
    assert rasp.seen(b"n1") and not rasp.seen(b"n2")
    assert len(rasp) == 1
    with pytest.raises(ValueError, match="empty nonce"):
        rasp.check_and_insert(b"")


def test_replay_cache_expiry_and_purge(store: Store) -> None:
    clock = Clock()
    cache = ReplayCache(store, "t", default_ttl=10, clock=clock)
    assert cache.check_and_insert(b"a")
    assert cache.check_and_insert(b"b", ttl=100)
    assert cache.check_and_insert(b"c", expires_at=clock.now + 5)
    clock.now += 9
    assert not cache.check_and_insert(b"a")  # still remembered
    clock.now += 2
    assert not cache.seen(b"a") and cache.seen(b"b") and not cache.seen(b"c")
    assert cache.check_and_insert(b"a")  # expired entries may be reused (freshness window)
    assert cache.purge_expired() == 1  # "c"
    assert len(cache) == 2


def test_replay_cache_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    with Store.open(path) as s:
        assert ReplayCache(s, "x").check_and_insert(b"nonce")
    with Store.open(path) as s:
        assert not ReplayCache(s, "x").check_and_insert(b"nonce")


def test_replay_cache_check_and_insert_is_atomic_across_threads_and_connections(
    tmp_path: Path,
) -> None:
    path = tmp_path / "race.sqlite3"
    stores = [Store.open(path) for _ in range(4)]
    caches = [ReplayCache(s, "race") for s in stores]
    wins: list[bytes] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        cache = caches[i % len(caches)]
        barrier.wait()
        for n in range(50):
            nonce = f"nonce-{n}".encode()
            if cache.check_and_insert(nonce):
                with lock:
                    wins.append(nonce)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert sorted(wins) == sorted(f"nonce-{n}".encode() for n in range(50))


def test_admit_checks_timestamp_window_and_nonce(store: Store) -> None:
    clock = Clock(10_000.0)
    cache = ReplayCache(store, "msgs", clock=clock)
    assert cache.admit(b"n1", clock.now - 5, window=30) is Freshness.FRESH
    assert cache.admit(b"n1", clock.now - 5, window=30) is Freshness.REPLAY
    assert cache.admit(b"n2", clock.now - 31, window=30) is Freshness.STALE
    assert cache.admit(b"n3", clock.now + 31, window=30) is Freshness.STALE  # from the future
    assert not cache.seen(b"n2")  # stale messages do not consume nonces
    # once the nonce is forgotten, the same message is too old to pass the window check
    clock.now += 26
    assert cache.admit(b"n1", clock.now - 31, window=30) is Freshness.STALE
    with pytest.raises(ValueError, match="window"):
        cache.admit(b"n4", clock.now, window=0)


def test_replay_cache_satisfies_security_protocol(store: Store) -> None:
    cache = ReplayCache(store, "proto", clock=Clock(100.0))
    assert isinstance(cache, SecurityReplayCache)
    assert cache.remember(b"k", until_ms=200_000)
    assert not cache.remember(b"k", until_ms=300_000)
    assert cache.seen(b"k")
    assert cache.purge(now_ms=150_000) == 0
    assert cache.purge(now_ms=200_000) == 1
    assert not cache.seen(b"k")


def test_revocation_store_persists_and_purges(tmp_path: Path) -> None:
    path = tmp_path / "rev.sqlite3"
    with Store.open(path) as s:
        rev = SqliteRevocationStore(s, "caps")
        assert isinstance(rev, RevocationStore)
        rev.revoke(b"cap-1", until_ms=1_000)
        rev.revoke(b"cap-1", until_ms=5_000)  # later expiry wins
        rev.revoke(b"cap-2", until_ms=None)  # forever
        rev.revoke(b"cap-3", until_ms=2_000)
        rev.revoke(b"cap-3", until_ms=None)  # forever wins
    with Store.open(path) as s:
        rev = SqliteRevocationStore(s, "caps")
        assert rev.is_revoked(b"cap-1") and not rev.is_revoked(b"cap-9")
        assert not SqliteRevocationStore(s, "other").is_revoked(b"cap-1")
        assert rev.purge(now_ms=4_999) == 0
        assert rev.purge(now_ms=5_000) == 1
        assert not rev.is_revoked(b"cap-1")
        assert rev.is_revoked(b"cap-2") and rev.is_revoked(b"cap-3")
        assert len(rev) == 2
