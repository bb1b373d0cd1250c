"""The parameters and workloads of the shipped scenarios (pydantic models): what an
experiment's `parameters:` and `workload:` may say, validated before any implementation is
imported. `edgeferry.experiments.registry` ties each scenario's pair to its spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agents.audit.domain import PolicyError
from agents.security.rasp import Resources
from edgeferry import auditpolicy
from edgeferry.lab.config import parse_rate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _rate(value: str | int) -> str | int:
    parse_rate(value)
    return value


# ------------------------------------------------------------------------------ link-bandwidth
class LinkBandwidthParams(_Strict):
    host: str = Field(description="edge host whose link is measured")
    direction: Literal["up", "down"] = "down"
    rate: str | int | None = Field(
        default=None, description="tbf rate set before the trial (None: the lab's configured)")

    @field_validator("rate")
    @classmethod
    def _rate_ok(cls, value: str | int | None) -> str | int | None:
        return value if value is None else _rate(value)


class LinkBandwidthWorkload(_Strict):
    seconds: int = Field(default=5, ge=1, le=300)
    interval_s: float = Field(default=0.5, ge=0.1, le=10)
    omit_s: int = Field(default=1, ge=0, le=10)
    restore: bool = True  # put the lab's configured rate back after the part


# ------------------------------------------------------------------------------ audit-cases
class AuditParams(_Strict):
    target: str = Field(description="edge:<Edge>, region:<region> or any (seed 002 cases 1-3)")

    @field_validator("target")
    @classmethod
    def _target_ok(cls, value: str) -> str:
        mode, _, name = value.partition(":")
        if mode not in ("edge", "region", "any") or (mode != "any") != bool(name):
            raise ValueError(f"target {value!r}: use edge:<name>, region:<name> or any")
        return value


class AuditWorkload(_Strict):
    tables: str = Field(default="seed002", description="seed002 or a policy YAML path")
    container: str = "App1"
    transport: Literal["in-process", "grpc"] = "in-process"


# ------------------------------------------------------------------------------ ledger-decision
class LedgerParams(_Strict):
    nodes: int = Field(ge=2, le=1000, description="blockchain nodes (validator + peers)")
    high_resource_share: float = Field(default=0.5, ge=0, le=1)


class LedgerWorkload(_Strict):
    quorum: float = Field(default=0.9, gt=0, le=1)
    timeout_s: float = Field(default=10.0, gt=0)
    peer_hosts: int = Field(default=2, ge=1, le=16, description="processes hosting the peers")
    image_bytes: int = Field(default=2_130_000_000, ge=1)
    app_type: str = "image-recog"
    placement: Literal["loopback", "lab"] = Field(
        default="loopback", description="loopback: every agent in this process (quick demo); "
        "lab: validator + central on the control host, peers on the edges (Fabric)")
    source: str = Field(default="edge1", description="lab placement: the submitting edge")
    destination: str = Field(default="edge2", description="lab placement: the deciding edge")
    port_base: int = Field(default=50400, ge=1024, le=65000,
                           description="lab placement: first port of the ledger processes")
    cloud: str | None = Field(default=None, description="lab placement: the host that runs "
                              "the central service, behind its own link (none: the control "
                              "host); it hosts no peers")


class LedgerMigrationWorkload(_Strict):
    """Figure 11 like the paper (scenarios/ledger_migration.py): hosts of the ledger lab."""

    quorum: float = Field(default=0.9, gt=0, le=1)
    timeout_s: float = Field(default=10.0, gt=0)
    app_type: str = "image-recog"
    image_size_mb: int = Field(default=64, ge=1, le=4096,
                               description="the synthetic container image that migrates")
    user_data_kb: int = Field(default=64, ge=1, le=1_000_000,
                              description="the client's data sent back to the source on a "
                              "ledger refusal")
    low_free_mb: int = Field(default=16, ge=0, le=65536,
                             description="free memory a resident load leaves the low host")
    source: str = "edge1"
    high: str = Field(default="edge2", description="the high-resource destination")
    low: str = Field(default="edge3", description="the low-resource destination")
    cloud: str = Field(default="cloud", description="the central cloud host")
    port_base: int = Field(default=50500, ge=1024, le=65000,
                           description="first port of the ledger processes")
    transfer_port: int = Field(default=50580, ge=1024, le=65000,
                               description="first of 16 ports where a receiving host listens "
                               "for a container")

    @model_validator(mode="after")
    def _distinct(self) -> LedgerMigrationWorkload:
        hosts = [self.source, self.high, self.low, self.cloud]
        if len(set(hosts)) != 4:
            raise ValueError(f"source, high, low and cloud must be four hosts, not {hosts}")
        return self


# ------------------------------------------------------------------------------ migrations
#: SMF.MigrateService phase orders: "diff" (base layers, RASP 1-8, ledger, self-evaluation
#: before the stop; the default), "direct" (diff-first, the diff relayed engine to engine by the
#: SMF without the registry) and "paper" (the paper's order, for fidelity runs)
PhaseOrder = Literal["diff", "direct", "paper"]


class _MigrationParams(_Strict):
    """The SMF phase order and the trial's link rate, shared by the migration scenarios."""

    order: PhaseOrder = Field(default="diff", description="SMF phase order: diff or paper")
    bandwidth: str | int | None = Field(
        default=None, description="emulated lab: the source's and destination's links are "
        "shaped to this rate for the trial (e.g. 40mbit) and put back after the part")

    @field_validator("bandwidth")
    @classmethod
    def _bw_ok(cls, value: str | int | None) -> str | int | None:
        return value if value is None else _rate(value)


class ContainerMigrationParams(_MigrationParams):
    image_size_mb: int = Field(ge=1, le=65536)
    condition: Literal["cold", "warm"] = Field(
        default="cold", description="cold: the destination holds none of the image's layers; "
        "warm: they are pre-pulled there (untimed) before the trial")


class ContainerPolicyWorkload(_Strict):
    """The container policy (seed 002 Table 1) the migrated service registers with the audit:
    ``container_policy`` (inline) or ``container_policy_file`` (YAML, relative to the
    experiment file; validated with the experiment's directory as the validation context
    ``experiment_dir``), else `edgeferry.auditpolicy.DEFAULT_CONTAINER_POLICY`."""

    container_policy: dict[str, Any] | None = Field(
        default=None, description="seed-002 container requirements (cDAl ... cHRaf)")
    container_policy_file: str | None = Field(
        default=None, description="a YAML file of them, relative to the experiment file")
    _requirements: dict[str, str] = PrivateAttr(default_factory=dict)
    _policy_source: str = PrivateAttr(default="default")

    @field_validator("container_policy")
    @classmethod
    def _policy_ok(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                auditpolicy.check_container_policy(value)
            except PolicyError as err:
                raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _resolve_policy(self, info: ValidationInfo) -> ContainerPolicyWorkload:
        if self.container_policy is not None and self.container_policy_file is not None:
            raise ValueError("give container_policy or container_policy_file, not both")
        if self.container_policy is not None:
            self._requirements = auditpolicy.check_container_policy(self.container_policy)
            self._policy_source = "container_policy (experiment)"
        elif self.container_policy_file is not None:
            path = Path(self.container_policy_file)
            base = (info.context or {}).get("experiment_dir")
            if not path.is_absolute() and base is not None:
                path = Path(base) / path
            try:
                self._requirements = auditpolicy.load_container_policy_file(path)
            except PolicyError as err:
                raise ValueError(f"container_policy_file: {err}") from None
            self._policy_source = f"container_policy_file {path}"
        else:
            self._requirements = auditpolicy.check_container_policy(
                auditpolicy.DEFAULT_CONTAINER_POLICY)
        return self

    @property
    def requirements(self) -> dict[str, str]:
        """The container policy in force (every Table 1 element, canonical text)."""
        return dict(self._requirements)

    @property
    def policy_source(self) -> str:
        """Where the policy in force came from ("default", the inline key or the file)."""
        return self._policy_source


class RequirementSpec(_Strict):
    """A service's RAS requirement (RASP units; what RASP allocates at the destination and
    Algorithm 2 compares with each cloud's advertised FREE). The defaults are the ecosystem's
    `SERVICE_NEEDS`."""

    cpu: int = Field(default=100, ge=1, le=1_000_000, description="millicores")
    memory_mib: int = Field(default=256, ge=1, le=1 << 20, description="memory, MiB")
    storage_mib: int = Field(default=1000, ge=0, le=1 << 30, description="storage, MiB")
    network_mbit: int = Field(default=10, ge=0, le=1_000_000, description="network, Mbit/s")

    def resources(self) -> Resources:
        """The requirement as RASP `Resources`."""
        return Resources(cpu=self.cpu, memory=self.memory_mib, storage=self.storage_mib,
                         network=self.network_mbit)


#: the resources a placement expectation may name -> the shortfall's node-unit key
SHORTFALL_KEYS = {"cpu": "cpu_millicores", "memory": "memory_bytes",
                  "storage": "storage_bytes", "network": "network_bps", "gpu": "gpu"}


class PlacementExpectation(_Strict):
    """What a placement trial must show: the chosen cloud among ``chosen`` (host names; empty:
    any), each host in ``refused`` refused for lack of (at least) the resources listed, and
    ``none_fits`` when no cloud may be chosen at all."""

    chosen: list[str] = Field(default_factory=list, max_length=64)
    refused: dict[str, list[Literal["cpu", "memory", "storage", "network", "gpu"]]] = Field(
        default_factory=dict)
    none_fits: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> PlacementExpectation:
        if self.none_fits and self.chosen:
            raise ValueError("expect: none_fits and chosen contradict each other")
        both = sorted(set(self.chosen) & set(self.refused))
        if both:
            raise ValueError(f"expect: {', '.join(both)} both chosen and refused")
        return self


class PlacementParams(_Strict):
    order: PhaseOrder = Field(default="diff", description="SMF phase order: diff or paper")


class PlacementWorkload(ContainerPolicyWorkload):
    """A synthetic service registered with ``requirement`` at ``source``, moved with
    MigrateService(destination "") so the SMF chooses (Algorithm 2). ``service`` must be one of
    the deployed SMF's workloads (settings.container.workloads) and names one requirement."""

    source: str = "edge1"
    service: str = Field(default="placement-large", pattern=r"^[a-z][a-z0-9-]{0,62}$")
    requirement: RequirementSpec = Field(default_factory=RequirementSpec)
    expect: PlacementExpectation | None = None
    advert_wait_s: float = Field(default=60.0, gt=0, le=600, description="bound on the wait "
                                 "for a fresh advertisement of every edge at the SMF")

    @model_validator(mode="after")
    def _source_not_expected(self) -> PlacementWorkload:
        if self.expect is not None and self.source in self.expect.chosen:
            raise ValueError(f"expect.chosen: the source {self.source} is never chosen")
        return self


class AuditMigrationRun(_Strict):
    """One migration of Tables 7-8: the target, the seed of the audit's order of tries (the
    seed mapping that reproduces the paper's order) and what the paper reports for it."""

    target: str = Field(description="region:<region> or any")
    audit_seed: int = Field(ge=0, lt=2**63)
    paper_tries: list[tuple[str, Literal["permit", "deny"]]]
    paper_audit_ms: float = Field(ge=0)
    paper_migration_ms: float = Field(ge=0)

    @field_validator("target")
    @classmethod
    def _target_ok(cls, value: str) -> str:
        mode, _, name = value.partition(":")
        if not ((mode == "region" and name) or value == "any"):
            raise ValueError(f"target {value!r}: use region:<name> or any")
        return value


class AuditMigrationsParams(_Strict):
    run: int = Field(ge=0, le=99, description="index into workload.runs")


class AuditMigrationsWorkload(ContainerPolicyWorkload):
    source: str = Field(default="edge1", description="the edge every migration starts from")
    destination: str = Field(default="edge3", description="unused (the audit picks); an edge")
    image_size_mb: int = Field(default=16, ge=1, le=4096)
    runs: list[AuditMigrationRun] = Field(min_length=1, max_length=100)
    requirement: RequirementSpec | None = Field(
        default=None, description="the service's RAS requirement (default SERVICE_NEEDS)")


class ContainerMigrationWorkload(ContainerPolicyWorkload):
    source: str = "edge1"
    destination: str = "edge2"
    registry: str = "control"
    base_image: str | None = None
    gpu: bool = False
    requirement: RequirementSpec | None = Field(
        default=None, description="the service's RAS requirement (default SERVICE_NEEDS)")


class NmsParams(_MigrationParams):
    volume_mb: int = Field(default=64, ge=1, le=65536)


class NmsWorkload(ContainerPolicyWorkload):
    source: str = "edge1"
    destination: str = "edge2"
    client: str = "control"
    capability_scheme: Literal["keyed", "paper"] = "keyed"
    block_size: int = Field(default=4096, ge=512)
    round_trip: bool = Field(default=False, description="after the blocks are verified at the "
                             "destination, migrate the NMS back to the source and verify them "
                             "again (x86 -> jetson -> x86: two platform changes)")


class NmsClientParams(_MigrationParams):
    volume_mb: int = Field(default=4, ge=1, le=4096, description="MB of files the client "
                           "writes into its fuxfs mount before it moves")
    files: int = Field(default=4, ge=1, le=1000, description="the volume split into this many "
                       "files")


class EdgeSiteSpec(_Strict):
    at: tuple[float, float] = Field(description="the edge's position (x, y), metres")
    threshold_m: float = Field(gt=0, description="how far from it the edge serves a client "
                               "(BloSM Algorithm 3's Threshold)")


class MobilitySpec(_Strict):
    """A client's path and the edges' coverage (`edgeferry.experiments.mobility`)."""

    edges: dict[str, EdgeSiteSpec] = Field(min_length=2)
    path: list[tuple[float, float]] = Field(min_length=2, description="waypoints, metres")
    speed_mps: float = Field(default=50.0, gt=0, le=1000)
    step_s: float = Field(default=0.5, gt=0, le=60, description="how often the client "
                          "checks its position against the thresholds")


class NmsMobilityWorkload(NmsWorkload):
    mobility: MobilitySpec

    @model_validator(mode="after")
    def _edges_placed(self) -> NmsMobilityWorkload:
        missing = [h for h in (self.source, self.destination) if h not in self.mobility.edges]
        if missing:
            raise ValueError(f"mobility.edges gives no position for {', '.join(missing)}")
        if self.round_trip:
            raise ValueError("round_trip: the moving client takes its NMS one way (its path "
                             "decides); use the nms-secure-migration scenario for a round trip")
        return self


# ------------------------------------------------------------------------------ seed 004 (SSO)
class SsoCachingSimParams(_Strict):
    granularity: Literal["bc", "ffc"] = Field(description="block caching or full-file caching")
    policy: Literal["lru", "lfu"] = "lru"
    cache_tb: float | None = Field(default=None, gt=0, description="each edge's cache (TB)")
    cache_mb: float | None = Field(default=None, gt=0, description="each edge's cache (MB)")
    edges: int = Field(default=150, ge=1, le=1000)
    n_jobs: int = Field(default=1500, ge=1, le=100000)
    warmup_jobs: int = Field(default=0, ge=0, le=100000, description="an earlier request "
                             "history (same popularity, another seed) fills the caches first")


class SsoCachingSimWorkload(_Strict):
    scale: Literal["paper", "lab"] = Field(
        default="paper", description="paper: 500 TB of 20 GB files in 2.5 GB block sets "
        "(edgeferry.sso.sim); lab: the catalog below, as the lab's blockcache origin serves it")
    n_files: int = Field(default=40, ge=1, le=100000)
    blocks_per_file: int = Field(default=8, ge=1, le=1024)
    block_kib: int = Field(default=64, ge=1, le=4096)
    alpha: float = Field(default=0.8, gt=0, description="Zipf exponent of file popularity")
    block_alpha: float = Field(default=1.5, gt=0, description="Zipf exponent within a file")
    neighbours: int = Field(default=2, ge=0, le=16)
    cloud_sites: int = Field(default=3, ge=1, le=16)
    warm: Literal["popularity", "none"] = "popularity"


class SsoCompositionSimParams(_Strict):
    strategy: Literal["non-cooperative", "cooperative", "cooperative-secure"]
    n_requests: int = Field(default=50, ge=1, le=10000)
    nodes: int = Field(default=4, ge=1, le=200)
    actions_per_service: int = Field(default=1, ge=1, le=64)


class SsoCompositionSimWorkload(_Strict):
    services: int = Field(default=6, ge=1, le=100)
    services_per_request: int = Field(default=4, ge=1, le=50)
    offer_prob: float = Field(default=0.6, gt=0, le=1)
    chi_prob: float = Field(default=0.9, gt=0, le=1)
    secure_overhead_ms: float = Field(default=1.0, ge=0, description="per transition: grant "
                                      "signing + verification (the lab part measures it)")


class SsoCachingLabParams(_Strict):
    granularity: Literal["bc", "ffc"] = Field(description="block caching or full-file caching")
    policy: Literal["lru", "lfu"] = "lru"
    cache_mb: float = Field(gt=0, le=100000, description="each edge's cache (MB)")
    n_jobs: int = Field(default=300, ge=1, le=100000)
    warmup_jobs: int = Field(default=0, ge=0, le=100000, description="an earlier request "
                             "history (same popularity, another seed) fills the caches first")


class SsoCachingLabWorkload(_Strict):
    """The catalog must be the one the lab's origin serves (edgeferry_sso_catalog)."""

    n_files: int = Field(default=50, ge=1, le=100000)
    blocks_per_file: int = Field(default=16, ge=1, le=1024)
    block_kib: int = Field(default=64, ge=1, le=4096)
    alpha: float = Field(default=0.8, gt=0, description="Zipf exponent of file popularity")
    block_alpha: float = Field(default=1.5, gt=0, description="Zipf exponent within a file")
    warm: Literal["popularity", "none"] = Field(
        default="none", description="popularity: before counting, every edge fetches the most "
        "popular units its cache holds, least popular first (the paper's placement, as "
        "edgeferry.sso.sim does); none: the caches start empty")


class SsoCompositionLabParams(_Strict):
    strategy: Literal["non-cooperative", "cooperative", "cooperative-secure"]
    n_requests: int = Field(default=10, ge=1, le=200)
    nodes: int = Field(default=3, ge=1, le=64, description="cooperating edges (home first)")
    actions_per_service: int = Field(default=1, ge=1, le=16)


class SsoCompositionLabWorkload(_Strict):
    home: str = "edge1"
    file_id: str = "file-000000"
    blocks_per_request: int = Field(default=1, ge=1, le=1024, description="the query's blocks "
                                    "(the first ones of the file)")
    services: list[str] = Field(default_factory=lambda: ["filter", "transcode",
                                                          "subtitle-merge", "audio-enhance"])


class RequestMigrationParams(_Strict):
    request_mib: int = Field(default=512, ge=1, description="REQ_res memory of the request "
                             "that must be migrated (>= R_rem at the source)")
    app: Literal["driver-profiling", "image-recognition"] = "image-recognition"


class RequestMigrationWorkload(_Strict):
    source: str = "edge1"
    neighbour: str = "edge2"
    headroom_mib: int = Field(default=256, ge=1, description="R_rem left at the source")
    local_mib: int = Field(default=16, ge=1, description="REQ_res of the request served locally")


# ------------------------------------------------------------------------------ tcfdl (seed 003)
class TcfdlParams(_Strict):
    case: Literal["case1", "case2", "case3"] = Field(
        description="Fig. 5: case1 one master, case2 master + worker, case3 two clusters")
    scheme: Literal["none", "hse", "eae-umbral", "eae-p256"] = "none"
    size_kib: int = Field(ge=1, le=4096, description="task bytes / 1024 (random data)")
    bare: bool = Field(default=False, description=(
        "before each task, a bare NATS request/reply of the same bytes to the same instance "
        "(its probe: no master, no cryptography, no function); adds the metrics bare_s and "
        "overhead_s = task total - bare - the instance's MLP time"))


class TcfdlWorkload(_Strict):
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    iperf_seconds: int = Field(default=2, ge=1, le=30, description="per link, before trials")


class TcfdlPipelineParams(_Strict):
    scheme: Literal["eae-umbral", "eae-p256"] = "eae-p256"
    size_kib: int = Field(ge=1, le=4096)
    stages: int = Field(default=2, ge=2, le=8, description="model stages = instances")


class TcfdlPipelineWorkload(_Strict):
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    iperf_seconds: int = Field(default=2, ge=1, le=30)
    function_prefix: str = Field(default="pipe", pattern=r"^[a-z][a-z0-9-]{0,30}$",
                                 description="stage i is the function <prefix><i>")
