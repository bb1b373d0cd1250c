"""Pieces shared by the migration scenarios: SMF phase names -> report phases, the trial's
set-up (both links measured, the control stop/start per cell), the trial's link rate
(`TrialLinks`), the reset of a service to its source, the trial's metrics through the one bound
(`edgeferry.bounds`, measurements from `edgeferry.experiments.measure`), and
`MigrationScenario`, which puts them together."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agents.common.platforms import Platform
from edgeferry.bounds import ControlCosts, TrialMeasurements, trial_metrics
from edgeferry.errors import OperationFailed
from edgeferry.experiments.ecosystem import Ecosystem, ServiceHandle
from edgeferry.experiments.links import TrialLinks
from edgeferry.experiments.measure import (
    LinkBandwidth,
    TrialMeter,
    Wire,
    control_trial,
    measure_links,
)
from edgeferry.experiments.provenance import record_audit_policies, record_images
from edgeferry.experiments.scenario import (
    PhaseResult,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
)

#: SMF MigrateService phase -> report phase (spec names use dashes; "run" is the start; in the
#: diff-first order "rasp" is RASP steps 1-8 and "rasp-transfer" steps 9-11).
PHASE_NAMES = {
    "policy_audit": "audit", "prepull": "prepull", "stop": "stop", "commit": "commit",
    "push": "push", "rasp_handshake": "rasp", "rasp_transfer": "rasp-transfer",
    "ledger_write": "ledger-write",
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
        if p.phase in ("rasp_handshake", "rasp_transfer"):
            # "stage 1 1.23 ms, stage 2 ..." (the SMF's RASP relay)
            detail["stages_s"] = {int(k): float(v) / 1000 for k, v in
                                  re.findall(r"stage (\d+) ([0-9.]+) ms", p.detail or "")}
        out.append(PhaseResult(phase=PHASE_NAMES.get(p.phase, p.phase.replace("_", "-")),
                               wall_s=p.wall_seconds, bytes=p.bytes_moved,
                               outcome="ok" if p.outcome == "ok" else "failed", detail=detail))
    return out


def platform_detail(eco: Ecosystem, host: str) -> dict[str, str]:
    """A trial's record of where a host's workloads run: its platform and whether emulated
    (the report's "Workload platforms" table reads it)."""
    plat, how = eco.workload_platform(host)
    return {"host": host, "platform": str(plat), "emulation": how}


def publish_workload(ctx: ScenarioContext, eco: Ecosystem, hosts: list[str],
                     build: Callable[[Platform], str]) -> str:
    """The workload image for ``hosts`` in the lab registry (`Ecosystem.publish_for`): one
    image when their workloads all run as the controller's platform, else one index over the
    platforms, recorded in run.json's provenance (digest per platform) and the log."""
    ref, index = eco.publish_for(hosts, build)
    if index is not None:
        record_images(ctx.run_dir, ctx.part, index.provenance())
        ctx.log(f"{ref}: one image index for " + ", ".join(sorted(index.platforms))
                + f" (workloads on {', '.join(hosts)})")
    return ref


def downtime_phases_s(phases: list[PhaseResult]) -> float:
    """The sum of the SMF's phases from stop through first-response (kept beside the probed
    downtime, which is the one reported as ``downtime_s``)."""
    names = [p.phase for p in phases]
    if "stop" not in names or "first-response" not in names:
        return float("nan")
    i, j = names.index("stop"), names.index("first-response")
    return sum(p.wall_s for p in phases[i:j + 1])


def reset_to(ctx: ScenarioContext, eco: Ecosystem, handle: ServiceHandle, source: str, *,
             settle_cpu_below: float | None = None, settle_s: float = 30.0) -> None:
    """Untimed: bring the service back to ``source`` (a migration) when it is elsewhere.

    The move is audited against the edges' utilisation as reported just before it. Trials run
    back to back, so the source has just committed and pushed (compressing layers) and cleaned
    up: with ``settle_cpu_below`` (a percentage, e.g. the container policy's cHRcu) the reset
    first waits, at most ``settle_s`` seconds, until the source's CPU use reads below it (a
    cool-down between trials; the wait and the last reading go to the log)."""
    where = eco.location(handle)
    if where == source:
        return
    ctx.log(f"{handle.name} is on {where}: migrating it back to {source} (untimed reset)")
    cpu = eco.report_edge_state()[source][0]
    if settle_cpu_below is not None and cpu >= settle_cpu_below:
        began = time.monotonic()
        while cpu >= settle_cpu_below and time.monotonic() - began < settle_s:
            time.sleep(1.0)
            cpu = eco.report_edge_state()[source][0]
        ctx.log(f"{source}: waited {time.monotonic() - began:.1f} s for its CPU use to settle "
                f"below {settle_cpu_below:g} % (now {cpu:.1f} %)")
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

    @contextmanager
    def unshaped(self, hosts: list[str]) -> Iterator[None]:
        yield

    def restore(self) -> list[str]:
        return []


def trial_links(ctx: ScenarioContext) -> TrialLinks | _NoShaping:
    """What sets a trial's ``bandwidth`` on the source's and destination's links."""
    return TrialLinks(ctx) if ctx.lab is not None else _NoShaping()


def restore_links(ctx: ScenarioContext, links: TrialLinks | _NoShaping | None) -> None:
    for problem in links.restore() if links is not None else []:
        ctx.log(problem)


@dataclass(frozen=True)
class TrialSetup:
    """What the untimed set-up of a trial measured: both links, the cell's control costs."""

    bandwidth: LinkBandwidth
    control: ControlCosts
    shaping: dict[str, Any]
    control_detail: dict[str, Any]


def transfer_metrics(phases: list[PhaseResult], m: TrialMeasurements) -> dict[str, float]:
    """The trial's metrics through `edgeferry.bounds` (downtime from the prober, both bounds
    and ratios, wire and manifest MB per link, both links' Mbit/s, control costs) and the
    SMF's stop..first-response sum as ``downtime_phases_s``."""
    return {**trial_metrics(m), "downtime_phases_s": downtime_phases_s(phases)}


class MigrationScenario(Scenario):
    """A service migrated source -> destination through SMF.MigrateService, once per trial.

    Subclasses set ``purge_repos`` (the image repositories the destination forgets before each
    trial) and call `open_ecosystem` from `prepare` (then set ``self.handle``), `set_up_trial`
    and `migrate` from `run_trial`, then `measured_metrics`; `teardown` is shared. The
    workload has ``source`` and ``destination``; the parameters may have ``order`` ("diff",
    the default, or "paper") and ``bandwidth``.
    """

    purge_repos: tuple[str, ...]
    eco: Ecosystem
    handle: ServiceHandle
    links: TrialLinks | _NoShaping

    def open_ecosystem(self, ctx: ScenarioContext) -> Ecosystem:
        """The ecosystem, refused before any trial unless source and destination are edges
        with a node agent; the lab's link counters when the lab runs on this machine."""
        w = self.workload
        self.eco = Ecosystem.open(ctx)
        for host in (w.source, w.destination):
            if host not in self.eco.edges:
                raise ScenarioUnavailable(f"{host!r} is not an edge host with a node agent "
                                          f"(edges: {', '.join(self.eco.edges)})")
        self.platforms = {role: platform_detail(self.eco, host) for role, host in
                          (("source", w.source), ("destination", w.destination))}
        self.links = trial_links(ctx)
        self.wire: Wire | None = None
        if ctx.lab is not None:
            try:
                self.wire = Wire(self.eco.connect, [w.source, w.destination])
            except OperationFailed as err:
                ctx.log(f"no link counters for {w.source}/{w.destination} here ({err}): wire "
                        "bytes fall back to the manifest's")
        self.controls: dict[str, tuple[ControlCosts, dict[str, Any]]] = {}
        return self.eco

    def ensure_service(self, ctx: ScenarioContext, name: str, image: str) -> ServiceHandle:
        """The ecosystem's service ``name`` at the workload's source under the container policy
        the experiment states (else the default) and its RAS ``requirement`` when the workload
        states one (else `SERVICE_NEEDS`); the policies in force go into run.json."""
        w = self.workload
        stated = getattr(w, "requirement", None)
        handle = self.eco.ensure_service(name, image, w.source, w.requirements,
                                         None if stated is None else stated.resources())
        record_audit_policies(ctx.run_dir, ctx.part, name, w.requirements, w.policy_source,
                              self.eco.edge_attributes)
        ctx.log(f"{name}: container policy ({w.policy_source}) "
                + ", ".join(f"{k}={v}" for k, v in w.requirements.items() if v != "*"))
        return handle

    def set_up_trial(self, ctx: ScenarioContext, params: dict[str, Any],
                     image: Callable[[], str] | None = None,
                     prepare_destination: Callable[[], None] | None = None) -> TrialSetup:
        """Untimed: the service back on the source, running afresh (from ``image()`` when given),
        the destination without its images (then ``prepare_destination()``, e.g. a warm
        pre-pull), all of it with both hosts' links unshaped (a 4.4 GB image reaches the source
        in seconds, not 15 minutes at 40 Mbit/s), then the links at the trial's ``bandwidth``,
        the cell's control stop/start (once per parameter combination), both links measured
        (iperf3, receiver side)."""
        w, eco = self.workload, self.eco
        try:
            ref = image() if image is not None else None
            with self.links.unshaped([w.source, w.destination]):
                reset_to(ctx, eco, self.handle, w.source)
                if ref is not None:
                    self.handle.image = ref
                eco.run_workload(self.handle, w.source, replace=True)
                eco.purge(w.destination, self.purge_repos)
                if prepare_destination is not None:
                    prepare_destination()
            eco.report_edge_state()
            shaping = self.links.ensure([w.source, w.destination], params.get("bandwidth"))
            cell = json.dumps(params, sort_keys=True, default=str)
            if cell not in self.controls:
                ctx.progress("control")
                self.controls[cell] = control_trial(eco, self.handle.name, w.source)
            control, control_detail = self.controls[cell]
            bandwidth = measure_links(ctx=ctx, eco=eco, source=w.source,
                                      destination=w.destination)
        except TrialFailed:
            raise
        except Exception as err:
            raise TrialFailed(f"trial set-up failed: {type(err).__name__}: {err}") from err
        return TrialSetup(bandwidth, control, shaping, control_detail)

    def migrate(self, ctx: ScenarioContext, params: dict[str, Any],
                before: list[PhaseResult] | None = None, *, back: bool = False,
                ) -> tuple[Any, list[PhaseResult], TrialMeter]:
        """Timed: MigrateService(source -> destination) in the trial's ``order`` (``back``:
        destination -> source), with the downtime prober at both ends and the link counters
        sampled; a failure keeps ``before`` + its phases."""
        w = self.workload
        source, destination = (w.destination, w.source) if back else (w.source, w.destination)
        ctx.progress("migrate back" if back else "migrate")
        meter = TrialMeter(self.eco, self.handle.name, source, destination,
                           wire=getattr(self, "wire", None))
        order = str(params.get("order", "diff"))
        try:
            report = meter.run(lambda: self.eco.migrate(self.handle, destination,
                                                        order=order))
        except TrialFailed:
            raise
        except Exception as err:
            raise TrialFailed(f"migration: {type(err).__name__}: {err}", before or []) from err
        phases = phases_of(report)
        if not report.migrated:
            raise TrialFailed(f"MigrateService failed: {report.error_code} "
                              f"{report.error_message}", (before or []) + phases)
        return report, phases, meter

    def measured_metrics(self, phases: list[PhaseResult], meter: TrialMeter,
                         setup: TrialSetup) -> tuple[dict[str, float], dict[str, Any]]:
        """The trial's metrics (`transfer_metrics`) and the detail that recorded them (the
        measurements, so the bound can be recomputed from the run directory)."""
        m = meter.measurements(phases, setup.bandwidth, setup.control)
        if math.isnan(m.downtime_s):
            raise TrialFailed("the downtime prober saw no answer at "
                              + ("the source" if meter.record is None
                                 or meter.record.source.last_ok is None else "the destination"),
                              phases)
        return transfer_metrics(phases, m), {
            "measurements": m.to_dict(), **meter.detail(), "control": setup.control_detail,
            "bandwidth": setup.bandwidth.detail, "platforms": self.platforms}

    def teardown(self, ctx: ScenarioContext) -> None:
        restore_links(ctx, getattr(self, "links", None))
        eco = getattr(self, "eco", None)
        if eco is not None:
            eco.close()
