"""The UI server's `Backend` over gRPC + mTLS: the audit agent (and the SMF for migrations),
called as role ``ui`` with the UI's own certificate.

Owners are the UI's accounts: for every call the UI seals a short-lived owner token for
``ui:<account>`` with the owner-token key it shares with the audit agent (as the SMF and
``edgeferry audit token`` do), so the audit agent decides ownership itself.

Migrations go to the SMF's MigrateServiceStream with a named destination, a region or any
edge (the SMF asks the audit agent for the order of tries and reports each; each phase is
reported as it ends, so the live status page shows it at once). The SMF identifies a
service by its id and the caller's USER/DEV capabilities, which the UI cannot make up: the
operator binds a container name to them in ``settings.smf.services`` (see `agent.UiSettings`).
A container without a binding is audited but not moved, and the UI says so (for a region or
any edge with the audit agent's tries, as the SMF would have asked for them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from agents.audit.client import AuditClient, AuditRpcError
from agents.audit.convert import seal_owner_token
from agents.security.errors import ProtocolError
from agents.ui.portal import (
    BackendError,
    CheckView,
    ContainerView,
    DecisionView,
    EdgeView,
    LogView,
    MigrationResult,
    Phase,
    PhaseCallback,
    Try,
)

if TYPE_CHECKING:
    from agents.smf.client import PhaseTiming

TOKEN_TTL_S = 120.0


def owner_id(account: str) -> str:
    """The audit agent's owner id of a UI account."""
    return f"ui:{account}"


@dataclass(frozen=True)
class SmfBinding:
    """How the SMF knows one container: its service id and the caller's capabilities."""

    service_id: str
    user_id: str
    device_id: str
    user_cap: bytes
    device_cap: bytes


class GrpcBackend:
    """`agents.ui.portal.Backend` over the audit agent's and the SMF's clients."""

    def __init__(self, audit: AuditClient, owner_key: bytes, *, smf: object | None = None,
                 bindings: Mapping[str, SmfBinding] | None = None) -> None:
        self.audit = audit
        self.owner_key = owner_key
        self.smf = smf  # agents.smf.client.SmfClient (imported lazily: it pulls the SSP stack)
        self.bindings = dict(bindings or {})

    def _token(self, owner: str) -> bytes:
        return seal_owner_token(self.owner_key, owner_id(owner), TOKEN_TTL_S)

    @staticmethod
    def _raise(err: AuditRpcError) -> BackendError:
        return BackendError(err.code.name, err.message)

    def register_edge(self, owner: str, name: str, attributes: Mapping[str, str], *,
                      region: str, address: str) -> str:
        try:
            return self.audit.register_edge(self._token(owner), name, attributes, region=region,
                                            address=address)
        except AuditRpcError as err:
            raise self._raise(err) from None

    def rotate_share_key(self, owner: str, edge: str) -> str:
        try:
            return self.audit.rotate_share_key(self._token(owner), edge)
        except AuditRpcError as err:
            raise self._raise(err) from None

    def redeem_share_key(self, owner: str, key: str) -> str:
        try:
            return self.audit.redeem_share_key(self._token(owner), key)
        except AuditRpcError as err:
            raise self._raise(err) from None

    def list_edges(self, owner: str) -> list[EdgeView]:
        try:
            items = self.audit.list_edges(self._token(owner))
        except AuditRpcError as err:
            raise self._raise(err) from None
        return [EdgeView(i.edge.name, i.edge.region, i.edge.address, dict(i.edge.attributes),
                         i.owned, "",
                         {"cpu_percent": i.state.cpu_percent,
                          "memory_percent": i.state.memory_percent, "alive": i.state.alive,
                          "measured_at": i.state.measured_at_ms / 1000}
                         if i.HasField("state") else None) for i in items]

    def register_container(self, owner: str, name: str, requirements: Mapping[str, str], *,
                           location: str) -> ContainerView:
        try:
            reqs = self.audit.register_container(self._token(owner), name, requirements,
                                                 location=location)
        except AuditRpcError as err:
            raise self._raise(err) from None
        return ContainerView(name, location, reqs)

    def get_container(self, owner: str, name: str) -> ContainerView:
        try:
            spec = self.audit.get_container(self._token(owner), name)
        except AuditRpcError as err:
            raise self._raise(err) from None
        return ContainerView(spec.name, spec.location, dict(spec.requirements))

    def evaluate(self, owner: str, container: str, edge: str) -> DecisionView:
        try:
            v = self.audit.evaluate(self._token(owner), container, edge=edge)
        except AuditRpcError as err:
            raise self._raise(err) from None
        checks = v.tries[0].checks if v.tries else ()
        return DecisionView(container, edge, v.permit, tuple(
            CheckView(c.element, c.edge_element, c.required, c.actual, c.constrained, c.held,
                      c.note) for c in checks), v.reasons, v.audit_seconds, v.log_seq)

    def read_log(self, owner: str, start: int, limit: int) -> LogView:
        try:
            page = self.audit.read_log(self._token(owner), start=start, limit=limit)
        except AuditRpcError as err:
            raise self._raise(err) from None
        return LogView(page.ok, page.total, page.problem, tuple(
            {"seq": e.seq, "ts": e.ts_ms / 1000, "kind": e.kind, "mac": e.mac,
             "entry": json.loads(e.entry_json)} for e in page.entries), page.next_seq)

    def migrate(self, owner: str, container: str, edge: str,
                on_phase: PhaseCallback | None = None, *, region: str = "",
                any_edge: bool = False) -> MigrationResult:
        """MigrateService over the SMF's stream to ``edge``, or with ``edge`` "" to the first
        permitted edge of ``region`` / anywhere: each phase goes to ``on_phase`` as it ends."""
        binding = self.bindings.get(container)
        if self.smf is None or binding is None:
            if region or any_edge:
                return self._audit_target(owner, container, region)
            raise BackendError("FAILED_PRECONDITION",
                               f"audit permits {edge}, but container {container!r} has no SMF "
                               "binding (settings.smf.services of the UI server): not moved")
        from agents.smf.client import SmfClient

        assert isinstance(self.smf, SmfClient)
        try:
            report = self.smf.migrate(binding.service_id, binding.user_id, binding.device_id,
                                      binding.user_cap, binding.device_cap, edge,
                                      request_id=f"ui-{owner}", region=region,
                                      any_edge=any_edge,
                                      on_phase=lambda p: on_phase(_phase(p)) if on_phase
                                      else None)
        except ProtocolError as err:
            raise BackendError("FAILED_PRECONDITION", str(err)) from None
        except grpc.RpcError as err:
            code = err.code().name if hasattr(err, "code") else "UNAVAILABLE"
            details = err.details() if hasattr(err, "details") else None
            raise BackendError(code, details or str(err)) from None
        return MigrationResult(report.migrated, report.location,
                               tuple(_phase(p) for p in report.phases), report.error_message,
                               tuple(Try(e, permit, reasons)
                                     for e, permit, reasons in report.tries))

    def _audit_target(self, owner: str, container: str, region: str) -> MigrationResult:
        """A region / any-edge migration of a container without an SMF binding: the audit
        agent's tries (as the SMF would ask for them), nothing moved."""
        try:
            v = self.audit.evaluate(self._token(owner), container, region=region or None)
        except AuditRpcError as err:
            raise self._raise(err) from None
        tries = tuple(Try(t.edge, t.permit, tuple(f"{c.element}: {c.note}"[:300]
                                                  for c in t.failures)) for t in v.tries)
        audit = Phase("policy_audit", v.audit_seconds, "ok" if v.permit else "rejected",
                      "; ".join(v.reasons)[:500])
        where = f"in region {region}" if region else "anywhere"
        error = (f"audit permits {v.chosen_edge} (first permitted edge {where}), but container "
                 f"{container!r} has no SMF binding (settings.smf.services of the UI server): "
                 "not moved" if v.permit else f"DENY: no edge {where} permits")
        return MigrationResult(False, "", (audit,), error, tries)


def _phase(p: PhaseTiming) -> Phase:
    """The UI's view of one SMF phase."""
    return Phase(p.phase, p.wall_seconds, p.outcome, p.detail)


def read_binding(service_id: str, user_id: str, device_id: str, user_cap_file: Path,
                 device_cap_file: Path) -> SmfBinding:
    """An SMF binding with its capabilities read from files."""
    return SmfBinding(service_id, user_id, device_id, Path(user_cap_file).read_bytes(),
                      Path(device_cap_file).read_bytes())
