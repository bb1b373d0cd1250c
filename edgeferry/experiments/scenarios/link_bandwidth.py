"""Link bandwidth between an edge host and the control host (BloSM Figure 5), over SSH.

Per trial: ``shape`` sets the tbf rate of the measured direction (`tc qdisc replace`, built by
`edgeferry.lab.links.tbf`): for ``up`` on the edge's eth0 over SSH; for ``down`` on the lab
bridge-side veth of the edge (on this machine, as `edgeferry lab up` does). ``iperf3`` then runs
the server on the sending host and the client with -R on the receiving host (so the samples count
bytes that arrived), both through Fabric; the first interval is dropped as warm-up.
Teardown puts the lab's configured rate back on every device it touched.
"""

from __future__ import annotations

from typing import Any

from edgeferry.experiments.links import TrialLinks
from edgeferry.experiments.scenario import (
    PhaseTimer,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.experiments.workloads import LinkBandwidthWorkload
from edgeferry.hosts import run
from edgeferry.lab.config import parse_rate
from edgeferry.lab.links.iperf import parse_iperf3_json


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
        self.shaper = TrialLinks(ctx)

    def _address(self, ctx: ScenarioContext, host: str) -> str:
        return str(ctx.lab.hosts[host]["address"])  # type: ignore[union-attr]

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        host, direction = params["host"], params["direction"]
        configured = self.shaper.configured(host)  # refuses a host that is not a lab edge
        rate = parse_rate(params["rate"]) if params["rate"] is not None else configured
        sender, receiver = (host, self.control) if direction == "up" else (self.control, host)
        timer = PhaseTimer(ctx.progress)
        w = self.workload
        try:
            with timer.phase("shape") as ph:
                if rate is None:
                    ph.detail = {"note": "link not shaped in this lab; nothing changed"}
                else:
                    ph.detail = {"rate_bps": rate,
                                 "device": self.shaper.set(host, direction, rate)}
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
        shaper = getattr(self, "shaper", None)
        if shaper is None or not self.workload.restore:
            return
        for problem in shaper.restore():
            ctx.log(problem)
