"""A replay cache bounded in size and in time.

A message carries its send time (ms) and an id in its authenticated header. The receiver refuses
a message whose send time lies outside [now - window, now + skew] (EXPIRED), one whose key it has
seen inside the window (REPLAY), and, when `max_entries` unexpired ids are held, every new one
(LIMIT_REACHED: fail closed rather than forget an id that could still be replayed). Entries older
than the window are dropped, so state never exceeds `max_entries`.
Record a message only after it authenticated, so forgeries cannot fill the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from agents.security.errors import ErrorCode, ProtocolError

DEFAULT_WINDOW_MS = 60_000
DEFAULT_SKEW_MS = 5_000
DEFAULT_MAX_ENTRIES = 100_000


class ReplayCache:
    """Seen message keys with their send times, bounded by `max_entries` and `window_ms`."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES,
                 window_ms: int = DEFAULT_WINDOW_MS, skew_ms: int = DEFAULT_SKEW_MS) -> None:
        if max_entries < 1 or window_ms < 1 or skew_ms < 0:
            raise ValueError("replay cache bounds must be positive")
        self.max_entries = max_entries
        self.window_ms = window_ms
        self.skew_ms = skew_ms
        # insertion order = arrival order; expiry uses the max of send time seen so far
        self._seen: OrderedDict[Hashable, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check_fresh(self, sent_ms: int, now_ms: int) -> None:
        """Refuse a send time outside the window around `now_ms` (ProtocolError EXPIRED)."""
        if sent_ms < now_ms - self.window_ms or sent_ms > now_ms + self.skew_ms:
            raise ProtocolError(ErrorCode.EXPIRED,
                                f"message sent at {sent_ms} ms is outside the freshness window "
                                f"({self.window_ms} ms) around {now_ms} ms")

    def _purge(self, now_ms: int) -> None:
        limit = now_ms - self.window_ms - self.skew_ms
        stale = [k for k, t in self._seen.items() if t < limit]
        for k in stale:
            del self._seen[k]

    def check_and_record(self, key: Hashable, sent_ms: int, now_ms: int) -> None:
        """Refuse a stale, replayed or (when full) any new message; otherwise remember `key`."""
        self.check_fresh(sent_ms, now_ms)
        if key in self._seen:
            raise ProtocolError(ErrorCode.REPLAY, "message was already received")
        if len(self._seen) >= self.max_entries:
            self._purge(now_ms)
            if len(self._seen) >= self.max_entries:
                raise ProtocolError(ErrorCode.LIMIT_REACHED,
                                    f"replay cache holds {self.max_entries} fresh ids; retry later")
        self._seen[key] = sent_ms
