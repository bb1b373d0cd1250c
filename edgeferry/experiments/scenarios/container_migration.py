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

from edgeferry.experiments.ecosystem import Ecosystem, ServiceHandle
from edgeferry.experiments.registry import ContainerMigrationWorkload
from edgeferry.experiments.scenario import (
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.experiments.scenarios.migration_common import (
    downtime_s,
    measure_down_bps,
    phases_of,
    reset_to,
    restore_links,
    trial_links,
)
from edgeferry.images.synthetic import MB, SyntheticRecipe, synthetic_image

SERVICE = "synthetic"
PURGE = ("edgeferry/synthetic", "edgeferry/synthetic-migrated")
LAYER_MB = 512  # random bytes per image layer


class ContainerMigration(Scenario):
    workload: ContainerMigrationWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        w = self.workload
        if w.gpu:
            raise ScenarioUnavailable("gpu: true needs a GPU; these lab hosts have none")
        self.eco = Ecosystem.open(ctx)
        for host in (w.source, w.destination):
            if host not in self.eco.edges:
                raise ScenarioUnavailable(f"{host!r} is not an edge host with a node agent "
                                          f"(edges: {', '.join(self.eco.edges)})")
        self.links = trial_links(ctx)
        self.images: dict[int, str] = {}
        first = self._image(ctx, 1)
        self.handle: ServiceHandle = self.eco.ensure_service(SERVICE, first, w.source)

    def _image(self, ctx: ScenarioContext, size_mb: int) -> str:
        if size_mb not in self.images:
            recipe = SyntheticRecipe(total_bytes=size_mb * MB,
                                     layers=max(1, math.ceil(size_mb / LAYER_MB)))
            built = synthetic_image(recipe, log=ctx.log)
            self.images[size_mb] = self.eco.publish(built.tag)
        return self.images[size_mb]

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        w, eco = self.workload, self.eco
        size = int(params["image_size_mb"])
        try:
            image = self._image(ctx, size)
            reset_to(ctx, eco, self.handle, w.source)
            self.handle.image = image
            eco.run_workload(self.handle, w.source, replace=True)
            eco.purge(w.destination, PURGE)
            eco.report_edge_state()
            shaping = self.links.ensure([w.source, w.destination], params.get("bandwidth"))
            bw, bw_detail = measure_down_bps(ctx, eco, w.destination)
        except TrialFailed:
            raise
        except Exception as err:
            raise TrialFailed(f"trial set-up failed: {type(err).__name__}: {err}") from err
        ctx.progress("migrate")
        report = eco.migrate(self.handle, w.destination)
        phases = phases_of(report)
        if not report.migrated:
            raise TrialFailed(f"MigrateService failed: {report.error_code} "
                              f"{report.error_message}", phases)
        pushed = sum(p.bytes for p in phases if p.phase == "push")
        pulled = sum(p.bytes for p in phases if p.phase == "pull")
        metrics = {"downtime_s": downtime_s(phases), "migration_s": report.round_trip_seconds,
                   "pushed_mb": pushed / 1e6, "pulled_mb": pulled / 1e6,
                   "bound_s": (pushed + pulled) * 8 / bw if bw > 0 else float("nan")}
        return TrialResult(phases=phases, metrics=metrics, bandwidth_bps=bw, detail={
            "image": image, "image_bytes": size * MB, "source": w.source,
            "destination": w.destination, "location": report.location, "epoch": report.epoch,
            "shaping": shaping, "bandwidth": bw_detail,
            "method": "phase times and bytes from SMF.MigrateService (SMF + node agents, "
                      "monotonic clocks); bandwidth: iperf3 registry host -> destination "
                      "before the trial"})

    def teardown(self, ctx: ScenarioContext) -> None:
        restore_links(ctx, getattr(self, "links", None))
        eco = getattr(self, "eco", None)
        if eco is not None:
            eco.close()
