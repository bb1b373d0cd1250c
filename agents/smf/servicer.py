"""gRPC side of the SMF: protobuf <-> SmfCore and Migrate Service (agents/smf/migration.py),
errors -> status codes + error codes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import grpc

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as pb
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as pb_grpc
from agents.common.client import peer_identity
from agents.common.convert import (
    identity_from_pb,
    identity_to_pb,
    resources_from_pb,
    resources_to_pb,
)
from agents.common.logging import get_logger
from agents.common.status import (
    COMMON_ERROR_KEY,
    PROTOCOL_ERROR_KEY,
    StatusTable,
    call,
    common_code,
    mapped_errors,
)
from agents.security.advertisement import Amounts
from agents.security.crypto import PublicIdentity
from agents.smf.core import SmfCore
from agents.smf.domain import (
    AlreadyExists,
    InvalidRequest,
    MigrationInProgress,
    NotConfigured,
    NotFound,
    PhaseObserver,
    PhaseOutcome,
    PhaseRecord,
    PolicyDenied,
    ServerEntry,
    ServiceEntry,
    SmfError,
    StaleEpoch,
    TooMany,
    Unavailable,
)
from agents.smf.migration import (
    POLICY_DENIED,
    STALE_EPOCH,
    AuditedTarget,
    MigrationOutcome,
    MigrationPorts,
    TargetedOutcome,
    migrate_service,
    migrate_to_target,
    tries_text,
)
from agents.smf.progress import PhaseStream

SERVICE_NAME = "edgeferry.smf.v1.SmfService"

_STATUS: StatusTable = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (StaleEpoch, grpc.StatusCode.ABORTED),
    (MigrationInProgress, grpc.StatusCode.ABORTED),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (PolicyDenied, grpc.StatusCode.PERMISSION_DENIED),
    (TooMany, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotConfigured, grpc.StatusCode.FAILED_PRECONDITION),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)

_OUTCOME = {
    PhaseOutcome.OK: common_pb2.PHASE_OUTCOME_OK,
    PhaseOutcome.FAILED: common_pb2.PHASE_OUTCOME_FAILED,
    PhaseOutcome.SKIPPED: common_pb2.PHASE_OUTCOME_SKIPPED,
    PhaseOutcome.REJECTED: common_pb2.PHASE_OUTCOME_REJECTED,
}

#: server_stub(server) -> SspServerService stub (over the SMF's mTLS channel to it)
ServerStubFactory = Callable[[ServerEntry], pb_grpc.SspServerServiceStub]


def _errors(context: grpc.ServicerContext) -> AbstractContextManager[None]:
    """SMF errors by `_STATUS`, protocol refusals by their code (agents.common.status)."""
    return mapped_errors(context, SmfError, _STATUS)


def phases_to_pb(records: list[PhaseRecord]) -> list[common_pb2.PhaseTiming]:
    return [
        common_pb2.PhaseTiming(phase=r.phase, wall_seconds=r.wall_seconds,
                               bytes_moved=r.bytes_moved, outcome=_OUTCOME[r.outcome],
                               detail=r.detail)
        for r in records
    ]


def service_to_pb(core: SmfCore, s: ServiceEntry) -> pb.ServiceInfo:
    loc = core.db.location(s.global_id)
    return pb.ServiceInfo(
        global_id=s.global_id, local_id=s.local_id, name=s.name, version=s.version,
        description=s.description, port=s.port, transport=s.transport,
        requirement=resources_to_pb(s.requirement), image_ref=s.image_ref,
        servers=[pb.ServerInfo(name=x.name, global_id=x.global_id, ipv4=x.ipv4, port=x.port,
                               max_load=x.max_load, fingerprint=x.public.fingerprint())
                 for x in s.servers],
        location=loc.server if loc else "", epoch=loc.epoch if loc else 0,
        capability_text=s.capability.cap.text(),
    )


#: the domain's own failure codes (agents.smf.migration) -> common ErrorCode; a protocol
#: refusal's code maps through `common_code`, anything else is ERROR_CODE_INTERNAL
_MIGRATION_CODES: dict[str, common_pb2.ErrorCode.ValueType] = {
    STALE_EPOCH: common_pb2.ERROR_CODE_STALE_NONCE,
    POLICY_DENIED: common_pb2.ERROR_CODE_POLICY_DENIED,
}


def common_error(code: str) -> common_pb2.ErrorCode.ValueType:
    """The common ErrorCode of a failed migration's precise code (`failure_code`)."""
    return _MIGRATION_CODES.get(code) or common_code(code)


class SmfServicer(pb_grpc.SmfServiceServicer):
    """SmfService over an SmfCore (who may call what: agents/smf/policy.py; the capabilities
    are checked in addition)."""

    def __init__(self, core: SmfCore, ports: MigrationPorts, server_stub: ServerStubFactory, *,
                 rpc_timeout_s: float = 10.0) -> None:
        self.core = core
        self.ports = ports
        self.server_stub = server_stub
        self.timeout = rpc_timeout_s
        self.log = get_logger("smf.servicer")

    # -- registrations -----------------------------------------------------------------------------

    def RegisterCms(self, request: pb.RegisterCmsRequest,
                    context: grpc.ServicerContext) -> pb.RegisterCmsResponse:
        with _errors(context):
            self.core.register_cms(identity_from_pb(request.identity))
        return pb.RegisterCmsResponse()

    def GetSmfIdentity(self, request: pb.GetSmfIdentityRequest,
                       context: grpc.ServicerContext) -> pb.GetSmfIdentityResponse:
        return pb.GetSmfIdentityResponse(
            identity=identity_to_pb(self.core.public, pb.PublicIdentity))

    def PublishResources(self, request: pb.PublishResourcesRequest,
                         context: grpc.ServicerContext) -> pb.PublishResourcesResponse:
        with _errors(context):
            advert = self.core.adverts.accept(request.advertisement.body,
                                              request.advertisement.signature)
        return pb.PublishResourcesResponse(seq=advert.seq)

    def ListAdvertisements(self, request: pb.ListRequest,
                           context: grpc.ServicerContext) -> pb.ListAdvertisementsResponse:
        def amounts(a: Amounts) -> common_pb2.Resources:
            return common_pb2.Resources(cpu_millicores=a.cpu_millicores,
                                        memory_bytes=a.memory_bytes,
                                        storage_bytes=a.storage_bytes,
                                        network_bps=a.network_bps, gpu=a.gpu)

        return pb.ListAdvertisementsResponse(ttl_s=self.core.adverts.ttl_s, advertisements=[
            pb.AdvertisementInfo(cloud=a.cloud, seq=a.seq, age_s=age, maximum=amounts(a.maximum),
                                 free=amounts(a.free))
            for a, age in self.core.adverts.fresh()])

    def RegisterService(self, request: pb.RegisterServiceRequest,
                        context: grpc.ServicerContext) -> pb.RegisterServiceResponse:
        with _errors(context):
            reply, service = self.core.register_service(
                request.message, description=request.description, local_id=request.local_id,
                port=request.port, transport=request.transport or "tcp",
                requirement=resources_from_pb(request.requirement, request=True),
                image_ref=request.image_ref,
            )
        return pb.RegisterServiceResponse(reply=reply, global_id=service.global_id)

    def RegisterUser(self, request: pb.RegisterUserRequest,
                     context: grpc.ServicerContext) -> pb.RegisterUserResponse:
        with _errors(context):
            user = self.core.register_user(
                request.first_name, request.surname, holder=_holder(request),
                role=request.role, rank=request.rank, specialisation=request.specialisation)
        return pb.RegisterUserResponse(global_id=user.global_id,
                                       capability=user.capability.to_bytes())

    def RegisterDevice(self, request: pb.RegisterDeviceRequest,
                       context: grpc.ServicerContext) -> pb.RegisterDeviceResponse:
        with _errors(context):
            device = self.core.register_device(
                request.name, request.owner_first_name, request.owner_surname,
                holder=_holder(request), local_id=request.local_id,
                owner_user_id=request.owner_user_id)
        return pb.RegisterDeviceResponse(global_id=device.global_id, local_id=device.local_id,
                                         capability=device.capability.to_bytes())

    def ReissueCapability(self, request: pb.ReissueCapabilityRequest,
                          context: grpc.ServicerContext) -> pb.ReissueCapabilityResponse:
        with _errors(context):
            holder = identity_from_pb(request.holder) if request.HasField("holder") else None
            if request.kind == pb.CAPABILITY_KIND_USER:
                cap = self.core.reissue_user_capability(request.global_id, holder).capability
            elif request.kind == pb.CAPABILITY_KIND_DEVICE:
                cap = self.core.reissue_device_capability(request.global_id, holder).capability
            else:
                raise InvalidRequest("kind must be USER or DEVICE")
        return pb.ReissueCapabilityResponse(capability=cap.to_bytes(),
                                            expires_at_ms=cap.expires_at_ms or 0)

    def RevokeCapability(self, request: pb.RevokeCapabilityRequest,
                         context: grpc.ServicerContext) -> pb.RevokeCapabilityResponse:
        with _errors(context):
            if request.kind == pb.CAPABILITY_KIND_USER:
                self.core.revoke_user_capability(request.global_id)
            elif request.kind == pb.CAPABILITY_KIND_DEVICE:
                self.core.revoke_device_capability(request.global_id)
            else:
                raise InvalidRequest("kind must be USER or DEVICE")
        return pb.RevokeCapabilityResponse()

    def AddServer(self, request: pb.AddServerRequest,
                  context: grpc.ServicerContext) -> pb.AddServerResponse:
        with _errors(context):
            public = identity_from_pb(request.identity)
            service = self.core.add_server(request.service_id, ServerEntry(
                public.name, request.server_global_id, public, request.ipv4, request.port,
                request.max_load))
        return pb.AddServerResponse(service_id=service.global_id,
                                    service_capability=service.capability.to_bytes())

    # -- Request Service ---------------------------------------------------------------------------

    def _server_port(self, server: ServerEntry, message: bytes) -> bytes:
        stub = self.server_stub(server)
        resp: Any = call(stub.Deliver, pb.ServerDeliverRequest(message=message),
                         rpc=f"server {server.name} Deliver", timeout=self.timeout)
        return bytes(resp.reply)

    def RequestService(self, request: pb.RequestServiceRequest,
                       context: grpc.ServicerContext) -> pb.RequestServiceResponse:
        with _errors(context):
            try:
                reply, server, timings = self.core.request_service(request.message,
                                                                   self._server_port)
            except grpc.RpcError as err:
                context.abort(grpc.StatusCode.UNAVAILABLE,
                              f"chosen server unreachable: {err.code().name}")
        return pb.RequestServiceResponse(
            reply=reply, server_address=server.address,
            timings=[common_pb2.PhaseTiming(phase=k, wall_seconds=v,
                                            outcome=common_pb2.PHASE_OUTCOME_OK)
                     for k, v in timings.items()])

    # -- Migrate Service ---------------------------------------------------------------------------

    def MigrateService(self, request: pb.MigrateServiceRequest,
                       context: grpc.ServicerContext) -> pb.MigrateServiceResponse:
        caller = peer_identity(context)
        with _errors(context):
            ran = self._migrate(request)
        return self._respond(ran, caller, context)

    def MigrateServiceStream(self, request: pb.MigrateServiceRequest,
                             context: grpc.ServicerContext
                             ) -> Iterator[pb.MigrateServiceEvent]:
        """MigrateService with live progress: the same checks and migration (`_migrate`) in a
        worker thread (agents/smf/progress.py), each phase sent as soon as its outcome is
        known, the response MigrateService would give last (its phases equal the phase events,
        in order; refusals end the stream with MigrateService's status instead).

        A client that cancels (or a deadline) does not stop the migration: like a unary
        MigrateService whose caller went away, it runs to its end in the worker -- completes
        or fails, recorded in the SMF's location record and migration history -- and only the
        remaining events are dropped. The worker thread ends with the migration; the bounded
        queue (`progress.MAX_QUEUED`) is dropped with the call."""
        caller = peer_identity(context)
        run: PhaseStream[_Ran] = PhaseStream(
            lambda on_phase: self._migrate(request, on_phase),
            name=f"migrate-{request.request_id or request.service_id}"[:48])
        context.add_callback(run.close)
        run.start()
        sent: list[common_pb2.PhaseTiming] = []
        try:
            for record in run.records(alive=context.is_active):
                sent.extend(phases_to_pb([record]))
                yield pb.MigrateServiceEvent(phase=sent[-1])
            if not run.finished:  # the caller went away; the migration goes on
                return
            with _errors(context):
                ran = run.result()
            resp = self._respond(ran, caller, context)
            # a phase the response adds (a region / any-edge denial's policy_audit) goes first
            for extra in resp.phases[len(sent):]:
                yield pb.MigrateServiceEvent(phase=extra)
            yield pb.MigrateServiceEvent(result=resp)
        finally:
            run.close()

    def _migrate(self, request: pb.MigrateServiceRequest,
                 on_phase: PhaseObserver | None = None) -> _Ran:
        """Check the request and run the migration (domain calls only: refusals raise
        SmfError; a failed phase is an outcome). ``on_phase``: each phase as it ends."""
        if not (request.target_region or request.any_edge):
            return migrate_service(
                self.core, self.ports, service_id=request.service_id, user_id=request.user_id,
                device_id=request.device_id, user_capability=request.user_capability,
                device_capability=request.device_capability, destination=request.destination,
                request_id=request.request_id, order=request.order, on_phase=on_phase)
        # Seed 002 cases 2-3: the audit orders the region's (or every) edge; the first it
        # permits is the destination. The answer lists the tries with the decision on each.
        if request.destination or (request.target_region and request.any_edge):
            raise InvalidRequest("give one of destination, target_region, any_edge")
        if len(request.target_region) > 128:
            raise InvalidRequest("target_region is longer than 128 characters")
        seed = request.audit_seed if request.HasField("audit_seed") else None
        target = AuditedTarget(request.target_region, seed)
        t0 = time.perf_counter()
        out = migrate_to_target(
            self.core, self.ports, target=target, service_id=request.service_id,
            user_id=request.user_id, device_id=request.device_id,
            user_capability=request.user_capability,
            device_capability=request.device_capability, request_id=request.request_id,
            order=request.order, on_phase=on_phase)
        return _Targeted(out, time.perf_counter() - t0)

    def _respond(self, ran: _Ran, caller: str,
                 context: grpc.ServicerContext) -> pb.MigrateServiceResponse:
        """The MigrateServiceResponse of a migration that ran (and its trailing metadata)."""
        if isinstance(ran, _Targeted):
            return self._targeted_response(ran.out, caller, context, ran.elapsed)
        return self._migrate_response(ran, caller, context)

    def _targeted_response(self, out: TargetedOutcome, caller: str,
                           context: grpc.ServicerContext,
                           elapsed: float) -> pb.MigrateServiceResponse:
        v = out.verdict
        if out.outcome is not None:
            resp = self._migrate_response(out.outcome, caller, context)
        else:
            self.log.info("migration_denied", caller=caller, target=str(out.target),
                          tries=len(v.tries))
            context.set_trailing_metadata((
                (PROTOCOL_ERROR_KEY, POLICY_DENIED),
                (COMMON_ERROR_KEY, common_pb2.ErrorCode.Name(common_error(POLICY_DENIED)))))
            detail = f"{out.target}: {tries_text(v)}"[:500]
            resp = pb.MigrateServiceResponse(
                migrated=False, location=out.location.server, epoch=out.location.epoch,
                phases=[common_pb2.PhaseTiming(
                    phase="policy_audit", wall_seconds=v.audit_seconds,
                    outcome=common_pb2.PHASE_OUTCOME_REJECTED, detail=detail)],
                error=common_pb2.Error(
                    code=common_error(POLICY_DENIED),
                    message=f"{POLICY_DENIED}: no edge in {out.target} permits: "
                            f"{'; '.join(v.reasons)}"[:500]))
        resp.tries.extend(pb.DestinationTry(
            edge=t.edge, permit=t.permit,
            reasons=[f"{c.element}: {c.note}"[:300] for c in t.failures]) for t in v.tries)
        resp.audit_seed = v.seed
        resp.audit_seconds = v.audit_seconds
        resp.audit_round_trip_seconds = v.round_trip_seconds
        return resp

    def _migrate_response(self, out: MigrationOutcome, caller: str,
                          context: grpc.ServicerContext) -> pb.MigrateServiceResponse:
        state = out.state
        if out.failure is not None:
            common = common_error(out.code)
            self.log.info("migration_failed", migration=state.migration_id, caller=caller,
                          phase=out.failure.phase, code=out.code, order=state.order)
            context.set_trailing_metadata(((PROTOCOL_ERROR_KEY, out.code),
                                           (COMMON_ERROR_KEY, common_pb2.ErrorCode.Name(common))))
            return pb.MigrateServiceResponse(
                migrated=False, location=out.location.server, epoch=out.location.epoch,
                rasp_session_id=state.rasp_session_id, phases=phases_to_pb(out.records),
                error=common_pb2.Error(code=common,
                                       message=f"{out.code}: {out.failure}"[:500]),
                order=state.order)
        self.log.info("migrated", migration=state.migration_id, caller=caller,
                      destination=state.destination.name, epoch=out.location.epoch,
                      order=state.order)
        return pb.MigrateServiceResponse(
            migrated=True, location=out.location.server, epoch=out.location.epoch,
            rasp_session_id=state.rasp_session_id, phases=phases_to_pb(out.records),
            order=state.order)

    # -- listings ----------------------------------------------------------------------------------

    def GetService(self, request: pb.GetServiceRequest,
                   context: grpc.ServicerContext) -> pb.ServiceInfo:
        with _errors(context):
            return service_to_pb(self.core, self.core.service(request.service_id))

    def ListServices(self, request: pb.ListRequest,
                     context: grpc.ServicerContext) -> pb.ListServicesResponse:
        return pb.ListServicesResponse(
            services=[service_to_pb(self.core, s) for s in self.core.db.services()])

    def ListUsers(self, request: pb.ListRequest,
                  context: grpc.ServicerContext) -> pb.ListUsersResponse:
        return pb.ListUsersResponse(users=[
            pb.UserInfo(global_id=u.global_id, first_name=u.first_name, surname=u.surname,
                        role=u.role, rank=u.rank, specialisation=u.specialisation,
                        capability_text=u.capability.cap.text())
            for u in self.core.db.users()])

    def ListDevices(self, request: pb.ListRequest,
                    context: grpc.ServicerContext) -> pb.ListDevicesResponse:
        return pb.ListDevicesResponse(devices=[
            pb.DeviceInfo(global_id=d.global_id, local_id=d.local_id, name=d.name,
                          owner_first_name=d.owner_first_name, owner_surname=d.owner_surname,
                          capability_text=d.capability.cap.text())
            for d in self.core.db.devices()])


@dataclass(frozen=True)
class _Targeted:
    """A region / any-edge migration and how long the SMF took over it (seconds)."""

    out: TargetedOutcome
    elapsed: float


#: what `SmfServicer._migrate` ran: a named-destination migration or a targeted one
_Ran = MigrationOutcome | _Targeted


def _holder(request: pb.RegisterUserRequest | pb.RegisterDeviceRequest) -> PublicIdentity:
    """The application key a USER CAP / DEV CAP is bound to (required)."""
    if not request.HasField("holder"):
        raise InvalidRequest("the application key (holder) the capability is bound to is missing")
    return identity_from_pb(request.holder)


def add_to_server(servicer: SmfServicer, server: grpc.Server) -> None:
    pb_grpc.add_SmfServiceServicer_to_server(servicer, server)
