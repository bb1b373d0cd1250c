"""Migrations started from the UI, phase by phase, and the change counter live pages wait on.

A migration goes to a named edge, a region or any edge (`TARGET_KINDS`) and runs in a worker
thread. To a named edge: first the UI's ``policy_audit`` phase (the audit agent's decision for
that edge; a DENY stops it with the failing elements), then the SMF's MigrateServiceStream. To a
region or any edge the UI does not audit up front: the SMF asks the audit agent for the order of
tries and migrates to the first edge it permits; the migration keeps every try (edge,
permit/deny, deny reasons) and the chosen edge. The SMF's phases are recorded one by one as each
ends (at most `MAX_LIVE_PHASES`; the final answer's phases replace them). Every change bumps the
owner's version in `Changes`, which the server-sent-events stream waits on, so the status page
shows each phase live.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agents.ui.portal import MigrationResult, Phase, PhaseCallback, Portal, PortalError, Try

MAX_KEPT = 200  # migrations kept in memory per server (oldest dropped first)
MAX_RUNNING_PER_OWNER = 4
MAX_LIVE_PHASES = 64  # phases recorded while a migration runs (a plan has about 15)
MAX_NAME = 64  # container, edge and region names
#: where a migration may go: a named edge, the first permitted edge of a region, or any edge
TARGET_KINDS = ("edge", "region", "any")


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
    kind: str = "edge"  # one of TARGET_KINDS; ``edge`` is "" unless "edge"
    region: str = ""  # kind "region"
    tries: tuple[Try, ...] = ()  # region / any: the audit's tries, in order
    chosen: str = ""  # region / any: the edge the audit chose (where it went when done)

    @property
    def target(self) -> str:
        """Where it was asked to go, in words."""
        return {"edge": self.edge, "region": f"region {self.region}"}.get(self.kind, "any edge")

    def as_dict(self) -> dict[str, object]:
        """JSON form (API and SSE)."""
        return {"id": self.id, "container": self.container, "edge": self.edge,
                "kind": self.kind, "region": self.region, "target": self.target,
                "chosen": self.chosen, "state": self.state, "started": self.started,
                "finished": self.finished, "message": self.message,
                "tries": [{"edge": t.edge, "permit": t.permit, "reasons": list(t.reasons)}
                          for t in self.tries],
                "phases": [{"name": p.name, "seconds": p.seconds, "outcome": p.outcome,
                            "detail": p.detail} for p in self.phases]}


def check_target(kind: str, edge: str, region: str) -> tuple[str, str, str]:
    """The validated (kind, edge, region) of a migration's target, or a 400 saying what is
    wrong: an unknown kind, a missing edge / region, or one given with the wrong kind."""
    kind, edge, region = kind.strip(), edge.strip(), region.strip()
    if kind not in TARGET_KINDS:
        raise PortalError(400, f"target kind: one of {', '.join(TARGET_KINDS)} "
                               f"(not {kind[:32]!r})")
    for what, value in (("edge", edge), ("region", region)):
        if len(value) > MAX_NAME:
            raise PortalError(400, f"{what}: at most {MAX_NAME} characters")
        if value and kind != what:
            raise PortalError(400, f"{what}: only with target kind {what} (kind is {kind})")
    if kind == "edge" and not edge:
        raise PortalError(400, "edge: required for a migration to a named edge")
    if kind == "region" and not region:
        raise PortalError(400, "region: required for a migration to a region")
    return kind, edge, region


@dataclass
class Migrations:
    """Starts migrations in worker threads and keeps their progress."""

    portal: Portal
    changes: Changes
    clock: Callable[[], float] = time.time
    _items: deque[Migration] = field(default_factory=lambda: deque(maxlen=MAX_KEPT))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self, owner: str, container: str, edge: str = "", *, kind: str = "edge",
              region: str = "") -> Migration:
        """Start migrating ``container`` to ``edge``, the first permitted edge of ``region``
        or any edge (``kind``, see `check_target`); returns at once (state ``auditing``)."""
        kind, edge, region = check_target(kind, edge, region)
        container = container.strip()
        if not container or len(container) > MAX_NAME:
            raise PortalError(400, f"container: required, at most {MAX_NAME} characters")
        self.portal.container(owner, container)  # 404 unless the owner's
        with self._lock:
            running = sum(1 for m in self._items
                          if m.owner == owner and m.state in ("auditing", "migrating"))
            if running >= MAX_RUNNING_PER_OWNER:
                raise PortalError(429, f"at most {MAX_RUNNING_PER_OWNER} migrations at a time")
            item = Migration(next(self._ids), owner, container, edge, "auditing", self.clock(),
                             kind=kind, region=region)
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
        if item.kind != "edge":
            self._run_to_target(item)
            return
        live = [item]  # the latest version of this migration (updated as phases arrive)
        on_phase = self._recorder(live)
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

    def _recorder(self, live: list[Migration]) -> PhaseCallback:
        """on_phase for the SMF's stream: each phase is appended to ``live[0]`` (the latest
        version of the migration) as it ends, bumping the owner's change counter."""
        def on_phase(phase: Phase) -> None:  # in the worker thread, as each SMF phase ends
            if len(live[0].phases) <= MAX_LIVE_PHASES:
                live[0] = self._update(live[0], phases=(*live[0].phases, phase))
        return on_phase

    def _run_to_target(self, item: Migration) -> None:
        """Region / any edge: no audit of the UI's own; the SMF's report has the tries."""
        live = [item]
        try:
            live[0] = self._update(item, state="migrating")
            result: MigrationResult = self.portal.migrate(
                item.owner, item.container, "", self._recorder(live), region=item.region,
                any_edge=item.kind == "any")
        except PortalError as err:  # the phases that had arrived stay
            self._update(live[0], state="failed", message=str(err), finished=self.clock())
            return
        item = live[0]
        permitted = next((t.edge for t in result.tries if t.permit), "")
        denied = not result.migrated and not permitted
        self._update(item, state="done" if result.migrated else "denied" if denied else "failed",
                     phases=result.phases, tries=result.tries, message=result.error,
                     chosen=result.location if result.migrated else permitted,
                     finished=self.clock())

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
