"""Wiring of the SMF agent: settings, identity and capability key (created at first start),
store, channels to the RAS, the edge hosts and (optionally) the audit and ledger agents.

Configuration (``settings`` of /etc/edgeferry/smf.yaml)::

    settings:
      name: smf                       # the SMF's principal name in SSP (issuer of capabilities)
      registry: 10.10.0.2:50052       # the RAS agent
      capability_ttl_s: 86400         # lifetime of USER CAP / DEV CAP (reissue to renew)
      max_revocations: 100000         # revoked, unexpired capabilities remembered at most
      audit:                          # optional: data-audit check before RASP
        address: 10.10.0.5:50061
        owner_token_file: /etc/edgeferry/smf-owner.token
      ledger:                         # optional: ledger write + destination self-evaluation
        address: 10.10.0.1:50061
        node_id: smf
        quorum: 0.9
      container:                      # optional: stop/commit/push/pull/run over NodeService
        proactive: false              # pre-pull base_image at the destination first
        rpc_timeout_s: 30
        transfer_timeout_s: 600
        node_addresses: {}            # server name -> node agent host:port (default: the
                                      # address given at Add Server, where RASP/SSP listen)
        workloads:
          nms:                        # service name -> how its container runs
            workload: nms
            repository: nms-migrated      # the source node agent prefixes its namespace
            container_port: 7070
            probe: tcp
            secrets:
              - {container_path: /run/secrets/nms.key, path: /etc/edgeferry/nms.key,
                 uid: 65534}
              - {container_path: /run/secrets/nms.crt, path: /etc/edgeferry/nms-tls.crt,
                 uid: 65534}          # the NMS TLS certificate and key (pki role)
              - {container_path: /run/secrets/nms-tls.key, path: /etc/edgeferry/nms-tls.key,
                 uid: 65534}

With ``container`` set, RASP step 10 carries the pushed image's digest and size, the
destination's pull is checked against it, and the location record moves only after the
destination's first response. Interrupted migrations are journalled (agents/smf/container.py,
MigrationJournal in agents/smf/store.py): a retry continues with the next attempt number (the
node agents' fencing epoch).

Keys: ``<data_dir>/keys/smf.key`` (protocol identity, 0600; public part ``smf.pub`` for the
edge hosts' configuration) and ``<data_dir>/keys/capability.key`` (the sealed-capability tag
key, 0600). Neither ever leaves the data directory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import grpc
from pydantic import BaseModel, ConfigDict, Field

from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as node_grpc
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as pb_grpc
from agents.audit.client import AuditClient
from agents.common.client import secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError, AgentStartError
from agents.common.keys import (
    load_or_create_identity,
    load_or_create_secret,
    load_or_create_signing_key,
)
from agents.common.server import AgentServer
from agents.common.store import Store
from agents.ledger.client import LedgerClient
from agents.node.client import EndpointClient, node_stub
from agents.ras.client import RasClient
from agents.security.secretfile import WatchedSecret
from agents.security.ssp import DEFAULT_MASTER_TTL_S
from agents.smf.container import (
    NodeContainerPhases,
    SecretSource,
    Timeouts,
    WorkloadTemplate,
)
from agents.smf.core import DEFAULT_MAX_REVOCATIONS, SmfCore
from agents.smf.domain import ServerEntry
from agents.smf.migration import AuditHook, LedgerHook, MigrationPorts
from agents.smf.policy import SMF_POLICY
from agents.smf.relay import RaspRelay, Tap
from agents.smf.servicer import SERVICE_NAME, SmfServicer, add_to_server
from agents.smf.store import MigrationJournal


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    owner_token_file: Path


class LedgerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    node_id: str = "smf"
    quorum: float = Field(default=0.9, gt=0, le=1)
    timeout_s: float = Field(default=10.0, gt=0)
    application_types: list[str] = Field(default_factory=list)


class SecretSetting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    container_path: str = Field(pattern=r"^/")
    path: Path
    uid: int = Field(default=65534, ge=0)


class WorkloadSetting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workload: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
    repository: str = Field(pattern=r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
    container_port: int = Field(ge=1, le=65535)
    host_port: int = Field(default=0, ge=0, le=65535)
    host_ip: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] = Field(default_factory=list)
    secrets: list[SecretSetting] = Field(default_factory=list)
    probe: str = Field(default="tcp", pattern=r"^(tcp|http)$")
    probe_path: str = "/"
    probe_timeout_s: float = Field(default=30.0, gt=0)
    stop_timeout_s: int = Field(default=10, ge=0, le=300)
    base_image: str = ""

    def template(self) -> WorkloadTemplate:
        return WorkloadTemplate(
            workload=self.workload, repository=self.repository,
            container_port=self.container_port, host_port=self.host_port, host_ip=self.host_ip,
            env=dict(self.env), command=tuple(self.command),
            secrets=tuple(SecretSource(s.container_path, s.path, s.uid) for s in self.secrets),
            probe=self.probe, probe_path=self.probe_path, probe_timeout_s=self.probe_timeout_s,
            stop_timeout_s=self.stop_timeout_s, base_image=self.base_image)


class ContainerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workloads: dict[str, WorkloadSetting]
    proactive: bool = False
    rpc_timeout_s: float = Field(default=30.0, gt=0)
    transfer_timeout_s: float = Field(default=600.0, gt=0)
    node_addresses: dict[str, str] = Field(default_factory=dict)


class SmfSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="smf", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    registry: str
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    #: SSP sessions the SMF keeps at most (a new one beyond is refused LIMIT_REACHED)
    session_capacity: int = Field(default=10_000, ge=1, le=1_000_000)
    #: seconds an SSP session lives (above the 120 s freshness window of the replay cache)
    session_ttl_s: float = Field(default=3600.0, ge=300)
    #: lifetime of user/device master capabilities (reissue before it runs out)
    capability_ttl_s: float = Field(default=DEFAULT_MASTER_TTL_S, gt=0, le=366 * 86400)
    #: revoked capability ids remembered at most (until their expiry)
    max_revocations: int = Field(default=DEFAULT_MAX_REVOCATIONS, gt=0, le=10_000_000)
    audit: AuditSettings | None = None
    ledger: LedgerSettings | None = None
    container: ContainerSettings | None = None


#: Edge hosts restart (crash, upgrade): retry connecting within seconds, not gRPC's 2 minutes.
RECONNECT_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 200),
                     ("grpc.min_reconnect_backoff_ms", 200),
                     ("grpc.max_reconnect_backoff_ms", 2000))


class ChannelPool:
    """One mTLS channel per address, made with the agent's own certificate."""

    def __init__(self, factory: Callable[[str], grpc.Channel]) -> None:
        self._factory = factory
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def get(self, address: str) -> grpc.Channel:
        with self._lock:
            if address not in self._channels:
                self._channels[address] = self._factory(address)
            return self._channels[address]

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


def container_phases(settings: ContainerSettings, pool: ChannelPool,
                     store: Store) -> NodeContainerPhases:
    def node(server: ServerEntry) -> node_grpc.NodeServiceStub:
        return node_stub(pool.get(settings.node_addresses.get(server.name, server.address)))

    return NodeContainerPhases(
        {name: w.template() for name, w in settings.workloads.items()}, node,
        MigrationJournal(store),
        timeouts=Timeouts(settings.rpc_timeout_s, settings.transfer_timeout_s),
        proactive=settings.proactive)


def build_ports(settings: SmfSettings, pool: ChannelPool, data_dir: Path,
                store: Store | None = None) -> MigrationPorts:
    timeout = settings.rpc_timeout_s
    registry = RasClient(pool.get(settings.registry), timeout=timeout)

    def relay(source: EndpointClient, destination: EndpointClient,
              tap: Tap | None) -> RaspRelay:
        return RaspRelay(registry, source, destination, tap=tap)

    ports = MigrationPorts(
        relay=relay,
        endpoint=lambda s: EndpointClient(pool.get(s.address), timeout=timeout),
    )
    if settings.audit is not None:
        try:
            token = WatchedSecret(settings.audit.owner_token_file)  # renewed by the deploy
        except OSError as err:
            raise AgentStartError(f"audit.owner_token_file: {err}") from None
        ports.audit = AuditHook(AuditClient(pool.get(settings.audit.address), timeout=timeout),
                                token.value)
    if settings.ledger is not None:
        lg = settings.ledger
        key = load_or_create_signing_key(data_dir / "keys" / "ledger.key")
        ports.ledger = LedgerHook(_RegisteringLedgerClient(pool.get(lg.address), lg.node_id, key,
                                                           rpc_timeout_s=timeout),
                                  quorum=lg.quorum, timeout_s=lg.timeout_s,
                                  application_types=tuple(lg.application_types))
    if settings.container is not None:
        if store is None:
            raise AgentStartError("container phases need the SMF's store (journal)")
        ports.container = container_phases(settings.container, pool, store)
    return ports


class _RegisteringLedgerClient(LedgerClient):
    """Registers the SMF's submitter key with the validator before the first write."""

    _registered = False

    def write_and_wait(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self._registered:
            self.register()
            self._registered = True
        return super().write_and_wait(*args, **kwargs)


def setup_smf(server: AgentServer, config: AgentConfig, *,
              ports: MigrationPorts | None = None) -> tuple[SmfCore, SmfServicer]:
    settings = config.settings_as(SmfSettings)
    if config.tls is None:
        raise AgentConfigError("the SMF needs tls (ca_cert, cert, key) to reach other agents")
    tls = config.tls
    data = config.resolved_data_dir
    identity = load_or_create_identity(data / "keys" / "smf.key", settings.name)
    secret = load_or_create_secret(data / "keys" / "capability.key")
    store = Store.open(data / "smf.sqlite3")
    core = SmfCore(identity, store, secret, session_capacity=settings.session_capacity,
                   session_ttl_s=settings.session_ttl_s,
                   capability_ttl_s=settings.capability_ttl_s,
                   max_revocations=settings.max_revocations)
    pool = ChannelPool(lambda address: secure_channel_from_config(
        tls, address, options=RECONNECT_OPTIONS))
    if ports is None:
        ports = build_ports(settings, pool, data, store)

    def server_stub(entry: ServerEntry) -> pb_grpc.SspServerServiceStub:
        return pb_grpc.SspServerServiceStub(pool.get(entry.address))

    servicer = SmfServicer(core, ports, server_stub, rpc_timeout_s=settings.rpc_timeout_s)
    server.add(add_to_server, servicer, SERVICE_NAME, policy=SMF_POLICY)
    server.on_stop(pool.close)
    server.on_stop(store.close)
    return core, servicer
