"""SMF records, errors and the migration plan (no gRPC, no Docker).

A migration is a `MigrationPlan`: an ordered list of named phases, each timed with a monotonic
clock. The SMF builds it from the configured deployment (agents/smf/migration.py):

    policy_audit          data-audit decision (agents/audit)             when configured
    rasp_handshake        RASP steps 1-11 between source SA and destination CB
    ledger_write          ledger Algorithm 1 (agents/ledger)               when configured
    self_evaluation       ledger Algorithm 2 at the destination            when configured
    stop, commit, push,   the node agents' container phases                 when configured
    pull, run
    rasp_location_update  RASP step 12: the registry records the new location
    location_commit       the SMF's location record moves forward (epoch + 1)
    audit_location_update the audit agent learns the new location         with the audit
    source_cleanup        the source's stopped container is removed        with containers

A phase that raises ends the plan: it is recorded FAILED (REJECTED for a refusal by policy or
protocol) and every later phase SKIPPED; nothing after it runs, so the location stays put. The
plan's `on_failure` hooks then run (e.g. the container phases' abort: restart the stopped source
when no destination copy can be running) and their records are appended ("abort").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.common.compat import StrEnum
from agents.common.logging import get_logger
from agents.security.capability import SealedCapability
from agents.security.crypto import PublicIdentity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources
from agents.security.ssp import ServerInfo

#: phase_started / phase_ended (with `at`, the host clock) for every phase a plan runs: what a
#: fault test reads to confirm that a fault landed inside a phase
_log = get_logger("smf.plan")

# --- errors ---------------------------------------------------------------------------------


class SmfError(Exception):
    """A refusal that is not a protocol/capability error (those raise ProtocolError)."""


class NotFound(SmfError):
    """The referenced service, user, device or server does not exist."""


class AlreadyExists(SmfError):
    """The record exists already (or the service is already where it should move)."""


class StaleEpoch(SmfError):
    """A location update carried an epoch that is not the current one (fencing)."""


class MigrationInProgress(SmfError):
    """Another migration of the same service is running."""


class InvalidRequest(SmfError):
    """A field is missing or out of range."""


class TooMany(SmfError):
    """A bounded table is full (e.g. revoked capabilities that have not expired yet)."""


class PolicyDenied(SmfError):
    """A configured check (data audit, self-evaluation) refused the migration."""


class NotConfigured(SmfError):
    """The request needs a part this SMF is not configured with (e.g. the audit agent)."""


class Unavailable(SmfError):
    """An agent the request needs did not answer (e.g. the audit agent)."""


class MigrationFailed(SmfError):
    """A phase of a migration failed; `records` holds every phase's outcome."""

    def __init__(self, phase: str, cause: BaseException, records: list[PhaseRecord]) -> None:
        super().__init__(f"phase {phase} failed: {cause}")
        self.phase = phase
        self.cause = cause
        self.records = records


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerEntry:
    """A server of a service (Add Server): where its SSP and RASP endpoints listen."""

    name: str
    global_id: str
    public: PublicIdentity
    ipv4: str
    port: int
    max_load: int

    @property
    def address(self) -> str:
        """``ipv4:port`` of the server's RASP/SSP endpoint."""
        return f"{self.ipv4}:{self.port}"

    def ssp_info(self) -> ServerInfo:
        """The server as the SSP service record lists it (identity, address, port)."""
        return ServerInfo(self.public, self.ipv4, self.port)


@dataclass(frozen=True)
class ServiceEntry:
    """A registered service, its SERV CAP and its servers (in registration order)."""

    global_id: str
    name: str
    version: str
    local_id: str
    description: str
    port: int
    transport: str
    requirement: Resources
    image_ref: str
    capability: SealedCapability
    servers: tuple[ServerEntry, ...]

    def server(self, name: str) -> ServerEntry | None:
        """The server called `name`, or None when it does not serve this service."""
        return next((s for s in self.servers if s.name == name), None)


@dataclass(frozen=True)
class UserEntry:
    """A registered user and its USER CAP."""

    global_id: str
    first_name: str
    surname: str
    role: str
    rank: int
    specialisation: str
    capability: SealedCapability


@dataclass(frozen=True)
class DeviceEntry:
    """A registered device, its owner and its DEV CAP."""

    global_id: str
    local_id: str
    name: str
    owner_first_name: str
    owner_surname: str
    capability: SealedCapability


@dataclass(frozen=True)
class Location:
    """Where a service runs; `epoch` starts at 1 and only moves forward."""

    service_id: str
    server: str
    epoch: int


#: states of a container migration in the journal (agents/smf/container.py)
RUNNING, FAILED, ROLLED_BACK, COMMITTED = "running", "failed", "rolled_back", "committed"


@dataclass(frozen=True)
class JournalRow:
    """A service's current (or last) container migration, as the SMF's journal holds it."""

    service_id: str
    migration_id: str
    source: str
    destination: str
    location_epoch: int
    attempt: int
    state: str
    cleanup: dict[str, str]  # server -> workload whose stopped container is still there
    detail: str


# --- migration plan -------------------------------------------------------------------------


class PhaseOutcome(StrEnum):
    """How a phase ended (REJECTED: refused by policy or protocol)."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"


@dataclass
class PhaseRecord:
    """One phase as measured: monotonic wall time, bytes moved, outcome, detail, and when it
    started and ended on the host's clock (epoch seconds; 0.0 when it did not run), so a fault
    observed by another process of the host can be placed inside or outside the phase."""

    phase: str
    wall_seconds: float = 0.0
    bytes_moved: int = 0
    outcome: PhaseOutcome = PhaseOutcome.SKIPPED
    detail: str = ""
    started_at: float = 0.0
    ended_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (the migration history stores these)."""
        return {
            "phase": self.phase, "wall_seconds": self.wall_seconds,
            "bytes_moved": self.bytes_moved, "outcome": str(self.outcome), "detail": self.detail,
            "started_at": self.started_at, "ended_at": self.ended_at,
        }


@dataclass(frozen=True)
class PhaseResult:
    """What a phase may report besides its duration."""

    bytes_moved: int = 0
    detail: str = ""


#: phase orders of Migrate Service (agents/smf/migration.py): diff-first (the default) and the
#: paper's (stop first; kept for fidelity runs)
DIFF_ORDER, PAPER_ORDER, DIRECT_ORDER = "diff", "paper", "direct"
#: the orders whose downtime is the diff (the direct one moves it without the registry)
DIFF_FIRST = (DIFF_ORDER, DIRECT_ORDER)


def parse_order(text: str) -> str:
    """A request's phase order: "" or "diff" -> DIFF_ORDER, "paper" -> PAPER_ORDER, "direct"
    -> DIRECT_ORDER; anything else is refused (MALFORMED, which the SMF answers with
    INVALID_ARGUMENT)."""
    if text in ("", DIFF_ORDER):
        return DIFF_ORDER
    if text in (PAPER_ORDER, DIRECT_ORDER):
        return text
    raise ProtocolError(ErrorCode.MALFORMED,
                        f"unknown migration order {text[:40]!r}: use 'diff' (default), "
                        "'direct' or 'paper'")


@dataclass
class MigrationState:
    """What the phases share: the request, the parties and what earlier phases produced."""

    migration_id: str
    service: ServiceEntry
    source: ServerEntry
    destination: ServerEntry
    user: UserEntry
    device: DeviceEntry
    epoch: int
    request_id: str = ""
    rasp_session_id: bytes = b""
    new_location: Location | None = None
    order: str = DIFF_ORDER
    extras: dict[str, Any] = field(default_factory=dict)


PhaseFn = Callable[[MigrationState], PhaseResult | None]
#: on_record(record): a phase's record as soon as its outcome is known (`MigrationPlan.run`)
PhaseObserver = Callable[["PhaseRecord"], None]
#: on_failure(state, failed phase name, exception) -> extra records (compensation steps)
FailureHook = Callable[[MigrationState, str, BaseException], list["PhaseRecord"]]


@dataclass(frozen=True)
class Phase:
    """A named step of a migration plan."""

    name: str
    run: PhaseFn


class MigrationPlan:
    """Ordered, timed phases; hooks slot in with `insert_before` / `insert_after`."""

    def __init__(self, phases: list[Phase] | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 wall: Callable[[], float] = time.time) -> None:
        self.phases: list[Phase] = list(phases or [])
        self.on_failure: list[FailureHook] = []
        self._clock = clock
        self._wall = wall

    @property
    def names(self) -> list[str]:
        """The phases' names in order."""
        return [p.name for p in self.phases]

    def add(self, phase: Phase) -> MigrationPlan:
        """Append `phase`; return the plan."""
        self.phases.append(phase)
        return self

    def _index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no phase {name!r} in the plan") from None

    def insert_before(self, name: str, *phases: Phase) -> MigrationPlan:
        """Insert `phases` before the phase called `name` (KeyError if absent)."""
        i = self._index(name)
        self.phases[i:i] = phases
        return self

    def insert_after(self, name: str, *phases: Phase) -> MigrationPlan:
        """Insert `phases` after the phase called `name` (KeyError if absent)."""
        i = self._index(name) + 1
        self.phases[i:i] = phases
        return self

    def run(self, state: MigrationState,
            on_record: PhaseObserver | None = None) -> list[PhaseRecord]:
        """Run every phase in order; on the first failure raise MigrationFailed.

        ``on_record`` (optional) is called with each record as soon as its outcome is known,
        in the order of the returned (or MigrationFailed's) records: a phase when it ends; after
        a failure the phases that will not run (SKIPPED) right after the failed one, then each
        compensation record as its hook returns. It must not raise; an exception from it is
        logged and ignored (progress reporting never changes the migration)."""
        records = [PhaseRecord(p.name) for p in self.phases]
        migration = getattr(state, "migration_id", "")

        def report(*done: PhaseRecord) -> None:
            if on_record is None:
                return
            for rec in done:
                try:
                    on_record(rec)
                except Exception as exc:  # an observer never changes the migration
                    _log.warning("phase_observer_failed", migration=migration,
                                 phase=rec.phase, error=str(exc)[:200])
        for i, phase in enumerate(self.phases):
            rec = records[i]
            rec.started_at = self._wall()
            _log.info("phase_started", migration=migration, phase=phase.name,
                      at=rec.started_at)
            t0 = self._clock()
            try:
                result = phase.run(state) or PhaseResult()
            except Exception as exc:
                rec.wall_seconds = self._clock() - t0
                rec.ended_at = self._wall()
                _log.info("phase_ended", migration=migration, phase=phase.name,
                          at=rec.ended_at, outcome="failed")
                refused = isinstance(exc, ProtocolError | PolicyDenied | StaleEpoch)
                rec.outcome = PhaseOutcome.REJECTED if refused else PhaseOutcome.FAILED
                rec.detail = str(exc)[:500]
                report(*records[i:])  # the failed phase and those that will not run
                for hook in self.on_failure:
                    try:
                        extra = list(hook(state, phase.name, exc))
                    except Exception as hook_exc:  # a compensation step must not hide the cause
                        extra = [PhaseRecord("abort", outcome=PhaseOutcome.FAILED,
                                             detail=f"abort failed: {hook_exc}"[:500])]
                    records.extend(extra)
                    report(*extra)
                raise MigrationFailed(phase.name, exc, records) from exc
            rec.wall_seconds = self._clock() - t0
            rec.ended_at = self._wall()
            _log.info("phase_ended", migration=migration, phase=phase.name,
                      at=rec.ended_at, outcome="ok")
            rec.bytes_moved = result.bytes_moved
            rec.outcome = PhaseOutcome.OK
            rec.detail = result.detail
            report(rec)
        return records
