"""Pieces shared by the migration scenarios: SMF phase names -> report phases, the link
bandwidth measured before a trial (iperf3 over SSH), the trial's link rate (`TrialLinks`), the
reset of a service to its source, and `MigrationScenario`, which puts them together."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from edgeferry.experiments.ecosystem import Ecosystem, ServiceHandle
from edgeferry.experiments.links import TrialLinks
from edgeferry.experiments.scenario import (
    PhaseResult,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
)
from edgeferry.hosts import run
from edgeferry.lab.links.iperf import parse_iperf3_json

#: SMF MigrateService phase -> report phase (spec names use dashes; "run" is the start).
PHASE_NAMES = {
    "policy_audit": "audit", "prepull": "prepull", "stop": "stop", "commit": "commit",
    "push": "push", "rasp_handshake": "rasp", "ledger_write": "ledger-write",
    "self_evaluation": "self-evaluation", "pull": "pull", "run": "start",
    "first_response": "first-response", "rasp_location_update": "rasp-location-update",
    "audit_location_update": "audit-location-update", "location_commit": "location-commit",
    "source_cleanup": "source-cleanup",
}
MIGRATION_PHASES = tuple(PHASE_NAMES.values())


def phases_of(report: Any) -> list[PhaseResult]:
    """The SMF's per-phase timings (measured by the SMF and node agents, monotonic clocks)."""
    out = []
    for p in report.phases:
        detail: dict[str, Any] = {"smf_phase": p.phase}
        if p.detail:
            try:
                parsed = json.loads(p.detail)
                detail.update(parsed if isinstance(parsed, dict) else {"detail": parsed})
            except ValueError:
                detail["detail"] = p.detail[:500]
        if p.phase == "rasp_handshake":  # "stage 1 1.23 ms, stage 2 ..." (SMF's RASP relay)
            detail["stages_s"] = {int(k): float(v) / 1000 for k, v in
                                  re.findall(r"stage (\d+) ([0-9.]+) ms", p.detail or "")}
        out.append(PhaseResult(phase=PHASE_NAMES.get(p.phase, p.phase.replace("_", "-")),
                               wall_s=p.wall_seconds, bytes=p.bytes_moved,
                               outcome="ok" if p.outcome == "ok" else "failed", detail=detail))
    return out


def downtime_s(phases: list[PhaseResult]) -> float:
    """Stop -> first successful response: the phases from stop through first-response."""
    names = [p.phase for p in phases]
    if "stop" not in names or "first-response" not in names:
        return float("nan")
    i, j = names.index("stop"), names.index("first-response")
    return sum(p.wall_s for p in phases[i:j + 1])


def measure_down_bps(ctx: ScenarioContext, eco: Ecosystem, host: str,
                     seconds: int = 3) -> tuple[float, dict[str, Any]]:
    """iperf3 from the registry host to ``host`` (the link a pull crosses), bits/s."""
    sender = eco._registry_host()
    server_ip = eco.address("ras", sender).rsplit(":", 1)[0]
    server = ctx.connection(sender)
    run(server, ["pkill", "-x", "iperf3"], check=False)
    run(server, ["iperf3", "-s", "-D", "-1", "--bind", server_ip])
    cmd = ["iperf3", "-c", server_ip, "-R", "-J", "-t", str(seconds), "-i", "0.5"]
    out = run(ctx.connection(host), cmd, check=False, timeout=seconds + 30)
    run(server, ["pkill", "-x", "iperf3"], check=False)
    sample = parse_iperf3_json(out, "down", method=f"{' '.join(cmd)} on {host}, server on "
                               f"{sender}; first interval dropped", drop_first=True)
    return sample.mean_bps, sample.to_dict()


def reset_to(ctx: ScenarioContext, eco: Ecosystem, handle: ServiceHandle, source: str) -> None:
    """Untimed: bring the service back to ``source`` (a migration) when it is elsewhere."""
    where = eco.location(handle)
    if where == source:
        return
    ctx.log(f"{handle.name} is on {where}: migrating it back to {source} (untimed reset)")
    eco.report_edge_state()
    report = eco.migrate(handle, source)
    if not report.migrated:
        raise TrialFailed(f"could not move {handle.name} back to {source}: "
                          f"{report.error_code} {report.error_message}")


class _NoShaping:
    """A target that is not the emulated lab: links are as they are; asking for a rate fails."""

    def ensure(self, hosts: list[str], bandwidth: str | int | None) -> dict[str, Any]:
        if bandwidth is not None:
            raise TrialFailed("the 'bandwidth' parameter shapes the emulated lab's links; on "
                              "an inventory target leave it unset and shape the links yourself")
        return {"rate_bps": None, "note": "not the emulated lab: links as they are"}

    def restore(self) -> list[str]:
        return []


def trial_links(ctx: ScenarioContext) -> TrialLinks | _NoShaping:
    """What sets a trial's ``bandwidth`` on the source's and destination's links."""
    return TrialLinks(ctx) if ctx.lab is not None else _NoShaping()


def restore_links(ctx: ScenarioContext, links: TrialLinks | _NoShaping | None) -> None:
    for problem in links.restore() if links is not None else []:
        ctx.log(problem)


def transfer_metrics(phases: list[PhaseResult], report: Any, bw: float) -> dict[str, float]:
    """Downtime, the SMF round trip, bytes pushed/pulled and the physical bound of a migration."""
    pushed = sum(p.bytes for p in phases if p.phase == "push")
    pulled = sum(p.bytes for p in phases if p.phase == "pull")
    return {"downtime_s": downtime_s(phases), "migration_s": report.round_trip_seconds,
            "pushed_mb": pushed / 1e6, "pulled_mb": pulled / 1e6,
            "bound_s": (pushed + pulled) * 8 / bw if bw > 0 else float("nan")}


class MigrationScenario(Scenario):
    """A service migrated source -> destination through SMF.MigrateService, once per trial.

    Subclasses set ``purge_repos`` (the image repositories the destination forgets before each
    trial) and call `open_ecosystem` from `prepare` (then set
    ``self.handle``), `set_up_trial` and `migrate` from `run_trial`; `teardown` is shared.
    The workload has ``source`` and ``destination``.
    """

    purge_repos: tuple[str, ...]
    eco: Ecosystem
    handle: ServiceHandle
    links: TrialLinks | _NoShaping

    def open_ecosystem(self, ctx: ScenarioContext) -> Ecosystem:
        """The ecosystem, refused before any trial unless source and destination are edges
        with a node agent."""
        w = self.workload
        self.eco = Ecosystem.open(ctx)
        for host in (w.source, w.destination):
            if host not in self.eco.edges:
                raise ScenarioUnavailable(f"{host!r} is not an edge host with a node agent "
                                          f"(edges: {', '.join(self.eco.edges)})")
        self.links = trial_links(ctx)
        return self.eco

    def set_up_trial(self, ctx: ScenarioContext, params: dict[str, Any],
                     image: Callable[[], str] | None = None,
                     ) -> tuple[float, dict[str, Any], dict[str, Any]]:
        """Untimed: the service back on the source, running afresh (from ``image()`` when given),
        the destination without its images, the links at the trial's ``bandwidth``, the link the
        pull crosses measured. Returns (bit/s, iperf3 detail, shaping record)."""
        w, eco = self.workload, self.eco
        try:
            ref = image() if image is not None else None
            reset_to(ctx, eco, self.handle, w.source)
            if ref is not None:
                self.handle.image = ref
            eco.run_workload(self.handle, w.source, replace=True)
            eco.purge(w.destination, self.purge_repos)
            eco.report_edge_state()
            shaping = self.links.ensure([w.source, w.destination], params.get("bandwidth"))
            bw, bw_detail = measure_down_bps(ctx, eco, w.destination)
        except TrialFailed:
            raise
        except Exception as err:
            raise TrialFailed(f"trial set-up failed: {type(err).__name__}: {err}") from err
        return bw, bw_detail, shaping

    def migrate(self, ctx: ScenarioContext,
                before: list[PhaseResult] | None = None) -> tuple[Any, list[PhaseResult]]:
        """Timed: MigrateService(source -> destination); a failure keeps ``before`` + its phases."""
        ctx.progress("migrate")
        report = self.eco.migrate(self.handle, self.workload.destination)
        phases = phases_of(report)
        if not report.migrated:
            raise TrialFailed(f"MigrateService failed: {report.error_code} "
                              f"{report.error_message}", (before or []) + phases)
        return report, phases

    def teardown(self, ctx: ScenarioContext) -> None:
        restore_links(ctx, getattr(self, "links", None))
        eco = getattr(self, "eco", None)
        if eco is not None:
            eco.close()
