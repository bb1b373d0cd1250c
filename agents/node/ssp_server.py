"""SspServerService: the node agent's Chosen Server role of SSP over gRPC.

The node agent hosts it on every edge host, next to the RASP endpoint and with the same
identity::

    core = SspServerCore(identity, smf=smf_public, store=store, secret=tag_key,
                         ip="10.10.0.12", port=50070, handler=serve_request)
    add_ssp_server(agent_server, core)

The server is the CA of its own SESSION capabilities and of the timed SERV TIME CAP proxies
(sealed scheme, tag key generated into the data dir at first start by `setup_ssp_server`).
Revocations (used timed capabilities, ended sessions) and the replay cache persist in SQLite;
provisioned SERV CAPs persist too. Sessions in progress (session keys) live in memory only: a
restart ends them, and CAP SESS of a forgotten session is refused (WRONG_SESSION / REVOKED).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from pydantic import BaseModel, ConfigDict, Field

from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as pb
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as pb_grpc
from agents.common.config import AgentConfig
from agents.common.convert import identity_to_pb
from agents.common.errors import AgentConfigError
from agents.common.keys import load_or_create_identity, load_or_create_secret, read_public_identity
from agents.common.server import AgentServer
from agents.common.status import protocol_errors
from agents.common.store import (
    Migration,
    ReplayCache,
    SessionBound,
    SqliteRevocationStore,
    Store,
    TableFull,
    dump,
)
from agents.node.policy import SSP_SERVER_POLICY
from agents.security.capability import (
    CapType,
    SealedCapability,
    SealedCapabilityAuthority,
    decode_capability,
)
from agents.security.crypto import Identity, PublicIdentity
from agents.security.envelope import parse_envelope
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.ssp import PROTOCOL, SspServer

SERVICE_NAME = "edgeferry.smf.v1.SspServerService"
_COMPONENT = "edgeferry.ssp.server"
_MIGRATIONS: list[Migration] = [
    "CREATE TABLE provisioned (service_id TEXT PRIMARY KEY, capability BLOB NOT NULL);",
]

Handler = Callable[[bytes], bytes]


def digest_handler(details: bytes) -> bytes:
    """Default service: answer each request with the SHA-256 of its details (lets a client
    check that the request arrived intact)."""
    return hashlib.sha256(details).digest()


class SspServerCore:
    """One host's Chosen Server role."""

    def __init__(self, identity: Identity, *, smf: PublicIdentity, store: Store, secret: bytes,
                 ip: str, port: int, handler: Handler = digest_handler,
                 clock: Callable[[], float] = time.time, session_capacity: int = 10_000,
                 session_ttl_s: float = 3600.0) -> None:
        self.identity = identity
        self.session_bound = SessionBound(capacity=session_capacity, ttl_s=session_ttl_s,
                                          clock=clock)
        self.store = store
        store.migrate(_COMPONENT, _MIGRATIONS)
        self.revocations = SqliteRevocationStore(store, "ssp-server-capabilities")
        self.authority = SealedCapabilityAuthority(
            identity.name, secret, store=self.revocations, master_types=[CapType.SESSION],
            clock=clock,
        )
        self.replay = ReplayCache(store, "ssp-server", clock=clock)
        self.server = SspServer(identity, smf=smf, authority=self.authority, ip=ip, port=port,
                                handler=handler, replay=self.replay, clock=clock)
        for row in store.query("SELECT * FROM provisioned"):
            self.server.provision(row["service_id"],
                                  SealedCapability.from_bytes(bytes(row["capability"])))
        self._lock = threading.Lock()

    @property
    def public(self) -> PublicIdentity:
        return self.identity.public

    def set_address(self, ip: str, port: int) -> None:
        """Where applications reach this server (step 5's IP Server / Port Server); call after
        the agent server has bound its port when it listens on port 0."""
        self.server.ip, self.server.port = ip, port

    def provision(self, service_id: str, capability: bytes) -> None:
        cap = decode_capability(capability, "SERV CAP")
        if not service_id:
            raise ProtocolError(ErrorCode.MALFORMED, "service id is empty")
        if cap.cap.cap_type != CapType.SERVICE or not cap.cap.is_master:
            raise ProtocolError(ErrorCode.NOT_AUTHORISED, "SERV CAP must be a SERVICE master")
        with self._lock:
            self.store.execute(
                "INSERT INTO provisioned VALUES (?, ?) ON CONFLICT(service_id) DO UPDATE SET "
                "capability = excluded.capability", (service_id, cap.to_bytes()),
            )
            self.server.provision(service_id, cap)

    def deliver(self, message: bytes) -> tuple[bytes | None, float]:
        """Step 4, 7, 9 or 11 in; step 5, 8, 10 (or nothing after 11) out."""
        t0 = time.perf_counter()
        env = parse_envelope(message)
        h = env.header
        with self._lock:
            if h.protocol != PROTOCOL:
                raise ProtocolError(ErrorCode.MALFORMED, f"not a {PROTOCOL} message")
            if h.sender == self.identity.name:
                raise ProtocolError(ErrorCode.REFLECTED, "message claims to come from us")
            if h.receiver != self.identity.name:
                raise ProtocolError(ErrorCode.WRONG_RECIPIENT,
                                    f"message is addressed to {h.receiver!r}")
            if self.replay.seen(env.digest()):
                raise ProtocolError(ErrorCode.REPLAY, "message was already accepted")
            if h.session_id not in self.server.sessions:
                try:
                    self.session_bound.make_room(self.server.sessions)
                except TableFull as err:
                    raise ProtocolError(ErrorCode.LIMIT_REACHED, str(err)) from None
            reply = self.server.handle(env)
        return (None if reply is None else reply.to_bytes()), time.perf_counter() - t0

    def snapshot(self) -> object:
        with self._lock:
            return (sorted(self.server.provisioned.items()),
                    sorted(self.server.sessions.items()), dump(self.store))


class SspServerServicer(pb_grpc.SspServerServiceServicer):
    """SspServerService over an SspServerCore (who may call what: agents/node/policy.py)."""

    def __init__(self, core: SspServerCore) -> None:
        self.core = core

    def Provision(self, request: pb.ProvisionRequest,
                  context: grpc.ServicerContext) -> pb.ProvisionResponse:
        with protocol_errors(context):
            self.core.provision(request.service_id, request.service_capability)
        return pb.ProvisionResponse()

    def GetIdentity(self, request: pb.ServerIdentityRequest,
                    context: grpc.ServicerContext) -> pb.ServerIdentityResponse:
        return pb.ServerIdentityResponse(
            identity=identity_to_pb(self.core.public, pb.PublicIdentity))

    def Deliver(self, request: pb.ServerDeliverRequest,
                context: grpc.ServicerContext) -> pb.ServerDeliverResponse:
        with protocol_errors(context):
            reply, seconds = self.core.deliver(request.message)
        return pb.ServerDeliverResponse(reply=reply or b"", handle_seconds=seconds)


def add_ssp_server(server: AgentServer, core: SspServerCore) -> SspServerServicer:
    servicer = SspServerServicer(core)
    server.add(pb_grpc.add_SspServerServiceServicer_to_server, servicer, SERVICE_NAME,
               policy=SSP_SERVER_POLICY)
    return servicer


class SspServerSettings(BaseModel):
    """``settings.ssp_server`` of an agent hosting the Chosen Server role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Name of this server (default: the agent's name; share it with the RASP endpoint).
    name: str | None = None
    #: The SMF's public identity file (written by the SMF agent as keys/smf.pub).
    smf_identity: Path
    #: Address clients reach this endpoint at (default: the agent's listen address).
    advertise_ip: str | None = None
    advertise_port: int | None = Field(default=None, ge=1, le=65535)
    #: SSP sessions kept at most (a new one beyond is refused LIMIT_REACHED)
    session_capacity: int = Field(default=10_000, ge=1, le=1_000_000)
    #: seconds an SSP session lives (above the 120 s freshness window of the replay cache)
    session_ttl_s: float = Field(default=3600.0, ge=300)


def setup_ssp_server(server: AgentServer, config: AgentConfig,
                     settings: SspServerSettings | None = None, *,
                     handler: Handler = digest_handler) -> SspServerCore:
    """Build an SspServerCore from `config` and register it (identity shared with the RASP
    endpoint: <data_dir>/keys/rasp-endpoint.key)."""
    if settings is None:
        raw = config.settings.get("ssp_server")
        if raw is None:
            raise AgentConfigError(f"settings.ssp_server is missing in {config.source}")
        settings = SspServerSettings.model_validate(raw)
    data = config.resolved_data_dir
    identity = load_or_create_identity(data / "keys" / "rasp-endpoint.key",
                                       settings.name or config.name)
    store = Store.open(data / "ssp-server.sqlite3")
    server.on_stop(store.close)
    core = SspServerCore(
        identity, smf=read_public_identity(settings.smf_identity), store=store,
        secret=load_or_create_secret(data / "keys" / "ssp-server-capability.key"),
        ip=settings.advertise_ip or config.listen_host,
        port=settings.advertise_port or config.listen_port, handler=handler,
        session_capacity=settings.session_capacity, session_ttl_s=settings.session_ttl_s,
    )
    add_ssp_server(server, core)
    return core
