"""Live progress of one migration: run it in a worker thread and hand its phase records, as
each one's outcome is known, to the thread that streams them (no gRPC here).

    run = PhaseStream(lambda on_phase: migrate_service(..., on_phase=on_phase))
    run.start()
    try:
        for record in run.records(alive=context.is_active):
            send(record)
        outcome = run.result()        # the migration's return value, or its exception raised
    finally:
        run.close()

Bounds: at most `MAX_QUEUED` records wait in the queue; the worker blocks (checking every
`POLL_S`) while it is full, so a slow reader slows the reporting, never the memory. Abandoning
(`close`, or ``alive()`` turning False): the worker stops queueing (records are dropped from
then on) and runs the migration to its end on its own -- it completes or fails exactly as it
would have without a reader, and the thread ends with it; nothing waits on the queue any more,
which goes with the `PhaseStream`.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, cast

from agents.smf.domain import PhaseObserver, PhaseRecord

T = TypeVar("T")

MAX_QUEUED = 64  # records waiting for the reader (a plan has about 15 phases)
POLL_S = 0.1  # how often a blocked worker / reader checks for abandonment


class _Done:
    """The worker's last queue item: the migration returned or raised."""


_DONE = _Done()


class PhaseStream(Generic[T]):
    """`work(on_phase)` in a worker thread, its phase records readable as they come."""

    def __init__(self, work: Callable[[PhaseObserver], T], *, name: str = "migration",
                 max_queued: int = MAX_QUEUED, poll_s: float = POLL_S) -> None:
        self._work = work
        self._queue: queue.Queue[PhaseRecord | _Done] = queue.Queue(maxsize=max_queued)
        self._abandoned = threading.Event()
        self._poll_s = poll_s
        self._value: T | None = None
        self._error: BaseException | None = None
        self._finished = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> PhaseStream[T]:
        """Start the worker; returns self."""
        self.thread.start()
        return self

    def _put(self, item: PhaseRecord | _Done) -> None:
        while not self._abandoned.is_set():
            try:
                self._queue.put(item, timeout=self._poll_s)
                return
            except queue.Full:
                continue

    def _observe(self, record: PhaseRecord) -> None:
        self._put(dataclasses.replace(record))  # a snapshot: the plan owns the record

    def _run(self) -> None:
        try:
            self._value = self._work(self._observe)
        except BaseException as exc:  # handed to the reader, raised there by result()
            self._error = exc
        finally:
            self._finished.set()
            self._put(_DONE)

    def records(self, alive: Callable[[], bool] = lambda: True) -> Iterator[PhaseRecord]:
        """The records in the order the migration decided them, until it ended (then
        `result`). Stops early, abandoning the run, when ``alive()`` turns False."""
        while True:
            try:
                item = self._queue.get(timeout=self._poll_s)
            except queue.Empty:
                if self._abandoned.is_set() or not alive():
                    self.close()
                    return
                continue
            if isinstance(item, _Done):
                return
            yield item

    def result(self) -> T:
        """The migration's return value (it raised: that exception). Only after `records`
        ran to the end."""
        if not self._finished.is_set():
            raise RuntimeError("the migration has not ended")
        if self._error is not None:
            raise self._error
        return cast(T, self._value)

    @property
    def finished(self) -> bool:
        """True once the migration returned or raised."""
        return self._finished.is_set()

    def close(self) -> None:
        """Abandon the reading side: the worker drops records from now on (it never blocks on
        the queue again) and runs the migration to its end. Idempotent; does not wait."""
        self._abandoned.set()
