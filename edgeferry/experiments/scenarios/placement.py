"""Seed 000 Algorithm 2 on the lab: the SMF chooses where a service goes (MigrateService "").

prepare: the ecosystem bootstrap registers the workload's ``service`` (a deployed SMF workload)
with the experiment's RAS ``requirement`` at ``source`` (a name maps to one requirement; another
registration of it with another requirement is refused) and runs it from a small synthetic
image. Per trial:

1. untimed: the service is brought back to the source (a migration with that destination) and
   runs there;
2. "advertisements": the controller polls SMF.ListAdvertisements until the SMF holds, from
   every edge, an advertisement it accepted after this step began (so FREE is the one after the
   reset); bounded by ``advert_wait_s`` (then the trial fails naming the edges still silent);
3. MigrateService with destination "": the SMF's "placement" phase says the chosen cloud and
   every refused one with its shortfall (resource -> required, free); the migration phases and
   their timings follow. When no cloud fits the call is refused (INSUFFICIENT_RESOURCES) and the
   refusal's message is parsed the same way.

The outcome is checked against the workload's ``expect`` (a mismatch fails the trial, saying
what differs); the report's "Placement (Algorithm 2)" table lists every trial.
"""

from __future__ import annotations

import time
from typing import Any

from edgeferry.errors import OperationFailed
from edgeferry.experiments.ecosystem import Ecosystem
from edgeferry.experiments.placement import PlacementOutcome, check, parse_placement
from edgeferry.experiments.scenario import (
    PhaseResult,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.experiments.scenarios.migration_common import (
    phases_of,
    publish_workload,
    reset_to,
)
from edgeferry.experiments.workloads import PlacementWorkload
from edgeferry.images.synthetic import MB, SyntheticRecipe, synthetic_image

IMAGE_MB = 16  # the service's image: small, the placement is the point
POLL_S = 1.0


class PlacementScenario(Scenario):
    workload: PlacementWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        w = self.workload
        self.eco = eco = Ecosystem.open(ctx)
        named = {w.source, *((w.expect.chosen + list(w.expect.refused)) if w.expect else [])}
        unknown = sorted(named - set(eco.edges))
        if unknown:
            raise ScenarioUnavailable(f"{', '.join(unknown)}: not an edge host with a node agent "
                                      f"(edges: {', '.join(eco.edges)})")
        if w.service not in eco.deployed.workloads:
            raise ScenarioUnavailable(
                f"service {w.service!r} is not a workload of the deployed SMF (settings."
                f"container.workloads: {', '.join(sorted(eco.deployed.workloads))})")
        recipe = SyntheticRecipe(total_bytes=IMAGE_MB * MB, layers=1)
        # Algorithm 2 may choose any edge: an image for each one's platform
        image = publish_workload(ctx, eco, list(eco.edges),
                                 lambda plat: synthetic_image(recipe, log=ctx.log,
                                                              platform=plat).tag)
        self.handle = eco.ensure_service(w.service, image, w.source, w.requirements,
                                         w.requirement.resources())
        # cloud (the node agent's identity name, as the SMF knows its servers) -> host
        self.host_of = {str(eco.node_identity(h).name): h for h in eco.edges}
        ctx.log(f"{w.service}: requirement cpu {w.requirement.cpu} m, memory "
                f"{w.requirement.memory_mib} MiB at {w.source}; clouds "
                + ", ".join(f"{c}={h}" for c, h in sorted(self.host_of.items())))

    def wait_for_adverts(self, ctx: ScenarioContext) -> tuple[float, dict[str, Any]]:
        """Until the SMF holds an advertisement from every edge accepted after this call began
        (seconds waited, the advertisements by host); TrialFailed past ``advert_wait_s``."""
        w = self.workload
        t0 = time.monotonic()
        deadline = t0 + w.advert_wait_s
        while True:
            listed = self.eco.smf().advertisements()
            waited = time.monotonic() - t0
            seen = {self.host_of.get(a.cloud, a.cloud): a for a in listed.advertisements
                    if a.age_s <= waited}
            missing = sorted(set(self.eco.edges) - set(seen))
            if not missing:
                return waited, {h: {"cloud": a.cloud, "seq": a.seq, "age_s": round(a.age_s, 3),
                                    "free_memory_mib": a.free.memory_bytes // (1 << 20),
                                    "free_cpu_m": a.free.cpu_millicores,
                                    "max_memory_mib": a.maximum.memory_bytes // (1 << 20),
                                    "max_cpu_m": a.maximum.cpu_millicores}
                                for h, a in sorted(seen.items())}
            if time.monotonic() >= deadline:
                raise TrialFailed(
                    f"the SMF holds no fresh advertisement from {', '.join(missing)} after "
                    f"{w.advert_wait_s:g} s (SMF TTL {listed.ttl_s:g} s): are the node agents "
                    "advertising to the SMF (advertise_interval_s > 0, advertise_to smf)?")
            ctx.progress(f"waiting for advertisements from {', '.join(missing)}")
            time.sleep(POLL_S)

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        w, eco = self.workload, self.eco
        try:
            reset_to(ctx, eco, self.handle, w.source)
            eco.run_workload(self.handle, w.source, replace=False)
        except TrialFailed:
            raise
        except (OperationFailed, OSError) as err:
            raise TrialFailed(f"trial set-up failed: {err}") from err
        ctx.progress("advertisements")
        waited, adverts = self.wait_for_adverts(ctx)
        before = [PhaseResult(phase="advertisements", wall_s=waited, detail={"smf": adverts})]
        ctx.progress("migrate")
        try:
            report = eco.migrate(self.handle, "", order=str(params.get("order", "diff")))
        except Exception as err:  # refused before anything ran: no cloud fits, or worse
            if "no cloud fits" not in str(err):
                raise TrialFailed(f"MigrateService: {type(err).__name__}: {err}", before) from err
            outcome = parse_placement(str(err)[str(err).index("no cloud fits"):])
            phases = [*before, PhaseResult(phase="placement", wall_s=0.0, outcome="failed",
                                           detail={"refusal": str(err)[:500]})]
            return self._result(outcome, phases, adverts, waited, migrated=False, location="")
        phases = before + phases_of(report)
        raw = next((p.detail for p in report.phases if p.phase == "placement"), None)
        if raw is None:
            raise TrialFailed("the SMF recorded no placement phase (an SMF without Algorithm 2?)",
                              phases)
        if not report.migrated:
            raise TrialFailed(f"MigrateService failed after the placement "
                              f"({parse_placement(raw).reason}): {report.error_code} "
                              f"{report.error_message}", phases)
        return self._result(parse_placement(raw), phases, adverts, waited, migrated=True,
                            location=report.location)

    def _result(self, outcome: PlacementOutcome, phases: list[PhaseResult],
                adverts: dict[str, Any], waited: float, *, migrated: bool,
                location: str) -> TrialResult:
        w = self.workload
        problems = check(outcome, w.expect, self.host_of)
        if problems:
            raise TrialFailed("placement not as expected: " + "; ".join(problems)
                              + f" (SMF: {outcome.reason})", phases)
        metrics = {"refused_clouds": float(len(outcome.refused) + outcome.more),
                   "advert_wait_s": waited}
        if w.expect is not None:
            metrics["as_expected"] = 1.0  # a mismatch failed the trial above
        return TrialResult(phases=phases, metrics=metrics, detail={
            "service": w.service, "source": w.source,
            "requirement": w.requirement.model_dump(),
            "placement": outcome.to_dict(self.host_of), "migrated": migrated,
            "location": location, "advertisements": adverts,
            "expectation": None if w.expect is None else w.expect.model_dump(),
            "expectation_problems": None if w.expect is None else problems,
            "method": "SMF.MigrateService with destination '' (Algorithm 2 over the fresh "
                      "signed advertisements the SMF holds); the placement phase's JSON detail; "
                      "phase times from the SMF and node agents (monotonic clocks)"})

    def teardown(self, ctx: ScenarioContext) -> None:
        eco = getattr(self, "eco", None)
        if eco is not None:
            eco.close()
