"""A master's function registry and routing decisions (seed 003 sections 2.4.1-2.4.2, 2.4.5).
No I/O: the NATS side (agents.tcfdl_master.service) asks `Router.route` where a task goes.

Functions are topics: an instance registers for a function with its cluster's master; a task
for a function goes to a local instance (round robin) when the cluster has one, else to the
cluster the service manager says serves it (looked up once, cached for `ttl_s`). A task that
arrives from another cluster (transit) must find a local instance: it is never forwarded again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_FUNCTIONS = 1024
MAX_INSTANCES = 256


@dataclass(frozen=True)
class LocalRoute:
    """Deliver to `instance` in this cluster."""

    instance: str


@dataclass(frozen=True)
class RemoteRoute:
    """Forward to `cluster`'s master; its TEE proxy is `proxy`."""

    cluster: str
    proxy: str


class FunctionTable:
    """Function -> registered instances, bounded, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instances: dict[str, list[str]] = {}
        self._next: dict[str, int] = {}

    def register(self, function: str, instance: str) -> bool:
        """Add `instance` for `function`; True when the function is new to this cluster."""
        with self._lock:
            found = self._instances.get(function)
            if found is None:
                if len(self._instances) >= MAX_FUNCTIONS:
                    raise OverflowError(f"this master serves {MAX_FUNCTIONS} functions already")
                found = self._instances[function] = []
            if instance not in found:
                if len(found) >= MAX_INSTANCES:
                    raise OverflowError(f"{function!r} has {MAX_INSTANCES} instances already")
                found.append(instance)
            return len(found) == 1

    def pick(self, function: str) -> str | None:
        """The next instance of `function` (round robin), None when it has none here."""
        with self._lock:
            found = self._instances.get(function)
            if not found:
                return None
            i = self._next.get(function, 0) % len(found)
            self._next[function] = i + 1
            return found[i]

    def snapshot(self) -> dict[str, list[str]]:
        """Functions and their instances (a copy)."""
        with self._lock:
            return {f: list(i) for f, i in sorted(self._instances.items())}


class Router:
    """Where a task for a function goes from this cluster."""

    def __init__(self, cluster: str, table: FunctionTable,
                 lookup: Callable[[str], tuple[str, str]], *, ttl_s: float = 30.0) -> None:
        self.cluster = cluster
        self.table = table
        self.lookup = lookup
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, RemoteRoute]] = {}

    def route(self, function: str, *, transit: bool) -> LocalRoute | RemoteRoute:
        """A local instance, else (not for transit) the serving cluster; LookupError with the
        reason when there is none."""
        instance = self.table.pick(function)
        if instance is not None:
            return LocalRoute(instance)
        if transit:
            raise LookupError(f"cluster {self.cluster} has no instance of {function!r}")
        now = time.monotonic()
        cached = self._cache.get(function)
        if cached is not None and cached[0] > now:
            return cached[1]
        cluster, proxy = self.lookup(function)  # LookupError: unknown function
        if cluster == self.cluster:
            raise LookupError(f"{function!r} is registered to cluster {cluster} but has no "
                              "running instance")
        found = RemoteRoute(cluster, proxy)
        if len(self._cache) >= MAX_FUNCTIONS:
            self._cache.clear()
        self._cache[function] = (now + self.ttl_s, found)
        return found
