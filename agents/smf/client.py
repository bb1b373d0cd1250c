"""Clients of the SMF and of SSP chosen servers, for the CLI, applications, tests, benchmarks.

    smf = SmfClient(channel)
    user_id, user_cap = smf.register_user("Ada", "Lovelace", holder=app_identity.public,
                                          role="driver", rank=3)
    dev_id, _, dev_cap = smf.register_device("phone", "Ada", "Lovelace",
                                             holder=app_identity.public)
    service_id, serv_cap = register_service_as_cms(smf, cms_identity, "nms", "1", servers, ...)
    with ApplicationSession(app_identity, smf, user_cap, dev_cap, channel_for) as session:
        session.open("nms", "1")                     # SSP stages 2-3
        result = session.request(b"read block 7")    # stage 4 (any number of times)
    # leaving the block ends the session (stage 5): the server revokes CAP SESS
    report = smf.migrate(service_id, user_id, dev_id, user_cap, dev_cap, "edge2")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as pb
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as pb_grpc
from agents.common.convert import identity_from_pb, identity_to_pb, resources_to_pb
from agents.common.status import PROTOCOL_ERROR_KEY, call, remote_error
from agents.node.client import SspServerClient
from agents.security.capability import SealedCapability
from agents.security.crypto import Identity, PublicIdentity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources
from agents.security.ssp import ServerInfo, SspApplication, SspCms
from agents.security.stores import InMemoryReplayCache, ReplayCache

DEFAULT_TIMEOUT_S = 30.0
OUTCOME_NAMES = {
    common_pb2.PHASE_OUTCOME_OK: "ok", common_pb2.PHASE_OUTCOME_FAILED: "failed",
    common_pb2.PHASE_OUTCOME_SKIPPED: "skipped", common_pb2.PHASE_OUTCOME_REJECTED: "rejected",
}


@dataclass(frozen=True)
class PhaseTiming:
    phase: str
    wall_seconds: float
    bytes_moved: int
    outcome: str
    detail: str


@dataclass(frozen=True)
class MigrationReport:
    """The answer to Migrate Service."""

    migrated: bool
    location: str
    epoch: int
    rasp_session_id: bytes
    phases: tuple[PhaseTiming, ...]
    error_code: str | None  # precise code (e.g. "REPLAY", "STALE_EPOCH") when not migrated
    error_message: str
    round_trip_seconds: float
    order: str = ""  # the phase order the SMF ran ("diff" or "paper")
    #: region / any-edge: the audit's tries in order, (edge, permit, reasons of a deny)
    tries: tuple[tuple[str, bool, tuple[str, ...]], ...] = ()
    audit_seed: int = 0  # region / any-edge: the seed of the order of tries
    audit_seconds: float = 0.0  # region / any-edge: the decision inside the audit agent


def phases_from_pb(items: Sequence[common_pb2.PhaseTiming]) -> tuple[PhaseTiming, ...]:
    return tuple(PhaseTiming(p.phase, p.wall_seconds, p.bytes_moved,
                             OUTCOME_NAMES.get(p.outcome, "unspecified"), p.detail)
                 for p in items)


class SmfClient:
    """Typed calls to the SMF agent."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.channel = channel
        self.stub = pb_grpc.SmfServiceStub(channel)
        self.timeout = timeout

    def _call(self, name: str, request: Any) -> Any:
        return call(getattr(self.stub, name), request, rpc=f"smf.{name}", timeout=self.timeout)

    def identity(self) -> PublicIdentity:
        return identity_from_pb(self._call("GetSmfIdentity",
                                           pb.GetSmfIdentityRequest()).identity)

    def register_cms(self, public: PublicIdentity) -> None:
        self._call("RegisterCms", pb.RegisterCmsRequest(
            identity=identity_to_pb(public, pb.PublicIdentity)))

    def register_service(self, message: bytes, *, description: str = "", local_id: str = "",
                         port: int = 0, transport: str = "tcp",
                         requirement: Resources | None = None,
                         image_ref: str = "") -> tuple[bytes, str]:
        resp = self._call("RegisterService", pb.RegisterServiceRequest(
            message=message, description=description, local_id=local_id, port=port,
            transport=transport, requirement=resources_to_pb(requirement or Resources()),
            image_ref=image_ref))
        return bytes(resp.reply), str(resp.global_id)

    def register_user(self, first_name: str, surname: str, *, holder: PublicIdentity,
                      role: str = "", rank: int = 0, specialisation: str = ""
                      ) -> tuple[str, SealedCapability]:
        """Register User; USER CAP is bound to the application key `holder`."""
        resp = self._call("RegisterUser", pb.RegisterUserRequest(
            first_name=first_name, surname=surname, role=role, rank=rank,
            specialisation=specialisation, holder=identity_to_pb(holder, pb.PublicIdentity)))
        return str(resp.global_id), SealedCapability.from_bytes(bytes(resp.capability))

    def register_device(self, name: str, owner_first_name: str, owner_surname: str, *,
                        holder: PublicIdentity, local_id: str = "", owner_user_id: str = ""
                        ) -> tuple[str, str, SealedCapability]:
        """Register Device; DEV CAP names its owner and is bound to the key `holder`."""
        resp = self._call("RegisterDevice", pb.RegisterDeviceRequest(
            name=name, owner_first_name=owner_first_name, owner_surname=owner_surname,
            local_id=local_id, owner_user_id=owner_user_id,
            holder=identity_to_pb(holder, pb.PublicIdentity)))
        return (str(resp.global_id), str(resp.local_id),
                SealedCapability.from_bytes(bytes(resp.capability)))

    def reissue_capability(self, kind: str, global_id: str, *,
                           holder: PublicIdentity | None = None) -> SealedCapability:
        """A new USER CAP (`kind` "user") or DEV CAP ("device"), bound to `holder` or to the
        same key as before; the old one is revoked."""
        request = pb.ReissueCapabilityRequest(kind=_KINDS[kind], global_id=global_id)
        if holder is not None:
            request.holder.CopyFrom(identity_to_pb(holder, pb.PublicIdentity))
        resp = self._call("ReissueCapability", request)
        return SealedCapability.from_bytes(bytes(resp.capability))

    def revoke_capability(self, kind: str, global_id: str) -> None:
        """Revoke the current USER CAP ("user") or DEV CAP ("device") of `global_id`."""
        self._call("RevokeCapability", pb.RevokeCapabilityRequest(kind=_KINDS[kind],
                                                                  global_id=global_id))

    def add_server(self, service_id: str, public: PublicIdentity, ipv4: str, port: int, *,
                   server_global_id: str = "", max_load: int = 0
                   ) -> tuple[str, SealedCapability]:
        resp = self._call("AddServer", pb.AddServerRequest(
            service_id=service_id, server_global_id=server_global_id,
            identity=identity_to_pb(public, pb.PublicIdentity), ipv4=ipv4, port=port,
            max_load=max_load))
        return str(resp.service_id), SealedCapability.from_bytes(bytes(resp.service_capability))

    def request_service(self, message: bytes) -> tuple[bytes, str, dict[str, float]]:
        resp = self._call("RequestService", pb.RequestServiceRequest(message=message))
        return (bytes(resp.reply), str(resp.server_address),
                {t.phase: t.wall_seconds for t in resp.timings})

    def migrate(self, service_id: str, user_id: str, device_id: str,
                user_cap: SealedCapability | bytes, device_cap: SealedCapability | bytes,
                destination: str, *, request_id: str = "", order: str = "",
                region: str = "", any_edge: bool = False,
                audit_seed: int | None = None,
                on_phase: Callable[[PhaseTiming], None] | None = None) -> MigrationReport:
        """Migrate Service in phase `order` ("" or "diff": diff-first, the default; "paper":
        the paper's order). Refusals before anything ran (an unknown order included) raise
        RemoteProtocolError (or grpc.RpcError); a migration that started and failed returns
        migrated=False. ``region`` / ``any_edge`` (with ``destination`` ""): the audit agent
        orders the tries (seeded by ``audit_seed``) and the first edge it permits is the
        destination; the report lists the tries (none permits: migrated=False,
        error_code POLICY_DENIED).

        ``on_phase``: called with each phase as soon as the SMF reports it ended
        (MigrateServiceStream, in the caller's thread), before this returns the same report;
        without it the unary MigrateService answers once at the end."""
        request = pb.MigrateServiceRequest(
            service_id=service_id, user_id=user_id, device_id=device_id,
            user_capability=_cap_bytes(user_cap), device_capability=_cap_bytes(device_cap),
            destination=destination, request_id=request_id, order=order,
            target_region=region, any_edge=any_edge)
        if audit_seed is not None:
            request.audit_seed = audit_seed
        t0 = time.perf_counter()
        rpc = "smf.MigrateService" if on_phase is None else "smf.MigrateServiceStream"
        try:
            if on_phase is None:
                resp, rpc_call = self.stub.MigrateService.with_call(request,
                                                                    timeout=self.timeout)
            else:
                resp, rpc_call = self._stream(request, on_phase)
        except grpc.RpcError as err:
            remote = remote_error(err, rpc)
            if remote is None:
                raise
            raise remote from None
        code = next((str(v) for k, v in rpc_call.trailing_metadata() or ()
                     if k == PROTOCOL_ERROR_KEY), None)
        return MigrationReport(
            migrated=resp.migrated, location=resp.location, epoch=resp.epoch,
            rasp_session_id=bytes(resp.rasp_session_id), phases=phases_from_pb(resp.phases),
            error_code=None if resp.migrated else code,
            error_message="" if resp.migrated else resp.error.message,
            round_trip_seconds=time.perf_counter() - t0, order=resp.order,
            tries=tuple((t.edge, t.permit, tuple(t.reasons)) for t in resp.tries),
            audit_seed=resp.audit_seed, audit_seconds=resp.audit_seconds)

    def _stream(self, request: pb.MigrateServiceRequest,
                on_phase: Callable[[PhaseTiming], None]) -> tuple[Any, Any]:
        """MigrateServiceStream: report each phase event, return (final response, the call)."""
        stream = self.stub.MigrateServiceStream(request, timeout=self.timeout)
        final: pb.MigrateServiceResponse | None = None
        try:
            for event in stream:
                if final is not None:
                    raise ProtocolError(ErrorCode.WRONG_STEP, "smf.MigrateServiceStream: an "
                                        "event after the final response")
                if event.HasField("phase"):
                    on_phase(phases_from_pb([event.phase])[0])
                elif event.HasField("result"):
                    final = event.result
        except BaseException:
            stream.cancel()  # our callback raised (or we were interrupted): stop listening
            raise
        if final is None:
            raise ProtocolError(ErrorCode.WRONG_STEP,
                                "smf.MigrateServiceStream ended without a response")
        return final, stream

    def service(self, service_id: str) -> pb.ServiceInfo:
        resp: pb.ServiceInfo = self._call("GetService", pb.GetServiceRequest(service_id=service_id))
        return resp

    def services(self) -> list[pb.ServiceInfo]:
        return list(self._call("ListServices", pb.ListRequest()).services)

    def advertisements(self) -> pb.ListAdvertisementsResponse:
        """The fresh advertisements the SMF holds (Algorithm 2's candidates) and its TTL."""
        resp: pb.ListAdvertisementsResponse = self._call("ListAdvertisements", pb.ListRequest())
        return resp

    def users(self) -> list[pb.UserInfo]:
        return list(self._call("ListUsers", pb.ListRequest()).users)

    def devices(self) -> list[pb.DeviceInfo]:
        return list(self._call("ListDevices", pb.ListRequest()).devices)


_KINDS = {"user": pb.CAPABILITY_KIND_USER, "device": pb.CAPABILITY_KIND_DEVICE}


def _cap_bytes(cap: SealedCapability | bytes) -> bytes:
    return cap.to_bytes() if isinstance(cap, SealedCapability) else bytes(cap)


@dataclass(frozen=True)
class ServerSpec:
    """A server named in Register Service: identity and where its endpoint listens."""

    public: PublicIdentity
    ip: str
    port: int


def register_service_as_cms(
    smf: SmfClient, cms: Identity, smf_public: PublicIdentity, name: str, version: str,
    servers: Sequence[ServerSpec], *, provision: Callable[[ServerSpec], SspServerClient],
    replay: ReplayCache | None = None, **fields: Any,
) -> tuple[str, SealedCapability]:
    """SSP stage 1 as the CMS: register the service, check the SMF's answer, then hand SERV ID
    and SERV CAP to every server. Returns (SERV ID, SERV CAP)."""
    role = SspCms(cms, smf=smf_public, replay=replay or InMemoryReplayCache())
    m1 = role.register_service(name, version,
                               tuple(ServerInfo(s.public, s.ip, s.port) for s in servers))
    reply, _ = smf.register_service(m1.to_bytes(), **fields)
    role.handle(reply)
    registered = role.state.registered
    assert registered is not None
    for spec in servers:
        provision(spec).provision(registered.serv_id, registered.serv_cap)
    return registered.serv_id, registered.serv_cap


class ApplicationSession:
    """SSP stages 2-5 for an application, over gRPC (the SMF and the chosen server)."""

    def __init__(self, identity: Identity, smf: SmfClient, smf_public: PublicIdentity,
                 user_cap: SealedCapability, dev_cap: SealedCapability,
                 channel_for: Callable[[str], grpc.Channel], *,
                 replay: ReplayCache | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.app = SspApplication(identity, smf=smf_public, user_cap=user_cap, dev_cap=dev_cap,
                                  replay=replay or InMemoryReplayCache(), clock=clock)
        self.smf = smf
        self.channel_for = channel_for
        self.server: SspServerClient | None = None
        self.server_address = ""
        self.timings: dict[str, float] = {}

    def open(self, name: str, version: str, ip_client: str = "127.0.0.1") -> None:
        """Stages 2-3: ask the SMF for a server (steps 3-6), start the session (7-8)."""
        t0 = time.perf_counter()
        m3 = self.app.request_service(name, version, ip_client)
        reply, address, _ = self.smf.request_service(m3.to_bytes())
        m7 = self.app.handle(reply)
        assert m7 is not None
        self.timings["stage2"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        self.server_address = address
        self.server = SspServerClient(self.channel_for(address))
        m8, _ = self.server.deliver(m7.to_bytes())
        self.app.handle(m8)
        self.timings["stage3"] = time.perf_counter() - t1

    def request(self, details: bytes) -> bytes:
        """Stage 4: one service request under the session key."""
        if self.server is None:
            raise ProtocolError(ErrorCode.WRONG_STEP, "the session is not open")
        m10, _ = self.server.deliver(self.app.request(details).to_bytes())
        self.app.handle(m10)
        result = self.app.state.last_result
        assert result is not None
        return result

    def close(self) -> None:
        """Stage 5: end the session; the server revokes CAP SESS."""
        if self.server is not None and self.app.established:
            self.server.deliver(self.app.end().to_bytes())

    def __enter__(self) -> ApplicationSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
