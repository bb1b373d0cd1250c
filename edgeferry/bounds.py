"""The one physical bound of a migration trial (issue 17): what the bytes moved and the
measured links allow, and how close a trial came to it. Domain module: no I/O.

A migration moves bytes over two links, one after the other: the *push link* (source host ->
registry host: the committed image's layers the registry lacks) and the *pull link* (registry
host -> destination: the layers the destination lacks). Each link's bandwidth is the receiver
side of an iperf3 run over it just before the trial (``end.sum_received``). Bytes are *wire*
bytes (the hosts' interface counters over the migration: everything the link carried, TLS and
gRPC included); the registry manifest's compressed layer sizes are kept beside them
(`LinkBytes.manifest`) but the bound uses the wire bytes. Stopping and starting the service
cost what a separate no-transfer *control trial* on the same hosts measured (stop the
service's container, start it again, time stop and start-to-first-response separately), not
the trial's own phases, so slowness there is not excused by the bound.

Definitions (seconds; bytes x 8 / bit/s)::

    bound          = control_stop + push.wire x 8 / bw_push + pull.wire x 8 / bw_pull
                     + control_start
    downtime_bound = control_stop + push.wire_after_stop x 8 / bw_push
                     + pull.wire_after_stop x 8 / bw_pull + control_start

In the direct order (``relayed``) the diff is not stored and forwarded by a registry: the SMF
relays it from the source to the destination as it is made, so after the stop both links carry
it at once and the slower of the two sets the time::

    relayed: the *_after_stop terms combine as max(push term, pull term) instead of their sum
             (the bytes before the stop, the pre-pull, still add up)

``bound`` covers every byte the migration moved, including what moved before the stop (in the
diff-first order the pre-pull of the base layers crosses the pull link while the service still
runs); ``downtime_bound`` only the bytes moved after the stop, that is while the service was
down: from the source's last answer to the destination's first (the committed diff, in the
diff-first order; every byte, in the paper's order). The wire bytes "after the stop" are
counted over that window; the manifest's are the layer bytes of the phases after "stop".
Ratios ``total / bound`` and ``downtime / downtime_bound`` near 1 mean the trial ran at the
links' speed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LinkBytes:
    """Bytes one link carried during a migration: wire (interface counters) and manifest
    (compressed layer sizes the agents reported), in all and after the service's stop."""

    wire: int
    wire_after_stop: int
    manifest: int = 0
    manifest_after_stop: int = 0

    def __post_init__(self) -> None:
        for name in ("wire", "wire_after_stop", "manifest", "manifest_after_stop"):
            if getattr(self, name) < 0:
                raise ValueError(f"LinkBytes.{name} is negative: {getattr(self, name)}")
        if self.wire_after_stop > self.wire:
            raise ValueError(f"wire bytes after the stop ({self.wire_after_stop}) exceed the "
                             f"migration's ({self.wire})")
        if self.manifest_after_stop > self.manifest:
            raise ValueError(f"manifest bytes after the stop ({self.manifest_after_stop}) "
                             f"exceed the migration's ({self.manifest})")


@dataclass(frozen=True)
class ControlCosts:
    """Stop and start-to-first-response of the service on the same hosts, no transfer (s)."""

    stop_s: float
    start_s: float

    def __post_init__(self) -> None:
        if not (self.stop_s >= 0 and self.start_s >= 0):
            raise ValueError(f"control costs must be >= 0 s: stop {self.stop_s}, "
                             f"start {self.start_s}")


@dataclass(frozen=True)
class TrialMeasurements:
    """Everything the bound of one trial is computed from (all measured outside the SMF)."""

    bw_push_bps: float  # receiver-side iperf3, source -> registry host
    bw_pull_bps: float  # receiver-side iperf3, registry host -> destination
    push: LinkBytes
    pull: LinkBytes
    control: ControlCosts
    total_s: float  # the migration's round trip (controller clock)
    downtime_s: float  # last answer at the source -> first at the destination (prober)
    relayed: bool = False  # after the stop both links carried the diff at once (direct order)

    def __post_init__(self) -> None:
        for name in ("bw_push_bps", "bw_pull_bps"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive bandwidth, not {value}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (round-trips through `from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialMeasurements:
        """The inverse of `to_dict`."""
        return cls(bw_push_bps=float(data["bw_push_bps"]), bw_pull_bps=float(data["bw_pull_bps"]),
                   push=LinkBytes(**data["push"]), pull=LinkBytes(**data["pull"]),
                   control=ControlCosts(**data["control"]), total_s=float(data["total_s"]),
                   downtime_s=float(data["downtime_s"]),
                   relayed=bool(data.get("relayed", False)))


@dataclass(frozen=True)
class Bounds:
    """A trial's bounds and how far above them it ran."""

    bound_s: float
    downtime_bound_s: float
    total_over_bound: float
    downtime_over_bound: float


def transfer_s(nbytes: int, bps: float) -> float:
    """Seconds ``nbytes`` take at ``bps`` bit/s."""
    if bps <= 0:
        raise ValueError(f"bandwidth must be positive, not {bps}")
    return nbytes * 8 / bps


def _after_stop_s(m: TrialMeasurements) -> float:
    """The links' time for the bytes after the stop: in turn, or at once when relayed."""
    push = transfer_s(m.push.wire_after_stop, m.bw_push_bps)
    pull = transfer_s(m.pull.wire_after_stop, m.bw_pull_bps)
    return max(push, pull) if m.relayed else push + pull


def bound_s(m: TrialMeasurements) -> float:
    """control stop + every wire byte of each link at its bandwidth + control start (the bytes
    after the stop of both links at once when relayed)."""
    before = (transfer_s(m.push.wire - m.push.wire_after_stop, m.bw_push_bps)
              + transfer_s(m.pull.wire - m.pull.wire_after_stop, m.bw_pull_bps))
    return m.control.stop_s + before + _after_stop_s(m) + m.control.start_s


def downtime_bound_s(m: TrialMeasurements) -> float:
    """control stop + the wire bytes each link carried after the stop + control start."""
    return m.control.stop_s + _after_stop_s(m) + m.control.start_s


def _ratio(value: float, bound: float) -> float:
    return value / bound if bound > 0 else math.nan


def evaluate(m: TrialMeasurements) -> Bounds:
    """Both bounds of a trial and the ratios total / bound and downtime / downtime_bound."""
    b, d = bound_s(m), downtime_bound_s(m)
    return Bounds(bound_s=b, downtime_bound_s=d, total_over_bound=_ratio(m.total_s, b),
                  downtime_over_bound=_ratio(m.downtime_s, d))


def trial_metrics(m: TrialMeasurements) -> dict[str, float]:
    """The per-trial metrics every consumer reports (benchmark, scenarios, reports): times in
    s, bytes in MB (1e6), bandwidths in Mbit/s. The one place these numbers are derived."""
    b = evaluate(m)
    return {
        "migration_s": m.total_s, "downtime_s": m.downtime_s,
        "bound_s": b.bound_s, "downtime_bound_s": b.downtime_bound_s,
        "total_over_bound": b.total_over_bound, "downtime_over_bound": b.downtime_over_bound,
        "push_wire_mb": m.push.wire / 1e6, "pull_wire_mb": m.pull.wire / 1e6,
        "push_wire_after_stop_mb": m.push.wire_after_stop / 1e6,
        "pull_wire_after_stop_mb": m.pull.wire_after_stop / 1e6,
        "pushed_mb": m.push.manifest / 1e6, "pulled_mb": m.pull.manifest / 1e6,
        "pulled_after_stop_mb": m.pull.manifest_after_stop / 1e6,
        "bw_push_mbps": m.bw_push_bps / 1e6, "bw_pull_mbps": m.bw_pull_bps / 1e6,
        "control_stop_s": m.control.stop_s, "control_start_s": m.control.start_s,
    }


#: metric -> unit of `trial_metrics` (for the scenario specs and the reports)
METRIC_UNITS = {
    "migration_s": "s", "downtime_s": "s", "bound_s": "s", "downtime_bound_s": "s",
    "total_over_bound": "ratio", "downtime_over_bound": "ratio",
    "push_wire_mb": "MB", "pull_wire_mb": "MB", "push_wire_after_stop_mb": "MB",
    "pull_wire_after_stop_mb": "MB", "pushed_mb": "MB", "pulled_mb": "MB",
    "pulled_after_stop_mb": "MB", "bw_push_mbps": "Mbit/s", "bw_pull_mbps": "Mbit/s",
    "control_stop_s": "s", "control_start_s": "s",
}
