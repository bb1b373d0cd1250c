"""CPU use without blocking a request: a background sampler keeping the last reading and its age.

Every ``interval`` seconds the sampler reads a cumulative CPU-seconds counter (the agent's
cgroup ``cpu.stat usage_usec`` when the host is a limited container, else the machine's
non-idle CPU time) and stores ``used millicores = delta CPU seconds / delta wall seconds x
1000``. `latest` returns that value and how old it is, in constant time: no 100 ms sample per
request (``psutil.cpu_percent(interval=0.1)`` used to block every neighbour's answer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

#: counter() -> cumulative CPU seconds; clock() -> monotonic seconds
Counter = Callable[[], float]


def machine_cpu_seconds() -> float:
    """Non-idle CPU seconds of the whole machine since boot (all cores)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


@dataclass(frozen=True)
class CpuReading:
    """The last sample: millicores in use, how old it is (s; -1 = none yet) and its source."""

    millicores: int
    age_s: float
    source: str


class CpuSampler:
    """Samples ``counter`` every ``interval`` seconds on a daemon thread (`start`/`stop`)."""

    def __init__(self, counter: Counter, *, source: str, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.counter = counter
        self.source = source
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None  # (clock, counter) of the previous sample
        self._value: tuple[int, float] | None = None  # (millicores, clock when computed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Take one sample now (the thread calls this; tests call it directly)."""
        now, used = self._clock(), self.counter()
        with self._lock:
            if self._last is not None and now > self._last[0]:
                rate = max(0.0, used - self._last[1]) / (now - self._last[0])
                self._value = (round(rate * 1000), now)
            self._last = (now, used)

    def latest(self) -> CpuReading:
        """The last computed use and its age; (0, -1) before two samples were taken."""
        with self._lock:
            if self._value is None:
                return CpuReading(0, -1.0, self.source)
            return CpuReading(self._value[0], self._clock() - self._value[1], self.source)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a vanished cgroup file: keep the last reading, it ages
                continue

    def start(self) -> CpuSampler:
        """Take a first sample and start the thread (idempotent)."""
        if self._thread is None:
            self.sample()
            self._thread = threading.Thread(target=self._loop, name="node-cpu-sampler",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (the last reading stays readable)."""
        self._stop.set()
