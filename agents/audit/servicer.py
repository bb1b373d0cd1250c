"""gRPC side of the audit agent: protobuf <-> AuditService, domain errors -> status codes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc

from agents._proto.edgeferry.audit.v1 import audit_service_pb2 as pb
from agents._proto.edgeferry.audit.v1 import audit_service_pb2_grpc as pb_grpc
from agents._proto.edgeferry.common.v1 import common_pb2
from agents.audit.auditlog import AuditLogError
from agents.audit.destination import MigrationDecision, Target
from agents.audit.domain import (
    AlreadyExists,
    AuditError,
    ContainerPolicy,
    EdgeAttributes,
    EdgeState,
    InvalidOwnerToken,
    InvalidTarget,
    NotFound,
    NotOwner,
    PolicyError,
    UnknownEdge,
    UnknownRegion,
)
from agents.audit.service import AuditService, ContainerLiveness, Evaluation
from agents.common.client import peer_identity
from agents.common.errors import NoPeerIdentity
from agents.common.logging import get_logger
from agents.common.status import StatusTable, abort, mapped_errors

SERVICE_NAME = "edgeferry.audit.v1.AuditService"
MAX_TOKEN_BYTES = 4096
MAX_LOG_PAGE = 200
T = TypeVar("T")

_STATUS: StatusTable = (
    (PolicyError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidOwnerToken, grpc.StatusCode.UNAUTHENTICATED),
    (NotOwner, grpc.StatusCode.PERMISSION_DENIED),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (UnknownEdge, grpc.StatusCode.NOT_FOUND),
    (UnknownRegion, grpc.StatusCode.NOT_FOUND),
    (InvalidTarget, grpc.StatusCode.FAILED_PRECONDITION),
)


def edge_to_pb(edge: EdgeAttributes) -> pb.EdgeSpec:
    return pb.EdgeSpec(name=edge.name, region=edge.region, address=edge.address,
                       attributes=edge.canonical())


def container_to_pb(policy: ContainerPolicy) -> pb.ContainerPolicySpec:
    return pb.ContainerPolicySpec(name=policy.name, location=policy.location,
                                  requirements=policy.canonical())


def state_to_pb(state: EdgeState) -> pb.EdgeState:
    return pb.EdgeState(cpu_percent=state.cpu_percent, memory_percent=state.memory_percent,
                        alive=state.alive, measured_at_ms=int(state.measured_at * 1000),
                        failure=state.failure)


def liveness_to_pb(live: ContainerLiveness) -> pb.ContainerLiveness:
    return pb.ContainerLiveness(alive=live.alive, state=live.state,
                                checked_at_ms=int(live.checked_at * 1000), detail=live.detail,
                                edge=live.edge)


def decision_to_pb(ev: Evaluation) -> pb.EvaluateResponse:
    md: MigrationDecision = ev.decision
    tries = [pb.EdgeDecision(edge=d.edge, permit=d.permit, checks=[
        pb.ElementCheck(element=c.element, edge_element=c.edge_element, required=c.required,
                        actual=c.actual, constrained=c.constrained, held=c.held, note=c.note)
        for c in d.checks]) for d in md.tries]
    outcome = common_pb2.PHASE_OUTCOME_OK if md.permit else common_pb2.PHASE_OUTCOME_REJECTED
    return pb.EvaluateResponse(
        permit=md.permit, chosen_edge=md.chosen or "", tries=tries, reasons=md.reasons(),
        seed=md.seed or 0, candidates=list(md.candidates), request_id=ev.request_id,
        log_seq=ev.log_seq,
        timing=common_pb2.PhaseTiming(phase="policy_audit", wall_seconds=ev.audit_seconds,
                                      outcome=outcome, detail="; ".join(md.reasons())[:500]))


def target_from_pb(mode: int, name: str) -> Target:
    if mode == pb.TARGET_MODE_EDGE and name:
        return Target.edge(name)
    if mode == pb.TARGET_MODE_REGION and name:
        return Target.region(name)
    if mode == pb.TARGET_MODE_ANY and not name:
        return Target.any()
    raise PolicyError("mode EDGE/REGION need a target name; mode ANY takes none")


class AuditServicer(pb_grpc.AuditServiceServicer):
    """Maps the AuditService API to :class:`AuditService` (who may call what:
    agents/audit/policy.py; owner tokens are checked in addition)."""

    def __init__(self, service: AuditService, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.clock = clock
        self.log = get_logger("audit.servicer")

    # -- plumbing -------------------------------------------------------------------------------
    def _caller(self, context: grpc.ServicerContext) -> str:
        try:
            caller = peer_identity(context)
        except NoPeerIdentity as err:
            abort(context, grpc.StatusCode.UNAUTHENTICATED, str(err))
        return caller

    @contextmanager
    def _errors(self, context: grpc.ServicerContext, rpc: str) -> Iterator[None]:
        try:
            with mapped_errors(context, AuditError, _STATUS):
                yield
        except AuditLogError as err:  # fail closed: nothing is answered without its record
            self.log.error("audit_log_failed", rpc=rpc, error=str(err))
            abort(context, grpc.StatusCode.INTERNAL, f"audit log unavailable: {err}")

    @staticmethod
    def _token(token: bytes, context: grpc.ServicerContext) -> bytes:
        if not token or len(token) > MAX_TOKEN_BYTES:
            abort(context, grpc.StatusCode.UNAUTHENTICATED, "owner_token is missing or too long")
        return token

    def _call(self, context: grpc.ServicerContext, rpc: str, fn: Callable[[str], T]) -> T:
        caller = self._caller(context)
        with self._errors(context, rpc):
            return fn(caller)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- edges ----------------------------------------------------------------------------------
    def RegisterEdge(self, request: pb.RegisterEdgeRequest,
                     context: grpc.ServicerContext) -> pb.RegisterEdgeResponse:
        e = request.edge
        def run(caller: str) -> pb.RegisterEdgeResponse:
            edge, key = self.service.register_edge(
                self._token(request.owner_token, context), e.name, dict(e.attributes),
                region=e.region, address=e.address, caller=caller)
            return pb.RegisterEdgeResponse(share_key=key, edge=edge_to_pb(edge))
        return self._call(context, "RegisterEdge", run)

    def UpdateEdge(self, request: pb.UpdateEdgeRequest,
                   context: grpc.ServicerContext) -> pb.UpdateEdgeResponse:
        e = request.edge
        return self._call(context, "UpdateEdge", lambda caller: pb.UpdateEdgeResponse(
            edge=edge_to_pb(self.service.update_edge(
                self._token(request.owner_token, context), e.name, dict(e.attributes),
                region=e.region, address=e.address, caller=caller))))

    def DeleteEdge(self, request: pb.DeleteEdgeRequest,
                   context: grpc.ServicerContext) -> pb.DeleteEdgeResponse:
        def run(caller: str) -> pb.DeleteEdgeResponse:
            self.service.delete_edge(self._token(request.owner_token, context), request.name,
                                     caller=caller)
            return pb.DeleteEdgeResponse()
        return self._call(context, "DeleteEdge", run)

    def RotateShareKey(self, request: pb.RotateShareKeyRequest,
                       context: grpc.ServicerContext) -> pb.RotateShareKeyResponse:
        return self._call(context, "RotateShareKey", lambda caller: pb.RotateShareKeyResponse(
            share_key=self.service.rotate_share_key(self._token(request.owner_token, context),
                                                    request.name, caller=caller)))

    def RedeemShareKey(self, request: pb.RedeemShareKeyRequest,
                       context: grpc.ServicerContext) -> pb.RedeemShareKeyResponse:
        return self._call(context, "RedeemShareKey", lambda caller: pb.RedeemShareKeyResponse(
            edge=self.service.redeem_share_key(self._token(request.owner_token, context),
                                               request.share_key, caller=caller)))

    def ListEdges(self, request: pb.ListEdgesRequest,
                  context: grpc.ServicerContext) -> pb.ListEdgesResponse:
        def run(caller: str) -> pb.ListEdgesResponse:
            token = self._token(request.owner_token, context)
            owner = self.service.owner_of(token)
            out = []
            for edge, edge_owner, state in self.service.list_edges(token):
                item = pb.EdgeListing(edge=edge_to_pb(edge), owned=edge_owner == owner)
                if state is not None:
                    item.state.CopyFrom(state_to_pb(state))
                out.append(item)
            return pb.ListEdgesResponse(edges=out)
        return self._call(context, "ListEdges", run)

    # -- containers -----------------------------------------------------------------------------
    def RegisterContainerPolicy(self, request: pb.RegisterContainerPolicyRequest,
                                context: grpc.ServicerContext
                                ) -> pb.RegisterContainerPolicyResponse:
        c = request.container
        return self._call(context, "RegisterContainerPolicy",
                          lambda caller: pb.RegisterContainerPolicyResponse(
                              container=container_to_pb(self.service.register_container(
                                  self._token(request.owner_token, context), c.name,
                                  dict(c.requirements), location=c.location, caller=caller))))

    def UpdateContainerPolicy(self, request: pb.UpdateContainerPolicyRequest,
                              context: grpc.ServicerContext) -> pb.UpdateContainerPolicyResponse:
        c = request.container
        return self._call(context, "UpdateContainerPolicy",
                          lambda caller: pb.UpdateContainerPolicyResponse(
                              container=container_to_pb(self.service.update_container(
                                  self._token(request.owner_token, context), c.name,
                                  dict(c.requirements), location=c.location, caller=caller))))

    def DeleteContainerPolicy(self, request: pb.DeleteContainerPolicyRequest,
                              context: grpc.ServicerContext) -> pb.DeleteContainerPolicyResponse:
        def run(caller: str) -> pb.DeleteContainerPolicyResponse:
            self.service.delete_container(self._token(request.owner_token, context),
                                          request.name, caller=caller)
            return pb.DeleteContainerPolicyResponse()
        return self._call(context, "DeleteContainerPolicy", run)

    def GetContainerPolicy(self, request: pb.GetContainerPolicyRequest,
                           context: grpc.ServicerContext) -> pb.GetContainerPolicyResponse:
        def run(caller: str) -> pb.GetContainerPolicyResponse:
            token = self._token(request.owner_token, context)
            resp = pb.GetContainerPolicyResponse(
                container=container_to_pb(self.service.get_container(token, request.name)))
            live = self.service.liveness(request.name)
            if live is not None:
                resp.liveness.CopyFrom(liveness_to_pb(live))
            return resp
        return self._call(context, "GetContainerPolicy", run)

    def SetContainerLocation(self, request: pb.SetContainerLocationRequest,
                             context: grpc.ServicerContext) -> pb.SetContainerLocationResponse:
        def run(caller: str) -> pb.SetContainerLocationResponse:
            self.service.set_container_location(self._token(request.owner_token, context),
                                                request.name, request.edge, caller=caller)
            return pb.SetContainerLocationResponse()
        return self._call(context, "SetContainerLocation", run)

    # -- monitoring -----------------------------------------------------------------------------
    def ReportEdgeState(self, request: pb.ReportEdgeStateRequest,
                        context: grpc.ServicerContext) -> pb.ReportEdgeStateResponse:
        def run(caller: str) -> pb.ReportEdgeStateResponse:
            s = request.state
            if not (0 <= s.cpu_percent <= 100 and 0 <= s.memory_percent <= 100):
                raise PolicyError("utilisation must be between 0 and 100 %")
            now = self.clock()
            at = s.measured_at_ms / 1000 if s.measured_at_ms else now
            if at > now + 60:
                raise PolicyError("measured_at_ms is in the future")
            self.service.record_state(request.edge, EdgeState(s.cpu_percent, s.memory_percent,
                                                              s.alive, at), source=caller)
            return pb.ReportEdgeStateResponse()
        return self._call(context, "ReportEdgeState", run)

    # -- the audit ------------------------------------------------------------------------------
    def Evaluate(self, request: pb.EvaluateRequest,
                 context: grpc.ServicerContext) -> pb.EvaluateResponse:
        def run(caller: str) -> pb.EvaluateResponse:
            target = target_from_pb(request.mode, request.target)
            seed = request.seed if request.HasField("seed") else None
            ev = self.service.evaluate(self._token(request.owner_token, context),
                                       request.container, target, seed=seed, caller=caller,
                                       request_id=request.request_id[:128])
            return decision_to_pb(ev)
        return self._call(context, "Evaluate", run)

    def VerifyAuditLog(self, request: pb.VerifyAuditLogRequest,
                       context: grpc.ServicerContext) -> pb.VerifyAuditLogResponse:
        def run(caller: str) -> pb.VerifyAuditLogResponse:
            result = self.service.log.verify()
            return pb.VerifyAuditLogResponse(ok=result.ok, entries=result.entries,
                                             problem=result.problem)
        return self._call(context, "VerifyAuditLog", run)

    def ReadAuditLog(self, request: pb.ReadAuditLogRequest,
                     context: grpc.ServicerContext) -> pb.ReadAuditLogResponse:
        def run(caller: str) -> pb.ReadAuditLogResponse:
            limit = request.limit or 50
            if limit > MAX_LOG_PAGE:
                raise PolicyError(f"limit must be at most {MAX_LOG_PAGE}")
            result, found, next_seq = self.service.read_log(
                self._token(request.owner_token, context), start=request.start_seq or 1,
                limit=limit)
            return pb.ReadAuditLogResponse(
                ok=result.ok, total=result.entries, problem=result.problem, next_seq=next_seq,
                entries=[pb.AuditLogEntry(
                    seq=e.seq, ts_ms=int(e.ts * 1000), kind=str(e.entry.get("kind", "")),
                    entry_json=json.dumps(e.entry, sort_keys=True), mac=e.mac) for e in found])
        return self._call(context, "ReadAuditLog", run)


def add_to_server(servicer: AuditServicer, server: Any) -> None:
    pb_grpc.add_AuditServiceServicer_to_server(servicer, server)
