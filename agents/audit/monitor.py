"""The monitor module (seed 002, Figure 8): poll every registered edge for CPU/memory
utilisation and liveness, and every located container for liveness, at a fixed interval
(paper: every 10 minutes), and hand the results to the service.

Node agents are reached through the :class:`NodeProbe` protocol; the deployed agent uses
:class:`agents.audit.nodeprobe.GrpcNodeProbe` (GetResources and DescribeWorkload over mTLS),
tests may use a fake. A probe that raises, or does not answer within its own timeout, is a
*failed reading*: the edge is recorded down with the reason, and the audit then denies it on
liveness and denies cHRcu/cHRmu with that reason. An edge the probe cannot address (no address
registered and none configured) is skipped: what the controller reports for it stays in force.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Protocol

from agents.audit.domain import EdgeAttributes, EdgeState
from agents.audit.service import AuditService, ContainerLiveness
from agents.common.logging import get_logger

DEFAULT_INTERVAL_S = 600.0  # paper: 10 min
MAX_DETAIL = 200


class NotAddressable(Exception):
    """The probe has no address for the edge's node agent: the monitor skips the edge."""


class NodeProbe(Protocol):
    """Asks the node agent on an edge for its utilisation; raises when it cannot."""

    def probe(self, edge: EdgeAttributes) -> tuple[float, float]:
        """(cpu_percent, memory_percent) measured now at ``edge``."""
        ...


class ContainerProbe(Protocol):
    """A probe that also checks containers (optional: without it containers are not checked)."""

    def containers(self, edge: EdgeAttributes, names: Collection[str]) -> dict[str, str]:
        """The engine state ("running", "exited", ...; "" when absent) of each of ``names``
        at ``edge``; raises when the node agent cannot be asked at all."""
        ...


def _detail(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:MAX_DETAIL]


class EdgeMonitor:
    """Polls every registered edge through ``probe`` each ``interval_s`` seconds."""

    def __init__(self, service: AuditService, probe: NodeProbe, *,
                 interval_s: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if interval_s <= 0:
            raise ValueError("monitor interval must be > 0 seconds")
        self.service = service
        self.probe = probe
        self.interval_s = interval_s
        self.clock = clock
        self.log = get_logger("audit.monitor")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0

    def poll_once(self) -> dict[str, EdgeState]:
        """Probe every edge (and the containers located on it) once; record and return what
        was seen. Skipped edges (not addressable) are absent from the result."""
        seen: dict[str, EdgeState] = {}
        edges = self.service.edges()
        for name, edge in sorted(edges.items()):
            try:
                cpu, mem = self.probe.probe(edge)
                state = EdgeState(float(cpu), float(mem), True, self.clock())
            except NotAddressable:
                continue
            except Exception as err:  # any failure to answer is a failed reading
                last = self.service.states().get(name)
                state = EdgeState(last.cpu_percent if last else 0.0,
                                  last.memory_percent if last else 0.0, False, self.clock(),
                                  failure=_detail(err))
                self.log.warning("edge_down", edge=name, detail=state.failure)
            try:
                self.service.record_state(name, state, source="monitor")
            except Exception:  # the edge was deleted meanwhile
                continue
            seen[name] = state
        self._check_containers(edges, seen)
        self.polls += 1
        return seen

    def _check_containers(self, edges: dict[str, EdgeAttributes],
                          seen: dict[str, EdgeState]) -> None:
        check = getattr(self.probe, "containers", None)
        if check is None:
            return
        by_edge: dict[str, list[str]] = {}
        for container, where in self.service.container_locations().items():
            if where:
                by_edge.setdefault(where, []).append(container)
        found: dict[str, ContainerLiveness] = {}
        for where, names in sorted(by_edge.items()):
            edge = edges.get(where)
            if edge is None or where not in seen:  # unknown or not addressable
                continue
            now = self.clock()
            if not seen[where].alive:
                for n in names:
                    found[n] = ContainerLiveness(where, False, "", now,
                                                 f"edge down: {seen[where].failure}"[:MAX_DETAIL])
                continue
            try:
                states: dict[str, str] = check(edge, names)
            except Exception as err:
                for n in names:
                    found[n] = ContainerLiveness(where, False, "", now, _detail(err))
                continue
            for n in names:
                st = states.get(n, "")
                found[n] = ContainerLiveness(where, st == "running", st, now,
                                             "" if st == "running" else
                                             f"container is {st or 'absent'}")
        self.service.record_liveness(found)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                self.log.exception("monitor_poll_failed")
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        """Poll now and then every ``interval_s`` seconds in a daemon thread until stop()."""
        if self._thread is not None:
            raise RuntimeError("the monitor is already running")
        self._thread = threading.Thread(target=self._run, name="audit-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and wait (at most ``timeout`` seconds) for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
