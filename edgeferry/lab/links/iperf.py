"""Bandwidth measurement with iperf3: parse its JSON into samples, mean and stdev."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class BandwidthSample:
    """One iperf3 measurement of one direction of a link."""

    direction: str  # "up" (host -> control) or "down" (control -> host)
    mean_bps: float
    stdev_bps: float
    samples_bps: tuple[float, ...]
    receiver_bps: float  # iperf3's own end-of-test receiver average
    method: str

    def within(self, configured_bps: int, tolerance: float) -> bool:
        return abs(self.mean_bps - configured_bps) <= tolerance * configured_bps

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["samples_bps"] = list(self.samples_bps)
        return data


def parse_iperf3_json(
    text: str, direction: str, method: str, *, drop_first: bool = False
) -> BandwidthSample:
    """Turn `iperf3 -J` output into a sample; omitted (slow-start) intervals are left out,
    and with `drop_first` the first reported interval too (iperf3 -R does not honour -O)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"iperf3 printed no JSON: {text[:200]!r}") from err
    if "error" in doc:
        raise ValueError(f"iperf3 failed: {doc['error']}")
    samples = tuple(
        float(iv["sum"]["bits_per_second"])
        for iv in doc.get("intervals", [])
        if not iv["sum"].get("omitted", False) and iv["sum"].get("seconds", 0) > 0.2
    )
    if drop_first:
        samples = samples[1:]
    if not samples:
        raise ValueError("iperf3 reported no intervals")
    receiver = float(doc["end"]["sum_received"]["bits_per_second"])
    stdev = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return BandwidthSample(
        direction=direction,
        mean_bps=statistics.fmean(samples),
        stdev_bps=stdev,
        samples_bps=samples,
        receiver_bps=receiver,
        method=method,
    )
