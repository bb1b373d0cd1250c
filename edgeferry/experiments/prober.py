"""Downtime of a migration as a client sees it: probe the service at a fixed rate at the source
and at the destination (one thread each, one monotonic clock on the controller) and record the
last application answer at the source and the first at the destination.

An *answer* is the application's, never a TCP accept: docker-proxy accepts connections on a
published port before the process in the container listens (and closes them), so

* `http_probe`: an HTTP GET must return status 200 and a body holding the expected text (the
  synthetic workload's ``GET /health`` -> ``ok``);
* `tls_probe`: a TLS handshake must complete and verify (the NMS speaks TLS 1.3 with a lab-CA
  certificate for its stable name; a handshake needs the NMS process itself).

Where the service listens may not be known in advance (the engine picks the published host
port when the container is created), so each end has a *resolver*: a function returning
(host, port) or None, called every ``resolve_interval_s`` until it answers, then the endpoint is
probed every ``interval_s``; until an end has answered, its endpoint is resolved again every
``reresolve_s`` (a container created again gets a new port). The resolution of the downtime is
the probe interval; when the destination answered its very first probe, its first answer may
be late by up to the resolver's latency (`EndRecord.first_probe_ok` says so).
"""

from __future__ import annotations

import http.client
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Endpoint = tuple[str, int]
Resolver = Callable[[], Endpoint | None]
Probe = Callable[[Endpoint, float], bool]


def http_probe(path: str = "/health", expect: bytes = b"ok") -> Probe:
    """A probe that succeeds when ``GET path`` answers 200 with ``expect`` in the body."""

    def probe(endpoint: Endpoint, timeout: float) -> bool:
        conn = http.client.HTTPConnection(endpoint[0], endpoint[1], timeout=timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            return resp.status == 200 and expect in resp.read(4096)
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    return probe


def tls_probe(context: ssl.SSLContext, server_name: str) -> Probe:
    """A probe that succeeds when a TLS handshake with ``server_name`` completes (verified
    against ``context``'s trust anchors)."""

    def probe(endpoint: Endpoint, timeout: float) -> bool:
        try:
            with socket.create_connection(endpoint, timeout=timeout) as raw, \
                    context.wrap_socket(raw, server_hostname=server_name):
                return True
        except (OSError, ssl.SSLError):
            return False

    return probe


def fixed(endpoint: Endpoint) -> Resolver:
    """A resolver for an endpoint known in advance."""
    return lambda: endpoint


@dataclass
class EndRecord:
    """What one end (source or destination) answered, on the prober's clock (s)."""

    name: str
    endpoint: Endpoint | None = None
    resolved_at: float | None = None
    first_ok: float | None = None
    last_ok: float | None = None
    probes: int = 0
    answers: int = 0
    first_probe_ok: bool = False  # the first probe after resolution already answered

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (endpoint as "host:port")."""
        return {"endpoint": f"{self.endpoint[0]}:{self.endpoint[1]}" if self.endpoint else None,
                "resolved_at": self.resolved_at, "first_ok": self.first_ok,
                "last_ok": self.last_ok, "probes": self.probes, "answers": self.answers,
                "first_probe_ok": self.first_probe_ok}


@dataclass
class DowntimeRecord:
    """The two ends' records and the events marked on the same clock."""

    interval_s: float
    source: EndRecord
    destination: EndRecord
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def downtime_s(self) -> float:
        """First answer at the destination - last answer at the source before it (NaN when
        either is missing). Negative never: source answers after the destination's first
        answer mean both ran (see `overlap_s`)."""
        if self.source.last_ok is None or self.destination.first_ok is None:
            return math.nan
        return max(0.0, self.destination.first_ok - self.source.last_ok)

    @property
    def overlap_s(self) -> float:
        """How long the source still answered after the destination's first answer (0 when
        it did not)."""
        if self.source.last_ok is None or self.destination.first_ok is None:
            return 0.0
        return max(0.0, self.source.last_ok - self.destination.first_ok)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"downtime_s": self.downtime_s, "overlap_s": self.overlap_s,
                "interval_s": self.interval_s, "source": self.source.to_dict(),
                "destination": self.destination.to_dict(), "marks": dict(self.marks)}


class DowntimeProber:
    """Probe a service at the source and the destination until `stop`.

    Use as a context manager around the migration; `record` holds the result afterwards. With
    ``source_first`` (default) the destination's answers only count once the source has
    answered at least once, so a prober started late cannot report a migration it missed.
    """

    def __init__(self, probe: Probe, source: Resolver, destination: Resolver, *,
                 interval_s: float = 0.02, resolve_interval_s: float = 0.2,
                 timeout_s: float = 0.5, reresolve_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if min(interval_s, resolve_interval_s, timeout_s, reresolve_s) <= 0:
            raise ValueError("probe intervals and timeout must be positive")
        self.reresolve_s = reresolve_s
        self.probe, self.clock = probe, clock
        self.interval_s, self.resolve_interval_s = interval_s, resolve_interval_s
        self.timeout_s = min(timeout_s, max(interval_s * 25, 0.05))
        self.record = DowntimeRecord(interval_s, EndRecord("source"), EndRecord("destination"))
        self._resolvers = {"source": source, "destination": destination}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def mark(self, name: str) -> float:
        """Record an event (e.g. "migrate-called") on the prober's clock; returns the time."""
        t = self.clock()
        with self._lock:
            self.record.marks[name] = t
        return t

    def start(self) -> DowntimeProber:
        """Start one probing thread per end."""
        for end in (self.record.source, self.record.destination):
            th = threading.Thread(target=self._run, args=(end,), daemon=True,
                                  name=f"prober-{end.name}")
            th.start()
            self._threads.append(th)
        return self

    def stop(self) -> DowntimeRecord:
        """Stop probing (waits for both threads); returns the record."""
        self._stop.set()
        for th in self._threads:
            th.join(timeout=self.timeout_s + self.resolve_interval_s + 5)
        return self.record

    def __enter__(self) -> DowntimeProber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _resolve(self, end: EndRecord) -> bool:
        try:
            where = self._resolvers[end.name]()
        except Exception as err:  # a resolver failing (SSH hiccup) is retried
            with self._lock:
                if len(self.errors) < 20:
                    self.errors.append(f"{end.name} resolver: {type(err).__name__}: {err}")
            return False
        if where is None:
            return False
        with self._lock:
            end.endpoint, end.resolved_at = where, self.clock()
        return True

    def _run(self, end: EndRecord) -> None:
        while not self._stop.is_set() and not self._resolve(end):
            self._stop.wait(self.resolve_interval_s)
        next_at = resolved = self.clock()
        while not self._stop.is_set():
            if end.first_ok is None and self.clock() - resolved >= self.reresolve_s:
                # no answer yet: the endpoint may be stale (a container created again gets a
                # new published port), so ask where it is now
                self._resolve(end)
                resolved = self.clock()
            assert end.endpoint is not None
            ok = self.probe(end.endpoint, self.timeout_s)
            t = self.clock()
            with self._lock:
                end.probes += 1
                if ok and (end.name == "source" or self.record.source.first_ok is not None):
                    end.answers += 1
                    if end.first_ok is None:
                        end.first_ok = t
                        end.first_probe_ok = end.probes == 1
                    end.last_ok = t
            next_at += self.interval_s
            delay = next_at - self.clock()
            if delay < 0:  # a slow probe: keep the rate from now on, no burst to catch up
                next_at, delay = self.clock(), 0.0
            self._stop.wait(delay)


def first_answer(probe: Probe, resolver: Resolver, *, since: float, deadline_s: float,
                 interval_s: float = 0.02, resolve_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> float:
    """Seconds from ``since`` (a ``clock`` time) to the first application answer at the
    endpoint ``resolver`` gives; TimeoutError after ``deadline_s``."""
    end = since + deadline_s
    endpoint: Endpoint | None = None
    while clock() < end:
        if endpoint is None:
            endpoint = resolver()
            if endpoint is None:
                time.sleep(resolve_interval_s)
                continue
        if probe(endpoint, min(0.5, max(interval_s * 25, 0.05))):
            return clock() - since
        time.sleep(interval_s)
    raise TimeoutError(f"no answer at {endpoint or 'an unresolved endpoint'} within "
                       f"{deadline_s:g} s")
