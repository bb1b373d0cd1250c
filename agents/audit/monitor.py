"""The monitor module (seed 002, Figure 8): poll every edge for CPU/memory utilisation and
liveness at a fixed interval (paper: every 10 minutes) and hand the result to the service.

Node agents are reached through the :class:`NodeProbe` protocol: the node agent's gRPC client
implements it once that agent exists; tests use a fake. A probe that raises, or does not answer
within its own timeout, marks the edge down (the audit then denies it on liveness).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from agents.audit.domain import EdgeAttributes, EdgeState
from agents.audit.service import AuditService
from agents.common.logging import get_logger

DEFAULT_INTERVAL_S = 600.0  # paper: 10 min


class NodeProbe(Protocol):
    """Asks the node agent on an edge for its utilisation; raises when it cannot."""

    def probe(self, edge: EdgeAttributes) -> tuple[float, float]:
        """(cpu_percent, memory_percent) measured now at ``edge``."""
        ...


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
        """Probe every edge once; record and return what was seen."""
        seen: dict[str, EdgeState] = {}
        for name, edge in sorted(self.service.edges().items()):
            try:
                cpu, mem = self.probe.probe(edge)
                state = EdgeState(float(cpu), float(mem), True, self.clock())
                detail = ""
            except Exception as err:  # any failure to answer is "down"
                state = EdgeState(0.0, 0.0, False, self.clock())
                detail = f"{type(err).__name__}: {err}"[:200]
                self.log.warning("edge_down", edge=name, detail=detail)
            try:
                self.service.record_state(name, state, source="monitor", detail=detail)
            except Exception:  # the edge was deleted meanwhile
                continue
            seen[name] = state
        self.polls += 1
        return seen

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                self.log.exception("monitor_poll_failed")
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the monitor is already running")
        self._thread = threading.Thread(target=self._run, name="audit-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
