"""Migrations started from the UI, phase by phase, and the change counter live pages wait on.

A migration runs in a worker thread: first the ``policy_audit`` phase (the audit agent's
decision for the named edge; a DENY stops it with the failing elements), then the SMF's
MigrateServiceStream, whose phases are recorded one by one as each ends (at most
`MAX_LIVE_PHASES`; the final answer's phases replace them). Every change bumps the owner's
version in `Changes`, which the server-sent-events stream waits on, so the status page shows
each phase live.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agents.ui.portal import Phase, Portal, PortalError

MAX_KEPT = 200  # migrations kept in memory per server (oldest dropped first)
MAX_RUNNING_PER_OWNER = 4
MAX_LIVE_PHASES = 64  # phases recorded while a migration runs (a plan has about 15)


class Changes:
    """A version counter per owner; `wait` returns when it moved past what the caller saw."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[str, int] = {}

    def bump(self, owner: str) -> None:
        """Record a change visible to ``owner``."""
        with self._cond:
            self._versions[owner] = self._versions.get(owner, 0) + 1
            self._cond.notify_all()

    def version(self, owner: str) -> int:
        """The owner's current version."""
        with self._cond:
            return self._versions.get(owner, 0)

    def wait(self, owner: str, seen: int, timeout: float) -> int:
        """Block until the owner's version differs from ``seen`` or ``timeout`` passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._versions.get(owner, 0) != seen, timeout)
            return self._versions.get(owner, 0)


@dataclass(frozen=True)
class Migration:
    """One migration as its owner sees it."""

    id: int
    owner: str
    container: str
    edge: str
    state: str  # auditing, denied, migrating, done, failed
    started: float
    phases: tuple[Phase, ...] = ()
    message: str = ""
    finished: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON form (API and SSE)."""
        return {"id": self.id, "container": self.container, "edge": self.edge,
                "state": self.state, "started": self.started, "finished": self.finished,
                "message": self.message,
                "phases": [{"name": p.name, "seconds": p.seconds, "outcome": p.outcome,
                            "detail": p.detail} for p in self.phases]}


@dataclass
class Migrations:
    """Starts migrations in worker threads and keeps their progress."""

    portal: Portal
    changes: Changes
    clock: Callable[[], float] = time.time
    _items: deque[Migration] = field(default_factory=lambda: deque(maxlen=MAX_KEPT))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self, owner: str, container: str, edge: str) -> Migration:
        """Start migrating ``container`` to ``edge``; returns at once (state ``auditing``)."""
        container, edge = container.strip()[:64], edge.strip()[:64]
        if not container or not edge:
            raise PortalError(400, "container and edge: required")
        self.portal.container(owner, container)  # 404 unless the owner's
        with self._lock:
            running = sum(1 for m in self._items
                          if m.owner == owner and m.state in ("auditing", "migrating"))
            if running >= MAX_RUNNING_PER_OWNER:
                raise PortalError(429, f"at most {MAX_RUNNING_PER_OWNER} migrations at a time")
            item = Migration(next(self._ids), owner, container, edge, "auditing", self.clock())
            self._items.append(item)
        self.changes.bump(owner)
        threading.Thread(target=self._run, args=(item,), name=f"migration-{item.id}",
                         daemon=True).start()
        return item

    def _update(self, item: Migration, **fields: object) -> Migration:
        new = replace(item, **fields)  # type: ignore[arg-type]
        with self._lock:
            for i, m in enumerate(self._items):
                if m.id == item.id:
                    self._items[i] = new
        self.changes.bump(item.owner)
        return new

    def _run(self, item: Migration) -> None:
        live = [item]  # the latest version of this migration (updated as phases arrive)

        def on_phase(phase: Phase) -> None:  # in this thread, as each SMF phase ends
            if len(live[0].phases) <= MAX_LIVE_PHASES:
                live[0] = self._update(live[0], phases=(*live[0].phases, phase))

        try:
            t0 = time.perf_counter()
            decision = self.portal.decide(item.owner, item.container, item.edge)
            audit = Phase("policy_audit", time.perf_counter() - t0,
                          "ok" if decision.permit else "rejected",
                          "; ".join(decision.reasons)[:500])
            if not decision.permit:
                self._update(item, state="denied", phases=(audit,), finished=self.clock(),
                             message="DENY: " + ", ".join(decision.failing))
                return
            live[0] = self._update(item, state="migrating", phases=(audit,))
            result = self.portal.migrate(item.owner, item.container, item.edge, on_phase)
            self._update(live[0], state="done" if result.migrated else "failed",
                         phases=(audit, *result.phases), message=result.error,
                         finished=self.clock())
        except PortalError as err:  # the phases that had arrived stay
            self._update(live[0], state="failed", message=str(err), finished=self.clock())

    def of(self, owner: str) -> list[Migration]:
        """The owner's migrations, newest first."""
        with self._lock:
            return [m for m in reversed(self._items) if m.owner == owner]

    def get(self, owner: str, mid: int) -> Migration:
        """One of the owner's migrations (404 for anyone else's)."""
        for m in self.of(owner):
            if m.id == mid:
                return m
        raise PortalError(404, f"no migration {mid}")
