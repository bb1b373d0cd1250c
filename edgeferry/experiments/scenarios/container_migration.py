"""BloSM Algorithm 3 cold container migration on the lab, through SMF.MigrateService.

prepare: the ecosystem bootstrap (`edgeferry.experiments.ecosystem`) registers the
``synthetic`` service (first server = the workload's source) and starts it.
Per trial (untimed set-up first):

1. the service is brought back to the source if a previous trial left it elsewhere, and its
   container is replaced by one from the synthetic image of the trial's size (built on the
   controller, pushed to the lab registry once);
2. the destination's engine forgets every synthetic image (so the pull moves all layers);
3. with a ``bandwidth`` parameter, both directions of the source's and the destination's links
   are shaped to it (tbf; put back after the part), then the link the pull crosses (registry
   host -> destination) is measured with iperf3;
4. timed: MigrateService(source -> destination). Every phase's wall time and bytes come from
   the SMF and node agents (policy audit, RASP, ledger write, self-evaluation, stop, commit,
   push, pull, start, first response, location updates, source clean-up).

Metrics: downtime (stop -> first response), the SMF round trip, bytes pushed/pulled, and the
physical bound (pushed + pulled bytes / measured bandwidth).
"""

from __future__ import annotations

import math
from typing import Any

from edgeferry.experiments.registry import ContainerMigrationWorkload
from edgeferry.experiments.scenario import ScenarioContext, ScenarioUnavailable, TrialResult
from edgeferry.experiments.scenarios.migration_common import MigrationScenario, transfer_metrics
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
        eco = self.open_ecosystem(ctx)
        self.images: dict[int, str] = {}
        first = self._image(ctx, 1)
        self.handle = eco.ensure_service(SERVICE, first, w.source)

    def _image(self, ctx: ScenarioContext, size_mb: int) -> str:
        if size_mb not in self.images:
            recipe = SyntheticRecipe(total_bytes=size_mb * MB,
                                     layers=max(1, math.ceil(size_mb / LAYER_MB)))
            built = synthetic_image(recipe, log=ctx.log)
            self.images[size_mb] = self.eco.publish(built.tag)
        return self.images[size_mb]

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        w = self.workload
        size = int(params["image_size_mb"])
        bw, bw_detail, shaping = self.set_up_trial(ctx, params, lambda: self._image(ctx, size))
        image = self.handle.image
        report, phases = self.migrate(ctx)
        metrics = transfer_metrics(phases, report, bw)
        return TrialResult(phases=phases, metrics=metrics, bandwidth_bps=bw, detail={
            "image": image, "image_bytes": size * MB, "source": w.source,
            "destination": w.destination, "location": report.location, "epoch": report.epoch,
            "shaping": shaping, "bandwidth": bw_detail,
            "method": "phase times and bytes from SMF.MigrateService (SMF + node agents, "
                      "monotonic clocks); bandwidth: iperf3 registry host -> destination "
                      "before the trial"})
