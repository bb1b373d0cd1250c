"""Node agent wiring: settings, neighbour links over mTLS, the advertiser, server setup.

Example ``/etc/edgeferry/node.yaml`` settings::

    settings:
      registry:
        address: 10.10.0.10:5000
        username: edge1               # this host's own account
        namespace: edge1              # it may push only under <address>/edge1/...
        password_file: /etc/edgeferry/registry.password   # 0600
        ca_cert: /etc/edgeferry/pki/ca.crt
      uplink_interface: eth0          # for interface byte counters ("" = route to registry)
      network_bps: 40000000           # MAX network when the NIC reports no speed
      neighbours:
        - {name: edge2, address: 10.10.0.12:50061, distance: 1.0}
      advertise_interval_s: 30
      container_prefix: ""            # engine name of workload W = <prefix>W
      drop_pushed_images: true        # untag committed images once they are in the registry
      max_image_layers: 64            # at/above: commit a flattened 1-layer image (flatten.py)
      rasp_endpoint:                  # RASP Server SA / Cloud CB role (rasp_endpoint.py)
        registry_identity: /etc/edgeferry/registry.pub
        maximum: {cpu: 8000, memory: 16384, storage: 200000, network: 40}
      ssp_server:                     # SSP chosen-server role (ssp_server.py)
        smf_identity: /etc/edgeferry/smf.pub
        advertise_ip: 10.10.0.11
      workload_host: 10.10.0.11       # address clients reach published workload ports at

Both roles share ``<data_dir>/keys/rasp-endpoint.key`` (one identity per host, named after the
agent unless ``name`` is set); the SMF's Add Server gets that identity and this agent's
address. Who may call which RPC of the three services is agents/node/policy.py (by the
caller's certificate role). The SSP role answers ``locate <workload>`` (agents/node/locate.py) with
``workload_host`` and the workload's published port while its container runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as pb_grpc
from agents.common.client import secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError, AgentStartError
from agents.common.logging import get_logger
from agents.common.platforms import parse_platform
from agents.common.server import AgentServer
from agents.node.client import node_stub
from agents.node.convert import node_resources_from_pb
from agents.node.core import NodeCore, NodeOptions
from agents.node.domain import PhaseFailed, Resources
from agents.node.engine import DockerEngine, RegistryAccess
from agents.node.flatten import (
    DEFAULT_MAX_IMAGE_LAYERS,
    MAX_MAX_IMAGE_LAYERS,
    MIN_MAX_IMAGE_LAYERS,
)
from agents.node.locate import locate_handler
from agents.node.policy import NODE_POLICY
from agents.node.rasp_core import EndpointCore
from agents.node.rasp_endpoint import EndpointSettings, setup_rasp_endpoint
from agents.node.servicer import NODE_SERVICE, NodeServicer
from agents.node.ssp_server import SspServerCore, SspServerSettings, setup_ssp_server
from agents.node.store import NodeStore


class RegistrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d+$")
    username: str
    #: Repository namespace this host's account may push under ("" = none): committed images
    #: go to ``<address>/<namespace>/<repository>``.
    namespace: str = Field(default="", pattern=r"^([a-z0-9]+(?:[._-][a-z0-9]+)*)?$")
    password_file: Path
    ca_cert: Path


class NeighbourSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    address: str
    distance: float = Field(ge=0)
    server_name: str | None = None


class NodeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    registry: RegistrySettings | None = None
    uplink_interface: str = ""
    network_bps: int = Field(default=0, ge=0)
    stop_timeout_s: int = Field(default=10, ge=0, le=300)
    neighbours: list[NeighbourSettings] = Field(default_factory=list)
    advertise_interval_s: float = Field(default=30.0, ge=0)
    max_hops: int = Field(default=2, ge=0, le=8)
    container_prefix: str = Field(default="", pattern=r"^([a-zA-Z0-9][a-zA-Z0-9_.-]{0,63})?$")
    drop_pushed_images: bool = False
    #: Commit a flattened single-layer image once a commit would reach this many layers
    #: (agents/node/flatten.py; overlay2 refuses more than 128).
    max_image_layers: int = Field(default=DEFAULT_MAX_IMAGE_LAYERS, ge=MIN_MAX_IMAGE_LAYERS,
                                  le=MAX_MAX_IMAGE_LAYERS)
    rasp_endpoint: EndpointSettings | None = None
    ssp_server: SspServerSettings | None = None
    workload_host: str | None = None
    #: The OCI platform workloads run as (``linux/arm64`` on a jetson-class host whose engine
    #: is x86_64: qemu-user); empty: the engine's own.
    platform: str = ""

    @field_validator("platform")
    @classmethod
    def _platform_parses(cls, value: str) -> str:
        if value:
            parse_platform(value)  # PlatformError is a ValueError: a settings error
        return value


def registry_access(settings: RegistrySettings) -> RegistryAccess:
    path = settings.password_file
    try:
        if path.stat().st_mode & 0o077:
            raise AgentConfigError(f"{path} is readable by others; chmod 600 it")
        password = path.read_text().strip()
    except OSError as err:
        raise AgentConfigError(f"cannot read registry password file {path}: {err}") from None
    return RegistryAccess(settings.address, settings.username, password, settings.ca_cert,
                          settings.namespace)


class GrpcNeighbour:
    """A neighbouring node agent reached over mTLS with this agent's own certificate."""

    def __init__(self, spec: NeighbourSettings, config: AgentConfig, timeout: float = 10.0):
        if config.tls is None:
            raise AgentConfigError("neighbours need tls: the agent calls them over mTLS")
        self.name = spec.name
        self.distance = spec.distance
        self.timeout = timeout
        self._channel = secure_channel_from_config(config.tls, spec.address, spec.server_name)
        self._stub = node_stub(self._channel)

    def free(self) -> Resources:
        report = self._stub.GetResources(pb.GetResourcesRequest(), timeout=self.timeout)
        return node_resources_from_pb(report.free)

    def submit(self, request: pb.SubmitRequestRequest) -> pb.SubmitRequestResponse:
        response: pb.SubmitRequestResponse = self._stub.SubmitRequest(
            request, timeout=self.timeout)
        return response

    def close(self) -> None:
        self._channel.close()


class Advertiser:
    """Algorithm 1: every ``interval`` seconds, publish the report when any FREE > 0.

    ``publish`` is where the RAS client plugs in; until then it logs the advertisement.
    """

    def __init__(self, core: NodeCore, interval: float,
                 publish: Callable[[pb.GetResourcesResponse], None] | None = None) -> None:
        self.core = core
        self.interval = interval
        self.log = get_logger("node.advertiser")
        self.publish = publish or self._log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="node-advertise", daemon=True)

    def _log(self, report: pb.GetResourcesResponse) -> None:
        self.log.info("resource_advertisement", host=report.hostname,
                      free_cpu_millicores=report.free.cpu_millicores,
                      free_memory_bytes=report.free.memory_bytes)

    def tick(self) -> bool:
        report = self.core.report()
        if report.advertise:
            self.publish(report)
        return bool(report.advertise)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as err:  # keep advertising after a transient engine error
                self.log.warning("advertise_failed", error=str(err))

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def build_core(config: AgentConfig, *, engine: DockerEngine | None = None) -> NodeCore:
    settings = config.settings_as(NodeSettings)
    registry = registry_access(settings.registry) if settings.registry else None
    if engine is None:
        try:
            engine = DockerEngine(registry, interface=settings.uplink_interface,
                                  platform=parse_platform(settings.platform)
                                  if settings.platform else None)
        except PhaseFailed as err:
            raise AgentStartError(f"node agent: {err}; start dockerd or set DOCKER_HOST") from None
    data_dir = config.resolved_data_dir
    store = NodeStore.open(data_dir / "node.sqlite3")
    neighbours = [GrpcNeighbour(n, config) for n in settings.neighbours]
    return NodeCore(engine, store, NodeOptions(data_dir, settings.stop_timeout_s,
                                               settings.network_bps, settings.max_hops,
                                               settings.container_prefix,
                                               settings.drop_pushed_images,
                                               settings.workload_host or "",
                                               settings.max_image_layers),
                    neighbours=neighbours)


def transfer_lookup(rasp: EndpointCore) -> Callable[[bytes], tuple[str, str, int]]:
    """The step-10 transfer descriptor of a finished RASP session at this host's CB role."""

    def lookup(session_id: bytes) -> tuple[str, str, int]:
        info = rasp.session_info(session_id)
        if info.transfer is None:
            raise PhaseFailed("the RASP session carried no transfer (step 10 not reached)")
        t = info.transfer
        return t.image_ref, t.image_digest, t.size_bytes

    return lookup


class HostRoles:
    """The RASP endpoint and SSP chosen-server roles this agent hosts (either may be None)."""

    def __init__(self, rasp: EndpointCore | None, ssp: SspServerCore | None) -> None:
        self.rasp = rasp
        self.ssp = ssp


def setup_roles(server: AgentServer, config: AgentConfig, core: NodeCore) -> HostRoles:
    """RASP endpoint + SSP server on the node agent's own server (one identity)."""
    settings = config.settings_as(NodeSettings)
    rasp = ssp = None
    if settings.rasp_endpoint is not None:
        rasp = setup_rasp_endpoint(server, config, settings.rasp_endpoint)
        core.transfer_lookup = transfer_lookup(rasp)
    if settings.ssp_server is not None:
        host = (settings.workload_host or settings.ssp_server.advertise_ip
                or config.listen_host)

        def lookup(name: str) -> tuple[str, int] | None:
            found = core.running_endpoint(name)
            return None if found is None else (host, found[1])

        ssp = setup_ssp_server(server, config, settings.ssp_server,
                               handler=locate_handler(lookup))
    return HostRoles(rasp, ssp)


def add_node_service(server: AgentServer, core: NodeCore) -> NodeServicer:
    """Register NodeService over `core` with its policy (agents/node/policy.py)."""
    servicer = NodeServicer(core)
    server.add(pb_grpc.add_NodeServiceServicer_to_server, servicer, NODE_SERVICE,
               policy=NODE_POLICY)
    return servicer


def setup(server: AgentServer, config: AgentConfig) -> NodeCore:
    core, _ = setup_with_roles(server, config)
    return core


def setup_with_roles(server: AgentServer, config: AgentConfig) -> tuple[NodeCore, HostRoles]:
    """Build everything; call `HostRoles.ssp.set_address` after start when the port was 0
    (`__main__` does it)."""
    settings = config.settings_as(NodeSettings)
    core = build_core(config)
    roles = setup_roles(server, config, core)
    advertiser = Advertiser(core, settings.advertise_interval_s)
    server.on_stop(core.store.close)
    server.on_stop(advertiser.stop)
    for link in core.neighbours:
        if isinstance(link, GrpcNeighbour):
            server.on_stop(link.close)
    add_node_service(server, core)
    advertiser.start()
    return core, roles
