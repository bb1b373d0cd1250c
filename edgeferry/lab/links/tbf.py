"""Link shaping with the kernel's token-bucket filter (netem is not available on these kernels).

An edge host's link is shaped in both directions: egress inside the host's network namespace
(uploads: docker push, iperf3 client -> server) and egress of the bridge-side veth peer (downloads:
docker pull, iperf3 -R).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# tbf needs a bucket of at least rate/HZ bytes; 64 KiB covers 40 Mbit/s at HZ=100 with room for
# GSO bursts, and a 50 ms queue keeps latency bounded like a real access link.
_LATENCY = "50ms"
_MIN_BURST_BYTES = 64 * 1024


@dataclass(frozen=True)
class TbfConfig:
    rate_bps: int

    @property
    def burst_bytes(self) -> int:
        # Enough for ~2 ms of traffic at high rates, never below 64 KiB.
        return max(_MIN_BURST_BYTES, self.rate_bps // 8 // 500)

    def replace_args(self, device: str) -> list[str]:
        """`tc` arguments that install (or replace) the shaping on a device."""
        return [
            "tc",
            "qdisc",
            "replace",
            "dev",
            device,
            "root",
            "tbf",
            "rate",
            f"{self.rate_bps}bit",
            "burst",
            f"{self.burst_bytes}b",
            "latency",
            _LATENCY,
        ]


def delete_args(device: str) -> list[str]:
    return ["tc", "qdisc", "del", "dev", device, "root"]


_TBF_RE = re.compile(r"qdisc tbf \S+ root .*?rate (\d+(?:\.\d+)?)([KMG]?)bit", re.IGNORECASE)


def parse_tbf_rate(tc_show_output: str) -> int | None:
    """Rate in bit/s of the root tbf qdisc in `tc qdisc show dev X` output, None if absent."""
    match = _TBF_RE.search(tc_show_output)
    if not match:
        return None
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    return round(float(match.group(1)) * scale)
