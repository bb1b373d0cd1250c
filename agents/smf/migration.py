"""Migrate Service: the phases of a migration wired to the agents that run them (no gRPC).

`migrate_service` is the command: authorise the request (SmfCore), hold the service's
migration slot, run the plan and record the outcome in the migration history; a failed phase is
an answer (`MigrationOutcome` with the records and a precise error code), not an exception.

`build_plan` turns the SMF's configured ports into a `MigrationPlan`. The ports hold the
clients of the other agents as objects (built by agents/smf/agent.py); this module only calls
them. Optional per deployment:
the data-audit check (`AuditHook`, agents/audit), the ledger write and destination
self-evaluation (`LedgerHook`, agents/ledger) and the node agents' container phases
(`ContainerPhases`, implemented over NodeService by agents/smf/container.py). RASP always runs,
between the RASP endpoints of the service's current server (Server SA) and the destination
(Cloud CB), relayed by the SMF. The request's ``order`` picks one of two orders; with everything
configured they are::

    diff (default): downtime = the diff        paper (fidelity runs): downtime = everything
    ------------------------------------       -------------------------------------------
    policy_audit                               policy_audit
    prepull         image the source runs      [prepull]      proactive mode: base_image
    rasp_handshake  steps 1-8                  stop, commit, push
    ledger_write, self_evaluation              rasp_handshake steps 1-11 (M_Trf: pushed digest)
    stop, commit, push   (downtime starts)     ledger_write, self_evaluation
    rasp_transfer   steps 9-11                 pull, run, first_response
    pull, run, first_response                  rasp_location_update
    rasp_location_update                       location_commit
    location_commit                            audit_location_update
    audit_location_update                      source_cleanup
    source_cleanup

The direct order is the diff order with the diff moved without the registry: ``stop``, then
``transfer`` (the SMF relays the layer the source's agent makes of its changes to the
destination's agent, which keeps it), rasp_transfer (step 10 carries the new image's id,
which names the layer), ``load`` (the destination checks the config and the kept layer against
step 10 and loads them on the pre-pulled image), run, first_response, and ``publish`` (the
destination pushes the new image to the registry, after the downtime, so that the next
migration pre-pulls it).

In all, policy_audit's denial stops the migration before anything moves; push yields the
digest + size, carried authenticated under Ksc in M_Trf (step 10) -- in the diff order the
source learns them after the push (`RaspRelay.finish`, SetTransfer) -- and the destination's
pull is checked against step 10; rasp_location_update is step 12; location_commit moves the
SMF's record (epoch + 1) only after the destination answered; audit_location_update is best
effort; source_cleanup removes the source's stopped container. In the diff order only the
committed top layer moves while the service is down: the destination pre-pulled the image the
source runs from, and RASP's certificate/key stages, the ledger write and the self-evaluation
ran before the stop (the ledger gets the best size estimate available then, see
agents/smf/container.py `NodeContainerPhases.prepull`).

A container phase set's ``abort(state, failed_phase, exc)`` (when it has one) runs after any
failure and adds an "abort" record (restart the source, remove a destination copy).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agents.common.convert import MIB
from agents.ledger.client import ContainerMetadata, NodeResources
from agents.security.errors import ProtocolError
from agents.security.rasp import TransferDescriptor
from agents.smf.core import SmfCore
from agents.smf.domain import (
    DIFF_FIRST,
    Location,
    MigrationFailed,
    MigrationPlan,
    MigrationState,
    NotConfigured,
    NotFound,
    Phase,
    PhaseObserver,
    PhaseRecord,
    PhaseResult,
    PolicyDenied,
    ServerEntry,
    StaleEpoch,
    Unavailable,
    parse_order,
)

if TYPE_CHECKING:  # the clients are passed in as objects; only their types are named here
    from agents.audit.client import AuditClient, AuditVerdict
    from agents.ledger.client import LedgerClient
    from agents.node.client import EndpointClient
    from agents.smf.relay import RaspHandshake, RaspRelay, Tap

#: relay(source endpoint, destination endpoint, tap) -> the RaspRelay of one migration
RelayFactory = Callable[["EndpointClient", "EndpointClient", "Tap | None"], "RaspRelay"]

#: precise error codes of failed migrations that are not a ProtocolError's code
STALE_EPOCH = "STALE_EPOCH"
POLICY_DENIED = "POLICY_DENIED"
INTERNAL = "INTERNAL"


class ContainerPhases(Protocol):
    """The node agents' part. Paper order: phases named in `BEFORE_HANDSHAKE` go before
    rasp_handshake; diff order: `PREPARE` ones before rasp_handshake and `SOURCE_DOWN` ones
    after self_evaluation, before rasp_transfer. In both, those in `AFTER_COMMIT` go after
    location_commit, the rest before rasp_location_update."""

    def phases(self, order: str) -> list[Phase]:
        """The container phases of `order` (DIFF_ORDER or PAPER_ORDER), in the order they run."""
        ...


PREPARE = ("prepull",)
SOURCE_DOWN = ("stop", "commit", "push", "transfer")
BEFORE_HANDSHAKE = PREPARE + SOURCE_DOWN
AFTER_COMMIT = ("source_cleanup",)


@dataclass(frozen=True)
class AuditedTarget:
    """Seed 002 cases 2-3: a region ("" = any edge) and the seed of the order of tries
    (None: the audit agent draws one)."""

    region: str = ""
    seed: int | None = None

    def __str__(self) -> str:
        return f"region {self.region}" if self.region else "any edge"


def tries_text(verdict: AuditVerdict) -> str:
    """``Edge2 deny (cDAl: ...), Edge3 permit``: the audit's tries in order."""
    return ", ".join(
        f"{t.edge} permit" if t.permit else
        f"{t.edge} deny ({'; '.join(f'{c.element}: {c.note}' for c in t.failures)})"
        for t in verdict.tries) or "no candidate edge"


@dataclass
class AuditHook:
    """Policy audit (seed 002) before anything moves."""

    client: AuditClient
    #: the owner token, or where to read it at each use (a file renewed by the deploy)
    token_source: bytes | Callable[[], bytes]

    @property
    def owner_token(self) -> bytes:
        """The container owner's sealed token, as of now."""
        src = self.token_source
        return src if isinstance(src, bytes) else src()

    def choose(self, container: str, source: str, target: AuditedTarget,
               request_id: str = "") -> AuditVerdict:
        """Seed 002 cases 2-3: ask the audit agent for the order of tries in ``target`` and its
        decision on each until one permits. When the audit tried ``source`` (its record of the
        container's location is behind the SMF's), the location is re-synced and it is asked
        again. An unknown region raises NotFound, an unreachable agent Unavailable."""
        def ask() -> AuditVerdict:
            try:
                return self.client.evaluate(self.owner_token, container,
                                            region=target.region or None, seed=target.seed,
                                            request_id=request_id)
            except Exception as err:
                code = str(getattr(getattr(err, "code", None), "name", ""))
                if code == "NOT_FOUND":
                    raise NotFound(f"audit: {getattr(err, 'message', err)}") from None
                if code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "PERMISSION_DENIED",
                            "UNAUTHENTICATED"):
                    raise PolicyDenied(f"audit refuses: {getattr(err, 'message', err)}") \
                        from None
                raise Unavailable(f"audit agent: {err}"[:500]) from None

        verdict = ask()
        if any(t.edge == source for t in verdict.tries):
            self.client.set_container_location(self.owner_token, container, source)
            verdict = ask()
        return verdict

    def phase(self) -> Phase:
        """The policy_audit phase: a denial raises PolicyDenied (nothing has moved yet). When
        the destination came from a region / any-edge audit (``extras["audit_verdict"]``),
        that decision is the phase: the tries are its detail and nothing is asked again."""
        def evaluate(state: MigrationState) -> Any:
            return self.client.evaluate(
                self.owner_token, state.service.name, edge=state.destination.name,
                request_id=state.migration_id,
            )

        def run(state: MigrationState) -> PhaseResult:
            chosen = state.extras.get("audit_verdict")
            if chosen is not None:
                return PhaseResult(detail=(
                    f"{state.extras.get('audit_target', 'target')}: {tries_text(chosen)} "
                    f"(decision {chosen.audit_seconds * 1000:.3f} ms, "
                    f"log #{chosen.log_seq})")[:500])
            try:
                verdict = evaluate(state)
            except Exception as err:
                if "runs on" not in str(err):
                    raise
                # the audit agent's location is behind the SMF's record (an earlier
                # best-effort update failed): the SMF's record is authoritative
                self.client.set_container_location(self.owner_token, state.service.name,
                                                   state.source.name)
                verdict = evaluate(state)
            if not verdict.permit:
                raise PolicyDenied("data audit denies: " + "; ".join(verdict.reasons))
            return PhaseResult(
                detail=f"permit (decision {verdict.audit_seconds * 1000:.3f} ms, "
                       f"log #{verdict.log_seq})")

        return Phase("policy_audit", run)

    def location_phase(self) -> Phase:
        """After the location commit: tell the audit agent where the container runs now.
        Best effort (the migration is done); the next audit re-syncs if this fails."""

        def run(state: MigrationState) -> PhaseResult:
            try:
                self.client.set_container_location(self.owner_token, state.service.name,
                                                   state.destination.name)
            except Exception as err:
                return PhaseResult(detail=f"deferred: {err}"[:500])
            return PhaseResult(detail=f"audit agent: {state.service.name} on "
                                      f"{state.destination.name}")

        return Phase("audit_location_update", run)


@dataclass
class LedgerHook:
    """Ledger Algorithm 1 (write, wait for the quorum) and Algorithm 2 at the destination."""

    client: LedgerClient
    quorum: float = 0.9
    timeout_s: float = 10.0
    application_types: tuple[str, ...] = ()
    gpu_usage: int = 0

    def phases(self, endpoint: Callable[[ServerEntry], EndpointClient]) -> list[Phase]:
        """ledger_write (Algorithm 1) and self_evaluation (Algorithm 2 with the
        destination's FREE resources, read through `endpoint`)."""
        def metadata(state: MigrationState) -> ContainerMetadata:
            return ContainerMetadata(
                source_ip=state.source.ipv4,
                container_id=state.extras.get("container_id", state.service.name),
                total_size=int(state.extras.get("size_bytes", 0)),
                gpu_usage=self.gpu_usage,
                cpu_usage=state.service.requirement.cpu,
                type=state.service.name,
            )

        def write(state: MigrationState) -> PhaseResult:
            result = self.client.write_and_wait(metadata(state), quorum=self.quorum,
                                                timeout=self.timeout_s)
            if not result.ok:
                raise RuntimeError(f"ledger write failed: {result.reason}")
            state.extras["ledger_tx"] = result.tx_id
            return PhaseResult(detail=f"tx {result.tx_id}: {result.confirmations}/"
                                      f"{result.total_nodes} confirmations")

        def evaluate(state: MigrationState) -> PhaseResult:
            _, free = endpoint(state.destination).identity()
            node = NodeResources(free_memory=free.memory * MIB, free_cpu=free.cpu, free_gpu=0,
                                 application_types=self.application_types)
            ev = self.client.self_evaluate(metadata(state).container_id, node)
            if ev is None:
                raise RuntimeError("no metadata on the ledger for the container")
            if not ev.accept:
                raise PolicyDenied(f"destination self-evaluation rejects: {ev.reason}")
            return PhaseResult(detail=ev.reason)

        return [Phase("ledger_write", write), Phase("self_evaluation", evaluate)]


@dataclass
class MigrationPorts:
    """How the SMF reaches the agents a migration involves."""

    relay: RelayFactory
    endpoint: Callable[[ServerEntry], EndpointClient]
    audit: AuditHook | None = None
    ledger: LedgerHook | None = None
    container: ContainerPhases | None = None
    tap: Tap | None = None
    extra_phases: list[tuple[str, Phase]] = field(default_factory=list)  # (before, phase)


def _transfer(st: MigrationState) -> TransferDescriptor:
    return TransferDescriptor(
        service=st.service.name,
        image_ref=str(st.extras.get("image_ref", st.service.image_ref)),
        image_digest=str(st.extras.get("image_digest", "")),
        size_bytes=int(st.extras.get("size_bytes", 0)),
    )


def _stages(hs: RaspHandshake, steps: range) -> PhaseResult:
    stages = ", ".join(f"stage {k} {v * 1000:.2f} ms"
                       for k, v in sorted(hs.timings.stage_s.items()))
    return PhaseResult(bytes_moved=sum(v for k, v in hs.timings.message_bytes.items()
                                       if k in steps), detail=stages)


def build_plan(core: SmfCore, ports: MigrationPorts, state: MigrationState) -> MigrationPlan:
    """The phases of migrating `state`'s service in `state.order` (module docstring)."""
    relay = ports.relay(ports.endpoint(state.source), ports.endpoint(state.destination),
                        ports.tap)
    holder: dict[str, RaspHandshake] = {}
    diff = state.order in DIFF_FIRST

    def begin(st: MigrationState) -> None:
        holder["hs"] = hs = relay.begin(
            st.migration_id, source=st.source.public, destination=st.destination.public,
            requirement=st.service.requirement, transfer=_transfer(st))
        st.rasp_session_id = hs.session_id
        st.extras["rasp_timings"] = hs.timings

    def handshake(st: MigrationState) -> PhaseResult:
        begin(st)
        if diff:  # steps 1-8: the session key is at the destination; M_Trf waits for the push
            return _stages(holder["hs"], range(1, 9))
        return _stages(relay.finish(holder["hs"]), range(1, 12))

    def transfer(st: MigrationState) -> PhaseResult:
        pushed = _transfer(st) if st.extras.get("image_digest") else None
        hs = relay.finish(holder["hs"], pushed)
        result = _stages(hs, range(9, 12))
        what = f"M_Trf carries {pushed.image_digest}" if pushed else "M_Trf as prepared"
        return PhaseResult(bytes_moved=result.bytes_moved, detail=f"{what}; {result.detail}")

    def location_update(st: MigrationState) -> PhaseResult:
        hs = holder["hs"]
        relay.location_update(hs)
        return PhaseResult(bytes_moved=hs.timings.message_bytes.get(12, 0),
                           detail="registry recorded the new location (step 12)")

    def commit(st: MigrationState) -> PhaseResult:
        st.new_location = core.commit_location(st.service.global_id, st.epoch,
                                               st.destination.name)
        return PhaseResult(detail=f"{st.destination.name} at epoch {st.new_location.epoch}")

    container = ports.container.phases(state.order) if ports.container is not None else []

    def add(plan: MigrationPlan, names: tuple[str, ...]) -> None:
        for phase in container:
            if phase.name in names:
                plan.add(phase)

    plan = MigrationPlan()
    if "placement" in state.extras:  # Algorithm 2 chose the destination (MigrateService "")
        detail = str(state.extras["placement"])  # JSON, bounded (`Placement.detail`)
        plan.add(Phase("placement", lambda _st: PhaseResult(detail=detail)))
    if ports.audit is not None:
        plan.add(ports.audit.phase())
    add(plan, PREPARE if diff else BEFORE_HANDSHAKE)
    plan.add(Phase("rasp_handshake", handshake))
    if ports.ledger is not None:
        for phase in ports.ledger.phases(ports.endpoint):
            plan.add(phase)
    if diff:
        add(plan, SOURCE_DOWN)
        plan.add(Phase("rasp_transfer", transfer))
    add(plan, tuple(p.name for p in container
                    if p.name not in BEFORE_HANDSHAKE + AFTER_COMMIT))
    plan.add(Phase("rasp_location_update", location_update))
    plan.add(Phase("location_commit", commit))
    if ports.audit is not None:
        plan.add(ports.audit.location_phase())
    add(plan, AFTER_COMMIT)
    abort = getattr(ports.container, "abort", None)
    if abort is not None:
        plan.on_failure.append(abort)
    for before, phase in ports.extra_phases:
        plan.insert_before(before, phase)
    return plan


# -- Migrate Service ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationOutcome:
    """Migrate Service's answer: the phases as run and where the service is now. A failed
    migration carries the `MigrationFailed` and its precise error `code`."""

    state: MigrationState
    records: list[PhaseRecord]
    location: Location
    failure: MigrationFailed | None = None
    code: str = ""

    @property
    def migrated(self) -> bool:
        """True when every phase ran and the location moved."""
        return self.failure is None


def failure_code(cause: BaseException) -> str:
    """The precise code of a failed migration's cause (a ProtocolError's code, STALE_EPOCH,
    POLICY_DENIED or INTERNAL)."""
    if isinstance(cause, ProtocolError):
        return str(cause.code)
    if isinstance(cause, StaleEpoch):
        return STALE_EPOCH
    if isinstance(cause, PolicyDenied):
        return POLICY_DENIED
    return INTERNAL


def migrate_service(core: SmfCore, ports: MigrationPorts, *, service_id: str, user_id: str,
                    device_id: str, user_capability: bytes, device_capability: bytes,
                    destination: str, request_id: str = "", order: str = "",
                    audited: AuditVerdict | None = None,
                    audited_target: AuditedTarget | None = None,
                    on_phase: PhaseObserver | None = None) -> MigrationOutcome:
    """Migrate Service: check the order (`parse_order`), the caller's capabilities and the
    request (refusals raise), then run the migration while holding the service's slot. An
    empty ``destination`` is chosen by Algorithm 2 (`SmfCore.place`); a "placement" record
    first in the phases says which cloud and why the others were ignored. ``audited``: the
    region / any-edge audit that chose ``destination`` (`migrate_to_target`) stands as the
    policy_audit phase. ``on_phase``: each phase's record as soon as its outcome is known
    (`MigrationPlan.run`); the outcome's records are the same, in the same order."""
    phase_order = parse_order(order)
    service, user, device, source, dest, loc = core.authorise_migration(
        service_id, user_id, device_id, user_capability, device_capability, destination)
    with core.migration_slot(service.global_id):
        state = MigrationState(
            migration_id=f"mig-{secrets.token_hex(8)}", service=service, source=source,
            destination=dest, user=user, device=device, epoch=loc.epoch, request_id=request_id,
            order=phase_order,
        )
        if audited is not None:
            state.extras["audit_verdict"] = audited
            state.extras["audit_target"] = str(audited_target or "target")
        if not destination:
            with core._lock:
                placed = core.placements.pop(service.global_id, None)
            if placed is not None:
                state.extras["placement"] = placed.detail()
        return run_migration(core, ports, state, on_phase)


@dataclass(frozen=True)
class TargetedOutcome:
    """A region / any-edge Migrate Service: the audit's tries and, when one edge permitted,
    the migration to it (None when none did)."""

    target: AuditedTarget
    verdict: AuditVerdict
    outcome: MigrationOutcome | None
    location: Location

    @property
    def migrated(self) -> bool:
        """True when an edge permitted and the service now runs there."""
        return self.outcome is not None and self.outcome.migrated


def migrate_to_target(core: SmfCore, ports: MigrationPorts, *, target: AuditedTarget,
                      service_id: str, user_id: str, device_id: str, user_capability: bytes,
                      device_capability: bytes, request_id: str = "",
                      order: str = "", on_phase: PhaseObserver | None = None) -> TargetedOutcome:
    """Migrate Service to a region or any edge (seed 002 cases 2-3): check the caller, ask the
    audit agent for the order of tries (`AuditHook.choose`), and migrate to the first edge it
    permits (`migrate_service`, whose policy_audit phase is that decision). No edge permits:
    nothing moves and the answer carries the tries with the reason of each deny. ``on_phase``
    as in `migrate_service` (no call when nothing moves)."""
    parse_order(order)
    if ports.audit is None:
        raise NotConfigured("a region / any-edge migration needs the SMF's audit configured")
    service, _, _ = core.authorise_caller(service_id, user_id, device_id, user_capability,
                                          device_capability)
    loc = core.location(service.global_id)
    verdict = ports.audit.choose(service.name, loc.server, target, request_id)
    if not verdict.permit or not verdict.chosen_edge:
        return TargetedOutcome(target, verdict, None, loc)
    if service.server(verdict.chosen_edge) is None:
        raise NotFound(f"the audit chose {verdict.chosen_edge!r} ({tries_text(verdict)}), "
                       f"which is not a server of {service_id}")
    out = migrate_service(core, ports, service_id=service_id, user_id=user_id,
                          device_id=device_id, user_capability=user_capability,
                          device_capability=device_capability,
                          destination=verdict.chosen_edge, request_id=request_id, order=order,
                          audited=verdict, audited_target=target, on_phase=on_phase)
    return TargetedOutcome(target, verdict, out, out.location)


def run_migration(core: SmfCore, ports: MigrationPorts, state: MigrationState,
                  on_phase: PhaseObserver | None = None) -> MigrationOutcome:
    """Build and run the plan for `state` (reporting each record to ``on_phase`` as its outcome
    is known); record the outcome in the migration history."""
    started = time.time()
    plan = build_plan(core, ports, state)
    try:
        records = plan.run(state, on_phase)
    except MigrationFailed as failed:
        code = failure_code(failed.cause)
        core.db.record_migration(state.migration_id, state.service.global_id,
                                 state.source.name, state.destination.name, started,
                                 f"failed:{failed.phase}:{code}", state.epoch, failed.records,
                                 state.order)
        return MigrationOutcome(state, failed.records, core.location(state.service.global_id),
                                failure=failed, code=code)
    assert state.new_location is not None
    core.db.record_migration(state.migration_id, state.service.global_id, state.source.name,
                             state.destination.name, started, "ok", state.new_location.epoch,
                             records, state.order)
    return MigrationOutcome(state, records, state.new_location)
