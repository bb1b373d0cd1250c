"""Link bandwidth between an edge host and the control host (BloSM Figure 5), over SSH.

Per trial: ``shape`` sets the tbf rate of the measured direction (`tc qdisc replace`, built by
`edgeferry.lab.shaping`): for ``up`` on the edge's eth0 over SSH; for ``down`` on the lab
bridge-side veth of the edge (on this machine, as `edgeferry lab up` does). ``iperf3`` then runs
the server on the sending host and the client with -R on the receiving host (so the samples count
bytes that arrived), both through Fabric; the first interval is dropped as warm-up.
Teardown puts the lab's configured rate back on every device it touched.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from edgeferry.errors import OperationFailed
from edgeferry.experiments.hosts import run
from edgeferry.experiments.registry import LinkBandwidthWorkload
from edgeferry.experiments.scenario import (
    PhaseTimer,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.lab.bandwidth import parse_iperf3_json
from edgeferry.lab.config import parse_rate
from edgeferry.lab.shaping import TbfConfig


def local_veth(iflink: str, sys_class_net: Path = Path("/sys/class/net")) -> str:
    """The bridge-side interface on this machine whose ifindex is the container's iflink."""
    for dev in sorted(os.listdir(sys_class_net)):
        try:
            if (sys_class_net / dev / "ifindex").read_text().strip() == iflink.strip():
                return dev
        except OSError:
            continue
    raise OperationFailed(f"no local interface has ifindex {iflink.strip()}")


class LinkBandwidth(Scenario):
    workload: LinkBandwidthWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        if ctx.lab is None:
            raise ScenarioUnavailable(
                "link-bandwidth needs the emulated lab (target: {lab: ...}); shaping on real "
                "hardware is not automated")
        if ctx.connect is None:
            raise ScenarioUnavailable("link-bandwidth needs SSH to the lab hosts")
        self.control = ctx.lab.hosts_by_role("control")[0]
        self.touched: dict[tuple[str, str], int | None] = {}  # (host, direction) -> configured

    def _address(self, ctx: ScenarioContext, host: str) -> str:
        return str(ctx.lab.hosts[host]["address"])  # type: ignore[union-attr]

    def _shape(self, ctx: ScenarioContext, host: str, direction: str, rate: int) -> str:
        tbf = TbfConfig(rate)
        if direction == "up":
            run(ctx.connection(host), tbf.replace_args("eth0"))
            return f"{host}:eth0"
        iflink = run(ctx.connection(host), ["cat", "/sys/class/net/eth0/iflink"])
        veth = local_veth(iflink)
        proc = subprocess.run(tbf.replace_args(veth), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise OperationFailed(f"tc on {veth} failed: {proc.stderr.strip()}")
        return f"controller:{veth}"

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        host, direction = params["host"], params["direction"]
        lab = ctx.lab
        assert lab is not None
        if host not in lab.hosts or lab.hosts[host]["role"] != "edge":
            raise TrialFailed(f"{host!r} is not an edge host of lab {lab.name!r}")
        configured = lab.hosts[host].get("configured_bps")
        rate = parse_rate(params["rate"]) if params["rate"] is not None else configured
        self.touched.setdefault((host, direction), configured)
        sender, receiver = (host, self.control) if direction == "up" else (self.control, host)
        timer = PhaseTimer(ctx.progress)
        w = self.workload
        try:
            with timer.phase("shape") as ph:
                if rate is None:
                    ph.detail = {"note": "link not shaped in this lab; nothing changed"}
                else:
                    ph.detail = {"rate_bps": rate, "device": self._shape(ctx, host, direction,
                                                                         rate)}
            with timer.phase("iperf3") as ph:
                server = ctx.connection(sender)
                run(server, ["pkill", "-x", "iperf3"], check=False)
                run(server, ["iperf3", "-s", "-D", "-1", "--bind", self._address(ctx, sender)])
                cmd = ["iperf3", "-c", self._address(ctx, sender), "-R", "-J",
                       "-t", str(w.seconds), "-O", str(w.omit_s), "-i", str(w.interval_s)]
                out = run(ctx.connection(receiver), cmd, check=False, timeout=w.seconds + 30)
                run(server, ["pkill", "-x", "iperf3"], check=False)
                sample = parse_iperf3_json(out, direction, method=(
                    f"{' '.join(cmd)} on {receiver}, server on {sender} (Fabric); first "
                    "interval dropped"), drop_first=True)
                import json

                ph.bytes = int(json.loads(out)["end"]["sum_received"]["bytes"])
                ph.detail = sample.to_dict()
        except TrialFailed:
            raise
        except Exception as err:
            raise TrialFailed(f"{type(err).__name__}: {err}", timer.phases) from err
        metrics = {"bandwidth_bps": sample.mean_bps}
        if rate:
            metrics["bandwidth_ratio"] = sample.mean_bps / rate
        return TrialResult(phases=timer.phases, metrics=metrics, bandwidth_bps=sample.mean_bps,
                           detail={"configured_bps": configured, "set_bps": rate,
                                   "samples_bps": list(sample.samples_bps)})

    def teardown(self, ctx: ScenarioContext) -> None:
        if not self.workload.restore:
            return
        for (host, direction), configured in getattr(self, "touched", {}).items():
            if configured is None:
                continue
            try:
                self._shape(ctx, host, direction, configured)
            except Exception as err:  # report, do not mask the run's own outcome
                ctx.log(f"could not restore {host} {direction} to {configured} bit/s: {err}")
