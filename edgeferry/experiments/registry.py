"""Scenario registry: name -> spec (parameters, workload, phases, metrics) + implementation.

The spec of every scenario is declared here, so an experiment validates before any
implementation is imported (and even when it does not exist yet). The implementation is a
dotted path, imported lazily by `load_scenario`; when its module is missing the scenario is
*unavailable* and running it fails before any trial with a message naming what it needs.

To plug in a scenario: write `edgeferry/experiments/scenarios/<module>.py` with a
`Scenario` subclass at the path its spec names below (adjust the spec's parameters/phases
with it). Tests and third parties may call `register(spec)`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import (
    BaseModel,
)

from edgeferry.bounds import METRIC_UNITS
from edgeferry.experiments.scenario import Scenario, ScenarioUnavailable
from edgeferry.experiments.workloads import (
    AuditMigrationsParams,
    AuditMigrationsWorkload,
    AuditParams,
    AuditWorkload,
    ContainerMigrationParams,
    ContainerMigrationWorkload,
    LedgerMigrationWorkload,
    LedgerParams,
    LedgerWorkload,
    LinkBandwidthParams,
    LinkBandwidthWorkload,
    NmsClientParams,
    NmsMobilityWorkload,
    NmsParams,
    NmsWorkload,
    PlacementParams,
    PlacementWorkload,
    RequestMigrationParams,
    RequestMigrationWorkload,
    SsoCachingLabParams,
    SsoCachingLabWorkload,
    SsoCachingSimParams,
    SsoCachingSimWorkload,
    SsoCompositionLabParams,
    SsoCompositionLabWorkload,
    SsoCompositionSimParams,
    SsoCompositionSimWorkload,
    TcfdlParams,
    TcfdlPipelineParams,
    TcfdlPipelineWorkload,
    TcfdlWorkload,
)


@dataclass(frozen=True)
class ScenarioSpec:
    """What an experiment may say about a scenario, and where its implementation lives."""

    name: str
    summary: str
    implementation: str  # "package.module:ClassName"
    params: type[BaseModel]
    workload: type[BaseModel]
    phases: tuple[str, ...]
    metrics: dict[str, str] = field(default_factory=dict)  # metric -> unit
    uses_hosts: bool = False  # needs the target's hosts (lab or inventory) over SSH
    agents: tuple[str, ...] = ()  # deployed agents it talks to (the deploy step provides them)
    needs: str = ""  # what has to exist for it to run (shown when unavailable)
    #: workload (key, value) that makes a part use the hosts and the deployed agents (e.g. a
    #: lab placement), with the agents it then needs
    hosts_when: tuple[str, Any] | None = None
    hosts_when_agents: tuple[str, ...] = ()

    def part_uses_hosts(self, workload: dict[str, Any]) -> bool:
        if self.uses_hosts:
            return True
        return self.hosts_when is not None and workload.get(self.hosts_when[0]) == \
            self.hosts_when[1]

    def part_agents(self, workload: dict[str, Any]) -> tuple[str, ...]:
        if self.hosts_when is not None and self.part_uses_hosts(workload):
            return tuple(sorted({*self.agents, *self.hosts_when_agents}))
        return self.agents


#: Phases of SMF.MigrateService in the diff-first order (the SMF's names with dashes; "rasp" is
#: the RASP handshake, steps 1-8 in the diff order and 1-11 in the paper's, "rasp-transfer"
#: steps 9-11 in the diff order, "start" the run at the destination). The paper's order runs
#: stop, commit, push before rasp, ledger-write and self-evaluation, prepull only when proactive.
#: The direct order has transfer (relayed by the SMF), load and publish instead of commit, push
#: and pull.
MIGRATION_PHASES = ("audit", "prepull", "rasp", "ledger-write", "self-evaluation", "stop",
                    "commit", "push", "transfer", "rasp-transfer", "load", "pull", "start",
                    "first-response", "publish", "rasp-location-update", "location-commit",
                    "audit-location-update", "source-cleanup")
MIGRATION_METRICS = {**METRIC_UNITS, "downtime_phases_s": "s"}

_SPECS: dict[str, ScenarioSpec] = {}


def register(spec: ScenarioSpec) -> None:
    _SPECS[spec.name] = spec


def spec_of(name: str) -> ScenarioSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(name) from None


def names() -> list[str]:
    return sorted(_SPECS)


def _impl(module: str, cls: str) -> str:
    return f"edgeferry.experiments.scenarios.{module}:{cls}"


def load_scenario(name: str) -> type[Scenario]:
    """Import a scenario's implementation, or raise ScenarioUnavailable saying what it needs."""
    spec = spec_of(name)
    module_name, _, attr = spec.implementation.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise ScenarioUnavailable(
                f"scenario {name!r} is not implemented yet ({module_name} does not exist); "
                f"it needs {spec.needs or 'its implementation'}"
            ) from None
        raise ScenarioUnavailable(
            f"scenario {name!r} cannot be loaded: module {err.name!r} is missing; "
            f"it needs {spec.needs or 'its implementation'}"
        ) from None
    cls = getattr(module, attr, None)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Scenario)):
        raise ScenarioUnavailable(
            f"scenario {name!r}: {spec.implementation} is not a Scenario subclass")
    return cls


def availability(name: str) -> str | None:
    """None when the scenario can be loaded, else the reason it cannot."""
    try:
        load_scenario(name)
    except ScenarioUnavailable as err:
        return str(err)
    return None


_TCFDL_PHASES = ("client-encrypt", "m1-route", "m1-proxy", "m1-publish", "m2-route", "m2-proxy",
                 "m2-publish", "worker-decrypt", "worker-process", "worker-encrypt",
                 "client-decrypt", "deliver")
_TCFDL_AGENTS = ("tcfdl-manager", "tcfdl-master", "tcfdl-proxy", "tcfdl-worker")


def _builtin() -> list[ScenarioSpec]:
    return [
        ScenarioSpec(
            name="link-bandwidth",
            summary="iperf3 between an edge host and the control host after a tbf rate change",
            implementation=_impl("link_bandwidth", "LinkBandwidth"),
            params=LinkBandwidthParams, workload=LinkBandwidthWorkload,
            phases=("shape", "iperf3"),
            metrics={"bandwidth_bps": "bit/s", "bandwidth_ratio": "ratio"},
            uses_hosts=True,
            needs="SSH to the lab hosts and iperf3 on them",
        ),
        ScenarioSpec(
            name="audit-cases",
            summary="seed 002 data-audit decisions (cases 1-3) through the audit service",
            implementation=_impl("audit_cases", "AuditCases"),
            params=AuditParams, workload=AuditWorkload,
            phases=("audit", "audit-record"),
            metrics={"permit": "ratio", "agrees_with_paper": "ratio", "tries": "count"},
            needs="agents.audit (domain, store, audit log, service)",
        ),
        ScenarioSpec(
            name="audit-migrations",
            summary="seed 002 Tables 7-8 as container migrations: SMF.MigrateService to a "
                    "region or any edge, the audit orders the tries (seed mapping)",
            implementation=_impl("audit_migrations", "AuditMigrations"),
            params=AuditMigrationsParams, workload=AuditMigrationsWorkload,
            phases=("audit", *MIGRATION_PHASES[1:]),
            metrics={"agrees_with_paper": "ratio", "tries": "count"},
            uses_hosts=True, agents=("smf", "audit", "ras", "ledger", "node"),
            needs="a lab with edges in regions (experiments/labs/auditlab.yaml) and "
                  "SMF.MigrateService with the audit deployed",
        ),
        ScenarioSpec(
            name="ledger-decision",
            summary="BloSM Figure 11's ablation: only the metadata exchange of the ledger, "
                    "central-cloud and direct paths (loopback or lab placement, mTLS)",
            implementation=_impl("ledger_decision", "LedgerDecision"),
            params=LedgerParams, workload=LedgerWorkload,
            phases=("direct", "ledger-write", "ledger-evaluate", "central-upload",
                    "central-evaluate"),
            metrics={"latency_cost_ledger": "cost", "latency_cost_central": "cost",
                     "bandwidth_cost_ledger": "cost", "bandwidth_cost_central": "cost",
                     "confirmations": "count", "t90_s": "s", "t100_s": "s",
                     "self_eval_s": "s"},
            needs="agents.ledger (validator, peers, central) and a lab CA; the lab placement "
                  "needs an emulated lab deployed with `edgeferry deploy`",
            hosts_when=("placement", "lab"), hosts_when_agents=("ledger",),
        ),
        ScenarioSpec(
            name="ledger-migration",
            summary="BloSM Figure 11 like the paper: a real container migrates for a moving "
                    "client via direct, ledger and central-cloud paths; four costs vs direct",
            implementation=_impl("ledger_migration", "LedgerMigration"),
            params=LedgerParams, workload=LedgerMigrationWorkload,
            phases=("direct-metadata", "direct-evaluate", "direct-transfer", "direct-start",
                    "ledger-broadcast",
                    *(f"ledger-{s}-{k}" for k in ("high", "low")
                      for s in ("evaluate", "transfer", "start", "return")),
                    *(f"central-{s}-{k}" for k in ("high", "low")
                      for s in ("upload", "metadata", "evaluate", "pull", "start",
                                "rerun-pull", "rerun-start"))),
            metrics={**{f"{c}_cost_{p}": "cost" for c in ("latency", "throughput", "storage",
                                                         "bandwidth", "throughput_duplex")
                        for p in ("ledger", "central")},
                     **{f"{m}_{p}": u for m, u in (("latency_s", "s"), ("wire_mb", "MB"))
                        for p in ("direct", "ledger_high", "ledger_low", "central_high",
                                  "central_low")},
                     "broadcast_s": "s"},
            uses_hosts=True, agents=("ledger", "node"),
            needs="the ledger lab (experiments/labs/ledgerlab.yaml: edges and a cloud host) "
                  "deployed with `edgeferry deploy`, Docker on its hosts",
        ),
        ScenarioSpec(
            name="container-migration",
            summary="BloSM Algorithm 3 cold migration: stop, commit, push, pull, run, first reply",
            implementation=_impl("container_migration", "ContainerMigration"),
            params=ContainerMigrationParams, workload=ContainerMigrationWorkload,
            phases=MIGRATION_PHASES, metrics=dict(MIGRATION_METRICS),
            uses_hosts=True, agents=("smf", "audit", "ras", "ledger", "node"),
            needs="the node agent (stop/commit/push/pull/run), the lab registry and "
                  "SMF.MigrateService deployed on the target",
        ),
        ScenarioSpec(
            name="placement",
            summary="seed 000 Algorithm 2: MigrateService without a destination; the SMF "
                    "chooses among the clouds whose advertised FREE fits the requirement",
            implementation=_impl("placement", "PlacementScenario"),
            params=PlacementParams, workload=PlacementWorkload,
            phases=("advertisements", "placement", *MIGRATION_PHASES),
            metrics={"as_expected": "ratio", "refused_clouds": "count",
                     "advert_wait_s": "s"},
            uses_hosts=True, agents=("smf", "audit", "ras", "ledger", "node"),
            needs="the node agents' periodic advertisements to the SMF (advertise_interval_s "
                  "> 0) and SMF.MigrateService deployed on the target",
        ),
        ScenarioSpec(
            name="nms-secure-migration",
            summary="seed 000 prototype: SSP session to the NMS, RASP-secured NMS migration, "
                    "no block lost",
            implementation=_impl("nms_secure_migration", "NmsSecureMigration"),
            params=NmsParams, workload=NmsWorkload,
            phases=("ssp", "write-blocks", *MIGRATION_PHASES, "reconnect", "verify-blocks",
                    # round_trip: the migration back to the source, then the blocks again
                    *(f"return-{p}" for p in (*MIGRATION_PHASES, "reconnect",
                                              "verify-blocks"))),
            metrics={"blocks_lost": "count", "blocks_written": "count",
                     "return_blocks_lost": "count", "return_downtime_s": "s",
                     "rasp_stage1_s": "s", "rasp_stage2_s": "s", "rasp_stage3_s": "s",
                     "rasp_stage4_s": "s", **MIGRATION_METRICS},
            uses_hosts=True, agents=("smf", "ras", "node"),
            needs="the SMF and RAS agents (SSP, RASP), the NMS workload image and its client, "
                  "and the node agent deployed on the target",
        ),
        ScenarioSpec(
            name="nms-client-moves",
            summary="seed 000 / BloSM Algorithm 3: a fuxfs client moves past its edge's "
                    "distance threshold, asks the SMF to migrate its NMS and keeps its mount",
            implementation=_impl("nms_client_moves", "NmsClientMoves"),
            params=NmsClientParams, workload=NmsMobilityWorkload,
            phases=("ssp", "mount", "write-files", "move", *MIGRATION_PHASES, "reconnect",
                    "verify-files"),
            metrics={"files_changed": "count", "files_checked": "count",
                     "acked_writes_lost": "count", "acked_writes": "count",
                     "mount_kept": "count", "longest_write_stall_s": "s",
                     "trigger_distance_m": "m", "trigger_t_s": "s", **MIGRATION_METRICS},
            uses_hosts=True, agents=("smf", "ras", "node"),
            needs="the SMF and RAS agents, the NMS workload image, FUSE on the controller "
                  "(the fuse3 package and /dev/fuse) for the fuxfs client",
        ),
        ScenarioSpec(
            name="request-migration",
            summary="BloSM Algorithm 3 request migration to the nearest neighbour cluster",
            implementation=_impl("request_migration", "RequestMigration"),
            params=RequestMigrationParams, workload=RequestMigrationWorkload,
            phases=("local-request", "request-migration"),
            metrics={"end_to_end_s": "s", "redirect_s": "s"},
            uses_hosts=True, agents=("smf", "node"),
            needs="the node agent's request forwarding (Algorithm 3, REQ_res >= R_rem) and "
                  "SMF deployed on the target",
        ),
        ScenarioSpec(
            name="sso-caching",
            summary="seed 004 Figs. 7-8 on the lab: BC vs FFC hit and miss ratio vs cache size "
                    "through the edges' blockcache agents (real blocks, hashes verified)",
            implementation=_impl("sso_lab", "SsoCachingLab"),
            params=SsoCachingLabParams, workload=SsoCachingLabWorkload,
            phases=("configure", "placement", "warm-up", "requests", "stats"),
            metrics={"hit_ratio": "ratio", "miss_ratio": "ratio", "fog_ratio": "ratio",
                     "origin_ratio": "ratio", "evictions": "count", "mb_in": "MB",
                     "mean_request_ms": "ms", "counters_agree": "ratio",
                     "corrupt_rejected": "count"},
            uses_hosts=True, agents=("blockcache", "blockcache-origin"),
            needs="the blockcache agents (origin on the control host, one per edge) deployed",
        ),
        ScenarioSpec(
            name="sso-composition",
            summary="seed 004 Figs. 4-6 on the lab: composite requests through the composer "
                    "with the three strategies",
            implementation=_impl("sso_lab", "SsoCompositionLab"),
            params=SsoCompositionLabParams, workload=SsoCompositionLabWorkload,
            phases=("requests",),
            metrics={"delay_s": "s", "mean_latency_s": "s", "grants": "count",
                     "nodes_used": "count", "same_result": "ratio", "compose_s": "s",
                     "soundness_s": "s", "assign_s": "s", "authorize_s": "s", "fetch_s": "s",
                     "execute_s": "s", "return_s": "s"},
            uses_hosts=True, agents=("composer", "blockcache", "blockcache-origin"),
            needs="the composer (control host) and the blockcache agents deployed",
        ),
        ScenarioSpec(
            name="sso-caching-sim",
            summary="seed 004 Figs. 7-8 simulated (SimPy, the agents' cache code): BC vs FFC "
                    "hit and miss ratio vs cache size",
            implementation=_impl("sso_sim", "SsoCachingSim"),
            params=SsoCachingSimParams, workload=SsoCachingSimWorkload,
            phases=("simulate",),
            metrics={"hit_ratio": "ratio", "miss_ratio": "ratio", "fog_ratio": "ratio",
                     "origin_ratio": "ratio", "evictions": "count", "mb_from_origin": "MB"},
            needs="simpy and agents.sso",
        ),
        ScenarioSpec(
            name="sso-composition-sim",
            summary="seed 004 Figs. 4-6 simulated (SimPy, the composer's code): delay of "
                    "non-cooperative, cooperative and cooperative-secure composition",
            implementation=_impl("sso_sim", "SsoCompositionSim"),
            params=SsoCompositionSimParams, workload=SsoCompositionSimWorkload,
            phases=("simulate",),
            metrics={"delay_s": "s", "mean_latency_s": "s", "completed": "count",
                     "refused": "count"},
            needs="simpy, pm4py and agents.sso",
        ),
        ScenarioSpec(
            name="tcfdl-offload",
            summary="seed 003 Figs. 6-7 on the lab: one task offloaded through TCFDL's clusters "
                    "(case 1-3, scheme none/hse/eae-umbral/eae-p256), per-hop phases",
            implementation=_impl("tcfdl_lab", "TcfdlOffloadLab"),
            params=TcfdlParams, workload=TcfdlWorkload, phases=_TCFDL_PHASES,
            metrics={"crypto_s": "s", "reencrypt_s": "s", "m1_reencrypt_s": "s",
                     "m2_reencrypt_s": "s", "bound_s": "s", "result_ok": "ratio",
                     "masters": "count", "framework_s": "s", "bare_s": "s",
                     "overhead_s": "s"},
            uses_hosts=True, agents=_TCFDL_AGENTS,
            needs="TCFDL deployed (a lab file with `tcfdl: true`, or edgeferry_tcfdl_enabled)",
        ),
        ScenarioSpec(
            name="tcfdl-pipeline",
            summary="seed 003 case study on the lab: the MLP split into stages on instances of "
                    "both clusters, EAE on every link, checked against the unsplit inference",
            implementation=_impl("tcfdl_lab", "TcfdlPipelineLab"),
            params=TcfdlPipelineParams, workload=TcfdlPipelineWorkload,
            phases=tuple(f"stage{i}" for i in range(1, 9)),
            metrics={"crypto_s": "s", "reencrypt_s": "s", "bound_s": "s",
                     "matches_unsplit": "ratio"},
            uses_hosts=True, agents=_TCFDL_AGENTS,
            needs="TCFDL deployed (a lab file with `tcfdl: true`, or edgeferry_tcfdl_enabled)",
        ),
    ]


for _spec in _builtin():
    register(_spec)


def describe_params(spec: ScenarioSpec) -> str:
    return ", ".join(spec.params.model_fields) or "(none)"


def param_defaults(spec: ScenarioSpec) -> dict[str, Any]:
    return {k: f.default for k, f in spec.params.model_fields.items() if not f.is_required()}
