"""`LabLinks`: what `edgeferry lab up` does to the links of the lab's host containers.

Every edge's link is shaped in both directions with tbf (`tbf`): egress of eth0 inside the host
(uploads) and egress of its bridge-side veth on this machine (downloads, `veth`). iperf3 between
each edge and the control host then validates both directions (`iperf`).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeferry.errors import OperationFailed
from edgeferry.lab.config import HostSpec, LabSpec
from edgeferry.lab.engine import exec_in
from edgeferry.lab.links.iperf import BandwidthSample, parse_iperf3_json
from edgeferry.lab.links.tbf import TbfConfig, delete_args, parse_tbf_rate
from edgeferry.lab.links.veth import local_veth

if TYPE_CHECKING:  # pragma: no cover
    from docker.models.containers import Container

    from edgeferry.lab.state import LabState

BANDWIDTH_TOLERANCE = 0.15
IPERF_SECONDS = 3
IPERF_OMIT = 1
IPERF_ATTEMPTS = 2

Log = Callable[[str], None]
Rates = tuple[int | None, int | None]  # (inside the host: up, bridge-side veth: down)


def _run(cmd: list[str], check: bool = True) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise OperationFailed(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}")
    return result.stdout


class LabLinks:
    """Shapes the links of one lab's host containers to its spec and measures them."""

    def __init__(self, spec: LabSpec, log: Log) -> None:
        self.spec = spec
        self.log = log

    # -- shaping -------------------------------------------------------------------------------
    def veth_of(self, container: Container) -> str:
        """The bridge-side veth of ``container`` on this machine."""
        index = exec_in(container, ["cat", "/sys/class/net/eth0/iflink"],
                        expect_output=True).strip()
        try:
            return local_veth(index)
        except OperationFailed:
            raise OperationFailed(
                f"cannot find the bridge-side veth of {container.name} (ifindex {index})"
            ) from None

    def current_rates(self, container: Container) -> Rates:
        """The tbf rates now on a host's link, None where it is not shaped."""
        inner = parse_tbf_rate(exec_in(container, ["tc", "qdisc", "show", "dev", "eth0"],
                                       expect_output=True))
        outer_dev = self.veth_of(container)
        outer = parse_tbf_rate(_run(["tc", "qdisc", "show", "dev", outer_dev]))
        return inner, outer

    def ensure_shaping(
        self, host: HostSpec, container: Container, current: Rates, changes: list[str]
    ) -> None:
        """Both directions of ``host``'s link at the spec's rate (within 1 %), or unshaped."""
        rate = self.spec.rate_bps(host)
        veth = self.veth_of(container)
        if rate is None:
            if current != (None, None):
                exec_in(container, delete_args("eth0"), check=False)
                _run(delete_args(veth), check=False)
                changes.append(f"removed shaping on {host.name}")
            return
        if all(r is not None and abs(r - rate) <= rate * 0.01 for r in current):
            return
        tbf = TbfConfig(rate)
        exec_in(container, tbf.replace_args("eth0"))
        _run(tbf.replace_args(veth))
        changes.append(f"shaped {host.name} to {rate / 1e6:g} Mbit/s both ways (tbf)")

    # -- bandwidth validation ------------------------------------------------------------------
    def bandwidth_current(self, state: LabState) -> bool:
        """Whether ``state`` holds a measurement of every edge at its configured rate that
        passed: a measurement that failed the tolerance is not kept as current, so the next
        `lab up` measures again (what its error message tells the user to do)."""
        return all(
            state.bandwidth.get(h.name, {}).get("configured_bps") == self.spec.rate_bps(h)
            and all(state.bandwidth[h.name].get(f"{d}_ok", True)
                    for d in ("up", "down") if d in state.bandwidth[h.name])
            for h in self.spec.edges
        )

    def measure(self, containers: dict[str, Container]) -> dict[str, dict[str, Any]]:
        """iperf3 between every edge host and the control host, both directions.

        The receiving side always runs the iperf3 client in reverse mode (-R), so every interval
        sample counts bytes that arrived, not bytes queued into a socket buffer.
        """
        control = self.spec.control
        results: dict[str, dict[str, Any]] = {}
        for host in self.spec.edges:
            configured = self.spec.rate_bps(host)
            entry: dict[str, Any] = {"configured_bps": configured}
            # up: edge -> control (server on the edge sends); down: control -> edge.
            plan = (("up", host, control), ("down", control, host))
            for direction, sender, receiver in plan:
                # A busy machine can starve one 3 s sample: a link outside the tolerance is
                # measured once more, and the attempts are recorded with the figure kept.
                attempts = 0
                while True:
                    attempts += 1
                    self.log(f"measuring {host.name} {direction} with iperf3 ({IPERF_SECONDS} s)")
                    sample = self._iperf(containers, sender, receiver, direction)
                    ok = sample.within(configured or 0, BANDWIDTH_TOLERANCE)
                    if ok or attempts == IPERF_ATTEMPTS:
                        break
                entry[direction] = sample.to_dict()
                entry[f"{direction}_ok"] = ok
                entry[f"{direction}_attempts"] = attempts
            entry["measured_at"] = time.time()
            results[host.name] = entry
        return results

    def _iperf(
        self,
        containers: dict[str, Container],
        sender: HostSpec,
        receiver: HostSpec,
        direction: str,
    ) -> BandwidthSample:
        server = containers[sender.name]
        exec_in(server, ["pkill", "-x", "iperf3"], check=False)
        exec_in(server, ["iperf3", "-s", "-D", "-1", "--bind", str(sender.address)])
        cmd = [
            "iperf3",
            "-c",
            str(sender.address),
            "-R",
            "-J",
            "-t",
            str(IPERF_SECONDS),
            "-O",
            str(IPERF_OMIT),
            "-i",
            "0.5",
        ]
        for attempt in range(20):
            output = exec_in(containers[receiver.name], cmd, check=False)
            if "Connection refused" not in output or attempt == 19:
                break
            time.sleep(0.1)
        exec_in(server, ["pkill", "-x", "iperf3"], check=False)
        return parse_iperf3_json(
            output,
            direction,
            method=f"{' '.join(cmd)} on {receiver.name}, server on {sender.name}; "
            "first interval dropped as warm-up",
            drop_first=True,
        )

    @staticmethod
    def assert_bandwidth(state: LabState) -> None:
        """Refuse a lab whose measured links are outside the tolerance of their rate."""
        bad = [
            f"{name} {d}: {entry[d]['mean_bps'] / 1e6:.1f} vs "
            f"{entry['configured_bps'] / 1e6:g} Mbit/s"
            for name, entry in state.bandwidth.items()
            for d in ("up", "down")
            if d in entry and not entry.get(f"{d}_ok", False)
        ]
        if bad:
            raise OperationFailed(
                "measured bandwidth is outside ±15 % of the configured rate ("
                + "; ".join(bad)
                + "); the machine may be overloaded: rerun `edgeferry lab up`"
            )
