"""AuditClient: the audit agent's API for the SMF (MigrateService), the CLI and benchmarks.

    with AuditClient.connect("10.10.0.5:50061", ca, cert, key) as audit:
        verdict = audit.evaluate(owner_token, "App1", edge="Edge3")
        if not verdict.permit:
            raise MigrationDenied("; ".join(verdict.reasons))   # nothing moves
        phases.append(("policy_audit", verdict.audit_seconds))

A deny is a normal answer (``verdict.permit is False``). Refusals (bad token, unknown container
or edge, invalid policy, not the owner, audit log unavailable) raise :class:`AuditRpcError`
with the gRPC status code and the agent's one-line message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from agents._proto.edgeferry.audit.v1 import audit_service_pb2 as pb
from agents._proto.edgeferry.audit.v1 import audit_service_pb2_grpc as pb_grpc
from agents.common.client import secure_channel
from agents.common.tls import PemSource

DEFAULT_TIMEOUT_S = 10.0


class AuditRpcError(Exception):
    """The audit agent refused or failed a call: ``code`` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str, rpc: str) -> None:
        super().__init__(f"audit {rpc}: {message} ({code.name})")
        self.code = code
        self.message = message
        self.rpc = rpc


@dataclass(frozen=True)
class CheckRow:
    element: str
    edge_element: str
    required: str
    actual: str
    constrained: bool
    held: bool
    note: str


@dataclass(frozen=True)
class EdgeVerdict:
    edge: str
    permit: bool
    checks: tuple[CheckRow, ...]

    @property
    def failures(self) -> tuple[CheckRow, ...]:
        return tuple(c for c in self.checks if not c.held)


@dataclass(frozen=True)
class AuditVerdict:
    """The answer to an Evaluate call."""

    permit: bool
    chosen_edge: str | None
    tries: tuple[EdgeVerdict, ...]
    reasons: tuple[str, ...]
    seed: int
    candidates: tuple[str, ...]
    request_id: str
    log_seq: int
    audit_seconds: float  # decision time inside the agent (the trial's "policy_audit" phase)
    round_trip_seconds: float  # Evaluate as the caller saw it (mTLS, logging, fsync included)


def verdict_from_pb(resp: pb.EvaluateResponse, round_trip: float) -> AuditVerdict:
    tries = tuple(EdgeVerdict(t.edge, t.permit, tuple(
        CheckRow(c.element, c.edge_element, c.required, c.actual, c.constrained, c.held, c.note)
        for c in t.checks)) for t in resp.tries)
    return AuditVerdict(permit=resp.permit, chosen_edge=resp.chosen_edge or None, tries=tries,
                        reasons=tuple(resp.reasons), seed=resp.seed,
                        candidates=tuple(resp.candidates), request_id=resp.request_id,
                        log_seq=resp.log_seq, audit_seconds=resp.timing.wall_seconds,
                        round_trip_seconds=round_trip)


class AuditClient:
    """Typed calls to the audit agent over an (mTLS) channel."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.channel = channel
        self.timeout = timeout
        self.stub = pb_grpc.AuditServiceStub(channel)

    @classmethod
    def connect(cls, target: str, ca: PemSource, cert: PemSource, key: PemSource, *,
                server_name: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
                ) -> AuditClient:
        return cls(secure_channel(target, ca, cert, key, server_name=server_name),
                   timeout=timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _rpc(self, name: str, request: Any) -> Any:
        try:
            return getattr(self.stub, name)(request, timeout=self.timeout)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
            details = err.details() if hasattr(err, "details") else str(err)
            raise AuditRpcError(code, details or "no details", name) from None

    # -- the audit ------------------------------------------------------------------------------
    def evaluate(self, owner_token: bytes, container: str, *, edge: str | None = None,
                 region: str | None = None, seed: int | None = None,
                 request_id: str = "") -> AuditVerdict:
        """Audit a migration: to ``edge``, to a ``region``, or (neither) to any edge."""
        if edge and region:
            raise ValueError("give edge or region, not both")
        if edge:
            mode, target = pb.TARGET_MODE_EDGE, edge
        elif region:
            mode, target = pb.TARGET_MODE_REGION, region
        else:
            mode, target = pb.TARGET_MODE_ANY, ""
        request = pb.EvaluateRequest(owner_token=owner_token, container=container, mode=mode,
                                     target=target, request_id=request_id)
        if seed is not None:
            request.seed = seed
        t0 = time.perf_counter()
        resp = self._rpc("Evaluate", request)
        return verdict_from_pb(resp, time.perf_counter() - t0)

    # -- registry -------------------------------------------------------------------------------
    def register_edge(self, owner_token: bytes, name: str, attributes: Mapping[str, object], *,
                      region: str = "", address: str = "") -> str:
        """Register an edge; return its share key."""
        resp = self._rpc("RegisterEdge", pb.RegisterEdgeRequest(
            owner_token=owner_token, edge=_edge(name, attributes, region, address)))
        return str(resp.share_key)

    def update_edge(self, owner_token: bytes, name: str, attributes: Mapping[str, object], *,
                    region: str = "", address: str = "") -> dict[str, str]:
        resp = self._rpc("UpdateEdge", pb.UpdateEdgeRequest(
            owner_token=owner_token, edge=_edge(name, attributes, region, address)))
        return dict(resp.edge.attributes)

    def delete_edge(self, owner_token: bytes, name: str) -> None:
        self._rpc("DeleteEdge", pb.DeleteEdgeRequest(owner_token=owner_token, name=name))

    def rotate_share_key(self, owner_token: bytes, name: str) -> str:
        resp = self._rpc("RotateShareKey",
                         pb.RotateShareKeyRequest(owner_token=owner_token, name=name))
        return str(resp.share_key)

    def redeem_share_key(self, owner_token: bytes, share_key: str) -> str:
        resp = self._rpc("RedeemShareKey",
                         pb.RedeemShareKeyRequest(owner_token=owner_token, share_key=share_key))
        return str(resp.edge)

    def list_edges(self, owner_token: bytes) -> list[pb.EdgeListing]:
        return list(self._rpc("ListEdges", pb.ListEdgesRequest(owner_token=owner_token)).edges)

    def register_container(self, owner_token: bytes, name: str,
                           requirements: Mapping[str, object], *, location: str = ""
                           ) -> dict[str, str]:
        resp = self._rpc("RegisterContainerPolicy", pb.RegisterContainerPolicyRequest(
            owner_token=owner_token, container=_container(name, requirements, location)))
        return dict(resp.container.requirements)

    def update_container(self, owner_token: bytes, name: str,
                         requirements: Mapping[str, object], *, location: str = ""
                         ) -> dict[str, str]:
        resp = self._rpc("UpdateContainerPolicy", pb.UpdateContainerPolicyRequest(
            owner_token=owner_token, container=_container(name, requirements, location)))
        return dict(resp.container.requirements)

    def delete_container(self, owner_token: bytes, name: str) -> None:
        self._rpc("DeleteContainerPolicy",
                  pb.DeleteContainerPolicyRequest(owner_token=owner_token, name=name))

    def get_container(self, owner_token: bytes, name: str) -> pb.ContainerPolicySpec:
        resp: pb.GetContainerPolicyResponse = self._rpc(
            "GetContainerPolicy", pb.GetContainerPolicyRequest(owner_token=owner_token, name=name))
        return resp.container

    def set_container_location(self, owner_token: bytes, name: str, edge: str) -> None:
        """Tell the audit agent a migration completed (call after the container runs there)."""
        self._rpc("SetContainerLocation", pb.SetContainerLocationRequest(
            owner_token=owner_token, name=name, edge=edge))

    def report_edge_state(self, edge: str, cpu_percent: float, memory_percent: float, *,
                          alive: bool = True, measured_at: float | None = None) -> None:
        state = pb.EdgeState(cpu_percent=cpu_percent, memory_percent=memory_percent,
                             alive=alive,
                             measured_at_ms=int(measured_at * 1000) if measured_at else 0)
        self._rpc("ReportEdgeState", pb.ReportEdgeStateRequest(edge=edge, state=state))

    def verify_log(self) -> tuple[bool, int, str]:
        """(ok, entries, problem) of the agent's audit log."""
        resp = self._rpc("VerifyAuditLog", pb.VerifyAuditLogRequest())
        return bool(resp.ok), int(resp.entries), str(resp.problem)

    def read_log(self, owner_token: bytes, *, start: int = 1, limit: int = 50) -> LogPage:
        """The owner's verified audit-log entries from ``start`` (at most ``limit``)."""
        resp = self._rpc("ReadAuditLog", pb.ReadAuditLogRequest(
            owner_token=owner_token, start_seq=start, limit=limit))
        return LogPage(bool(resp.ok), int(resp.total), str(resp.problem), tuple(resp.entries),
                       int(resp.next_seq))


@dataclass(frozen=True)
class LogPage:
    """One page of an owner's audit-log entries and the verification of the whole chain."""

    ok: bool
    total: int
    problem: str
    entries: tuple[pb.AuditLogEntry, ...]
    next_seq: int


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


def _edge(name: str, attributes: Mapping[str, object], region: str, address: str) -> pb.EdgeSpec:
    return pb.EdgeSpec(name=name, region=region, address=address,
                       attributes={k: _text(v) for k, v in attributes.items()})


def _container(name: str, requirements: Mapping[str, object], location: str
               ) -> pb.ContainerPolicySpec:
    return pb.ContainerPolicySpec(name=name, location=location,
                                  requirements={k: _text(v) for k, v in requirements.items()})
