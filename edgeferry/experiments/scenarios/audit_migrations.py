"""Seed 002 Tables 7-8 as real container migrations on a lab whose edges sit in regions
(experiments/labs/auditlab.yaml: Table 6's eight edges in four regions).

Each trial is one row of the tables: untimed, the service is put back on the source (Edge1) and
run afresh; timed, SMF.MigrateService with ``target_region`` (Table 7) or ``any_edge``
(Table 8) and the run's ``audit_seed`` (the seed mapping that gives the paper's order of
tries). The audit agent orders the tries and decides each; the SMF migrates to the first edge
permitted. Reported per trial: the tries with their decisions (beside the paper's), the audit's
decision time (agent-side) and every migration phase; ``agrees_with_paper`` is 1 when the tries
equal the paper's row.
"""

from __future__ import annotations

from typing import Any

from agents.audit.domain import percent_limit
from edgeferry.experiments.scenario import (
    PhaseResult,
    ScenarioContext,
    TrialFailed,
    TrialResult,
)
from edgeferry.experiments.scenarios.migration_common import (
    MigrationScenario,
    phases_of,
    publish_workload,
    reset_to,
)
from edgeferry.experiments.workloads import AuditMigrationsWorkload
from edgeferry.images.synthetic import MB, SyntheticRecipe, synthetic_image

SERVICE = "synthetic"
PURGE = ("edgeferry/synthetic", "synthetic-migrated")


class AuditMigrations(MigrationScenario):
    purge_repos = PURGE
    workload: AuditMigrationsWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        self.open_ecosystem(ctx)
        recipe = SyntheticRecipe(total_bytes=self.workload.image_size_mb * MB, layers=1)
        # the audit chooses the destination among all edges: an image for each one's platform
        image = publish_workload(ctx, self.eco, list(self.eco.edges),
                                 lambda plat: synthetic_image(recipe, log=ctx.log,
                                                              platform=plat).tag)
        self.handle = self.ensure_service(ctx, SERVICE, image)

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        w = self.workload
        run = w.runs[int(params["run"])]
        try:
            reset_to(ctx, self.eco, self.handle, w.source,
                     settle_cpu_below=percent_limit("cHRcu", w.requirements.get("cHRcu")))
            self.eco.run_workload(self.handle, w.source, replace=True)
            self.eco.report_edge_state()
        except Exception as err:
            raise TrialFailed(f"trial set-up failed: {type(err).__name__}: {err}") from err
        ctx.progress("migrate")
        region = run.target.partition(":")[2]
        report = self.eco.migrate(self.handle, "", region=region,
                                  any_edge=run.target == "any", audit_seed=run.audit_seed)
        tries = [[edge, "permit" if ok else "deny"] for edge, ok, _ in report.tries]
        paper = [[edge.lower(), verdict] for edge, verdict in run.paper_tries]
        phases = [p if p.phase != "audit" else PhaseResult(
            "audit", report.audit_seconds, 0, p.outcome,
            {**p.detail, "round_trip_s": p.wall_s}) for p in phases_of(report)]
        if not report.migrated and report.error_code != "POLICY_DENIED":
            raise TrialFailed(f"MigrateService failed: {report.error_code} "
                              f"{report.error_message}", phases)
        total = sum(p.wall_s for p in phases if p.phase != "audit")
        return TrialResult(phases=phases, metrics={
            "agrees_with_paper": float(tries == paper), "tries": float(len(tries))},
            detail={"target": run.target, "audit_seed": run.audit_seed, "tries": tries,
                    "paper_tries": paper,
                    "deny_reasons": {e: list(r) for e, ok, r in report.tries if not ok},
                    "location": report.location, "audit_ms": report.audit_seconds * 1000,
                    "migration_ms": total * 1000, "paper_audit_ms": run.paper_audit_ms,
                    "paper_migration_ms": run.paper_migration_ms,
                    "method": "SMF.MigrateService(target_region / any_edge, audit_seed): "
                              "the audit's decision time inside the agent; migration = the "
                              "sum of the other phases (SMF and node agents, monotonic)"})

