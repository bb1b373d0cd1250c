"""Per-trial link rates on the emulated lab: tbf on an edge's link, set for a trial and put back.

An edge's link has two directions, shaped where `edgeferry lab up` shapes them
(`edgeferry.lab.links.lab`): ``up`` is egress of the host's eth0 (inside the host, over SSH with
Fabric); ``down`` is egress of its bridge-side veth on this machine. `LinkShaper` remembers what
each link had before it first touched it and `restore()` puts that back (also a removed shaping).
It raises the lab's errors (`edgeferry.lab.errors.NotAnEdge`) and the controller's
(`OperationFailed`); the experiments use it through `edgeferry.experiments.links.TrialLinks`,
which turns the lab's refusals into the runner's errors.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from edgeferry.errors import OperationFailed
from edgeferry.hosts import run
from edgeferry.lab.config import parse_rate
from edgeferry.lab.errors import NotAnEdge
from edgeferry.lab.links.tbf import TbfConfig, delete_args
from edgeferry.lab.links.veth import local_veth
from edgeferry.lab.state import LabState

DIRECTIONS = ("up", "down")


class LinkShaper:
    """Sets the tbf rate of edge links for trials; `restore()` undoes every change."""

    def __init__(self, lab: LabState, connection: Callable[[str], Any]) -> None:
        """Shape the edges of `lab`; `connection(host)` is an open Fabric connection to host."""
        self.lab = lab
        self.connection = connection
        self.original: dict[tuple[str, str], int | None] = {}
        self.current: dict[tuple[str, str], int | None] = {}

    def configured(self, host: str) -> int | None:
        """The rate the lab spec gives `host`'s link (None: not shaped); NotAnEdge unless
        `host` is an edge host of the lab."""
        if host not in self.lab.hosts or self.lab.hosts[host]["role"] != "edge":
            raise NotAnEdge(f"{host!r} is not an edge host of lab {self.lab.name!r}")
        rate = self.lab.hosts[host].get("configured_bps")
        return int(rate) if rate else None

    def rate(self, host: str, direction: str) -> int | None:
        """The rate this shaper last set on a link, else the lab's configured one."""
        return self.current.get((host, direction), self.configured(host))

    def set(self, host: str, direction: str, rate: int | None) -> str:
        """Put `rate` (None: no shaping) on one direction of an edge's link; returns the device."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        self.original.setdefault((host, direction), self.configured(host))
        conn = self.connection(host)
        if direction == "up":
            argv = delete_args("eth0") if rate is None else TbfConfig(rate).replace_args("eth0")
            run(conn, argv, check=rate is not None)
            device = f"{host}:eth0"
        else:
            veth = local_veth(run(conn, ["cat", "/sys/class/net/eth0/iflink"]))
            argv = delete_args(veth) if rate is None else TbfConfig(rate).replace_args(veth)
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0 and rate is not None:
                raise OperationFailed(f"tc on {veth} failed: {proc.stderr.strip()}")
            device = f"controller:{veth}"
        self.current[(host, direction)] = rate
        return device

    def ensure(self, hosts: list[str], bandwidth: str | int | None) -> dict[str, Any]:
        """Both directions of each host's link at `bandwidth` (None: leave the links as they
        are); only links not already at that rate are touched. A record for the trial."""
        if bandwidth is None:
            return {"rate_bps": None, "note": "bandwidth not set: links as the lab has them",
                    "links": {f"{h}/{d}": self.rate(h, d) for h in hosts for d in DIRECTIONS}}
        rate = parse_rate(bandwidth)
        changed = [self.set(h, d, rate) for h in hosts for d in DIRECTIONS
                   if self.rate(h, d) != rate]
        return {"rate_bps": rate, "changed": changed}

    @contextmanager
    def unshaped(self, hosts: list[str]) -> Iterator[None]:
        """The block runs with both directions of each host's link unshaped (a trial's untimed
        set-up, e.g. pulling a 4.4 GB image to the source, moves at the bridge's speed instead of
        the trial's rate); afterwards each link has the rate it had before, also on an error."""
        before = {(h, d): self.rate(h, d) for h in hosts for d in DIRECTIONS}
        lifted = []
        try:
            for (host, direction), rate in before.items():
                if rate is not None:
                    self.set(host, direction, None)
                    lifted.append((host, direction))
            yield
        finally:
            for host, direction in lifted:
                self.set(host, direction, before[(host, direction)])

    def restore(self) -> list[str]:
        """Every touched link back to what it had; returns the problems (never raises)."""
        problems = []
        for (host, direction), rate in self.original.items():
            if self.current.get((host, direction)) == rate:
                continue
            try:
                self.set(host, direction, rate)
            except Exception as err:  # report, do not mask the run's own outcome
                problems.append(f"could not restore {host} {direction} to {rate} bit/s: {err}")
        return problems
