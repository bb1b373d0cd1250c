"""BloSM Algorithm 3 cold container migration on the lab, through SMF.MigrateService.

prepare: the ecosystem bootstrap (`edgeferry.experiments.ecosystem`) registers the
``synthetic`` service (first server = the workload's source) and starts it.
Per trial (untimed set-up first):

1. the service is brought back to the source if a previous trial left it elsewhere, and its
   container is replaced by one from the synthetic image of the trial's size (built on the
   controller, pushed to the lab registry once);
2. the destination's engine forgets every synthetic image (so the pull moves all layers);
   ``condition: warm`` then pre-pulls the trial's image there (PrePullImage, untimed), as an
   earlier migration or proactive mode leaves it;
3. with a ``bandwidth`` parameter, both directions of the source's and the destination's links
   are shaped to it (tbf; put back after the part); once per parameter combination a control
   trial stops and starts the service at the source (no transfer); both links the bytes cross
   are measured with iperf3 (receiver side);
4. timed: MigrateService(source -> destination) in the trial's phase ``order`` ("diff": base
   layers, RASP, ledger and self-evaluation before the stop; "paper": the paper's order),
   with a client probing the service at both ends every 20 ms. Every phase's wall time and
   bytes come from the SMF and node agents.

Metrics (`edgeferry.bounds.trial_metrics`): downtime (last answer at the source -> first at
the destination, probed), the round trip, the bound and the downtime bound with both ratios,
wire and manifest MB per link, both links' Mbit/s, the control stop/start.
"""

from __future__ import annotations

import math
from typing import Any

from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb
from edgeferry.experiments.scenario import ScenarioContext, ScenarioUnavailable, TrialResult
from edgeferry.experiments.scenarios.migration_common import MigrationScenario, publish_workload
from edgeferry.experiments.workloads import ContainerMigrationWorkload
from edgeferry.images.synthetic import MB, SyntheticRecipe, synthetic_image

SERVICE = "synthetic"
PURGE = ("edgeferry/synthetic", "synthetic-migrated")
LAYER_MB = 512  # random bytes per image layer


class ContainerMigration(MigrationScenario):
    purge_repos = PURGE
    workload: ContainerMigrationWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        w = self.workload
        if w.gpu:
            raise ScenarioUnavailable("gpu: true needs a GPU; these lab hosts have none")
        self.open_ecosystem(ctx)
        self.images: dict[int, str] = {}
        first = self._image(ctx, 1)
        self.handle = self.ensure_service(ctx, SERVICE, first)

    def _image(self, ctx: ScenarioContext, size_mb: int) -> str:
        if size_mb not in self.images:
            recipe = SyntheticRecipe(total_bytes=size_mb * MB,
                                     layers=max(1, math.ceil(size_mb / LAYER_MB)))
            w = self.workload
            self.images[size_mb] = publish_workload(
                ctx, self.eco, [w.source, w.destination],
                lambda plat: synthetic_image(recipe, log=ctx.log, platform=plat).tag)
        return self.images[size_mb]

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        w = self.workload
        size = int(params["image_size_mb"])
        warm = params.get("condition", "cold") == "warm"

        def prepull() -> None:
            self.eco.node(w.destination).PrePullImage(
                npb.PrePullImageRequest(image_ref=self.handle.image), timeout=1800)

        setup = self.set_up_trial(ctx, params, lambda: self._image(ctx, size),
                                  prepull if warm else None)
        image = self.handle.image
        report, phases, meter = self.migrate(ctx, params)
        metrics, measured = self.measured_metrics(phases, meter, setup)
        return TrialResult(phases=phases, metrics=metrics,
                           bandwidth_bps=setup.bandwidth.pull_bps, detail={
            "image": image, "image_bytes": size * MB, "source": w.source,
            "destination": w.destination, "location": report.location, "epoch": report.epoch,
            "shaping": setup.shaping, **measured,
            "method": "phase times and bytes from SMF.MigrateService (SMF + node agents, "
                      "monotonic clocks); downtime: a client probing GET /health at both ends "
                      "every 20 ms (controller clock); bound: edgeferry.bounds (iperf3 receiver "
                      "side of both links before the trial, wire bytes from the link counters, "
                      "control stop/start)"})
