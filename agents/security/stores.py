"""Storage interfaces the security layer needs, plus in-memory implementations for tests.

The agents back these with SQLite (their `store.py`); the protocol code only sees the
interfaces. Both must be atomic per call: an implementation shared between threads or
processes has to make `remember` a single check-and-insert (e.g. `INSERT ... ON CONFLICT DO
NOTHING` and look at the row count).
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable


@runtime_checkable
class RevocationStore(Protocol):
    """Server-side revocation state for sealed capabilities.

    `key` identifies one capability version (its 112-bit body: type, SYS, property, object id,
    random). `until_ms` is when the entry can be forgotten because the capability would have
    expired anyway (None: keep forever).
    """

    def revoke(self, key: bytes, until_ms: int | None) -> None: ...

    def is_revoked(self, key: bytes) -> bool: ...

    def purge(self, now_ms: int) -> int:
        """Forget entries whose `until_ms` has passed; return how many were dropped."""
        ...


@runtime_checkable
class ReplayCache(Protocol):
    """Message digests already accepted by one party."""

    def seen(self, key: bytes) -> bool: ...

    def remember(self, key: bytes, until_ms: int) -> bool:
        """Record `key`; False (and no change) if it was already recorded."""
        ...

    def purge(self, now_ms: int) -> int: ...


class InMemoryRevocationStore:
    """RevocationStore in a dict (tests, benchmarks)."""

    def __init__(self) -> None:
        self._entries: dict[bytes, int | None] = {}
        self._lock = threading.Lock()

    def revoke(self, key: bytes, until_ms: int | None) -> None:
        with self._lock:
            self._entries[bytes(key)] = until_ms

    def is_revoked(self, key: bytes) -> bool:
        with self._lock:
            return bytes(key) in self._entries

    def purge(self, now_ms: int) -> int:
        with self._lock:
            dead = [k for k, u in self._entries.items() if u is not None and u <= now_ms]
            for k in dead:
                del self._entries[k]
            return len(dead)

    def __len__(self) -> int:
        return len(self._entries)


class InMemoryReplayCache:
    """ReplayCache in a dict (tests, benchmarks)."""

    def __init__(self) -> None:
        self._entries: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def seen(self, key: bytes) -> bool:
        with self._lock:
            return bytes(key) in self._entries

    def remember(self, key: bytes, until_ms: int) -> bool:
        with self._lock:
            if bytes(key) in self._entries:
                return False
            self._entries[bytes(key)] = until_ms
            return True

    def purge(self, now_ms: int) -> int:
        with self._lock:
            dead = [k for k, until in self._entries.items() if until <= now_ms]
            for k in dead:
                del self._entries[k]
            return len(dead)

    def __len__(self) -> int:
        return len(self._entries)
