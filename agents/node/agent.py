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
      advertise_interval_s: 5         # Algorithm 1 period (0 = off)
      advertise_to:                   # besides the neighbours: the servers that subscribe
        - {name: smf, address: 10.10.0.10:50051, kind: smf}
      capacity_override: {cpu_cores: 8, memory_gb: 32}   # inventory edgeferry_resources
      container_prefix: ""            # engine name of workload W = <prefix>W
      drop_pushed_images: true        # untag committed images once they are in the registry
      max_image_layers: 64            # at/above: commit a flattened 1-layer image (flatten.py)
      rasp_endpoint:                  # RASP Server SA / Cloud CB role (rasp_endpoint.py)
        registry_identity: /etc/edgeferry/registry.pub
        maximum: {cpu: 8000, memory: 16384, storage: 200000, network: 40}  # default: MAX
      ssp_server:                     # SSP chosen-server role (ssp_server.py)
        smf_identity: /etc/edgeferry/smf.pub
        advertise_ip: 10.10.0.11
      workload_host: 10.10.0.11       # address clients reach published workload ports at

Both roles share ``<data_dir>/keys/rasp-endpoint.key`` (one identity per host, named after the
agent unless ``name`` is set); the SMF's Add Server gets that identity and this agent's
address. Who may call which RPC of the three services is agents/node/policy.py (by the
caller's certificate role).

Advertisements (seed 000 Algorithm 1): every ``advertise_interval_s`` the `Advertiser` signs
this host's MAX and FREE with the host identity (FREE bounded by the RASP endpoint's own FREE)
and sends it to the neighbours (NodeService.PublishResources) and to ``advertise_to`` (the SMF:
SmfService.PublishResources). A neighbour's advertisement is verified under the key its RASP
endpoint reports over mTLS (GetIdentity, pinned on first use).

The SSP role answers ``locate <workload>`` (agents/node/locate.py) with ``workload_host`` and
the workload's published port while its container runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import grpc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as pb_grpc
from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as spb
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as spb_grpc
from agents.common.client import secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError, AgentStartError
from agents.common.keys import load_or_create_identity
from agents.common.logging import get_logger
from agents.common.platforms import parse_platform
from agents.common.server import AgentServer
from agents.node.client import EndpointClient, node_stub
from agents.node.convert import node_resources_from_pb
from agents.node.core import NodeCore, NodeOptions
from agents.node.domain import PhaseFailed, Resources
from agents.node.engine import DockerEngine, RegistryAccess
from agents.node.flatten import (
    DEFAULT_MAX_IMAGE_LAYERS,
    MAX_MAX_IMAGE_LAYERS,
    MIN_MAX_IMAGE_LAYERS,
)
from agents.node.hostlimits import GIB, CapacityOverride
from agents.node.locate import locate_handler
from agents.node.policy import NODE_POLICY
from agents.node.rasp_core import EndpointCore
from agents.node.rasp_endpoint import EndpointSettings, setup_rasp_endpoint
from agents.node.resources import HostProbe
from agents.node.servicer import NODE_SERVICE, NodeServicer
from agents.node.ssp_server import SspServerCore, SspServerSettings, setup_ssp_server
from agents.node.store import NodeStore
from agents.security.advertisement import (
    AdvertTable,
    Amounts,
    from_rasp,
    sign_advertisement,
    to_rasp,
)
from agents.security.crypto import Identity, PublicIdentity


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


class SubscriberSettings(BaseModel):
    """A server that subscribes to this host's advertisements (besides the neighbours)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    address: str
    #: which service receives it: the SMF's or another node agent's PublishResources
    kind: Literal["smf", "node"] = "smf"
    server_name: str | None = None


class CapacityOverrideSettings(BaseModel):
    """A per-host MAX from the inventory (``edgeferry_resources``); unset fields: measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_cores: float | None = Field(default=None, gt=0)
    memory_gb: float | None = Field(default=None, gt=0)
    storage_gb: float | None = Field(default=None, gt=0)
    network_mbit: int | None = Field(default=None, gt=0)
    gpu_count: int | None = Field(default=None, ge=0)

    def value(self) -> CapacityOverride:
        """In node units (millicores, bytes, bytes, bit/s, GPUs)."""
        def gib(x: float | None) -> int | None:
            return None if x is None else int(x * GIB)
        return CapacityOverride(
            cpu_millicores=None if self.cpu_cores is None else int(self.cpu_cores * 1000),
            memory_bytes=gib(self.memory_gb), storage_bytes=gib(self.storage_gb),
            network_bps=None if self.network_mbit is None else self.network_mbit * 1_000_000,
            gpu=self.gpu_count)


class NodeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    registry: RegistrySettings | None = None
    uplink_interface: str = ""
    network_bps: int = Field(default=0, ge=0)
    stop_timeout_s: int = Field(default=10, ge=0, le=300)
    neighbours: list[NeighbourSettings] = Field(default_factory=list)
    #: Algorithm 1's period (0: no advertisements)
    advertise_interval_s: float = Field(default=30.0, ge=0)
    advertise_to: list[SubscriberSettings] = Field(default_factory=list, max_length=64)
    #: receiving side: freshness window of a timestamp and age after which one is stale
    advert_window_s: float = Field(default=30.0, gt=0)
    advert_ttl_s: float = Field(default=90.0, gt=0)
    capacity_override: CapacityOverrideSettings | None = None
    #: cgroup filesystem root read for the host's limits (tests point it at a fake tree)
    cgroup_root: Path = Path("/sys/fs/cgroup")
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

    def identity(self) -> PublicIdentity:
        """The neighbour's host identity, as its RASP endpoint reports it over mTLS."""
        return EndpointClient(self._channel, timeout=self.timeout).identity()[0]

    def publish(self, advert: common_pb2.SignedAdvertisement) -> None:
        """Send this host's advertisement to the neighbour."""
        self._stub.PublishResources(pb.PublishResourcesRequest(advertisement=advert),
                                    timeout=self.timeout)

    def close(self) -> None:
        self._channel.close()


Publish = Callable[[common_pb2.SignedAdvertisement], None]


class Advertiser:
    """Algorithm 1: every ``interval`` seconds, sign this host's MAX and FREE and send them to
    every subscriber when any FREE > 0 (else wait). Sequence numbers start at the wall clock
    in ms, so they keep increasing across restarts (receivers remember the last one)."""

    def __init__(self, core: NodeCore, interval: float, identity: Identity,
                 subscribers: dict[str, Publish],
                 free_bound: Callable[[], Resources] | None = None) -> None:
        self.core = core
        self.interval = interval
        self.identity = identity
        self.subscribers = subscribers
        self.free_bound = free_bound
        self.log = get_logger("node.advertiser")
        self.seq = 0
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="node-advertise", daemon=True)

    def message(self) -> common_pb2.SignedAdvertisement | None:
        """The next signed advertisement, or None when nothing is free (Algorithm 1 waits)."""
        free = self.core.free()
        if self.free_bound is not None:
            bound = self.free_bound()
            free = Resources(*(min(a, b) for a, b in zip(free.values(), bound.values(),
                                                         strict=True)))
        if not free.any_positive():
            return None
        now = time.time()
        self.seq = max(self.seq + 1, int(now * 1000))
        body, sig = sign_advertisement(
            self.identity, self.core.advertisement(self.identity.name, self.seq, now, free))
        return common_pb2.SignedAdvertisement(body=body, signature=sig)

    def tick(self) -> int:
        """Advertise once; return how many subscribers took it."""
        message = self.message()
        if message is None:
            return 0
        taken = 0
        for name, publish in self.subscribers.items():
            try:
                publish(message)
                taken += 1
            except Exception as err:  # one unreachable subscriber does not stop the others
                self.log.warning("advertise_failed", subscriber=name, error=str(err)[:200])
        self.sent += 1
        return taken

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as err:  # keep advertising after a transient engine error
                self.log.warning("advertise_failed", error=str(err))

    def start(self) -> None:
        """Start the periodic thread (nothing when the interval is 0)."""
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop advertising."""
        self._stop.set()


def rasp_free_bound(rasp: EndpointCore) -> Callable[[], Resources]:
    """The RASP endpoint's FREE in node units (GPUs unbounded), to bound the advertised FREE."""
    def bound() -> Resources:
        a = from_rasp(rasp.free())
        return Resources(a.cpu_millicores, a.memory_bytes, a.storage_bytes, a.network_bps,
                         1 << 62)
    return bound


def neighbour_keys(links: list[GrpcNeighbour]) -> Callable[[str], PublicIdentity | None]:
    """Key lookup for neighbours' advertisements: asked once over mTLS, then pinned."""
    by_name = {link.name: link for link in links}
    pinned: dict[str, PublicIdentity] = {}
    lock = threading.Lock()

    def lookup(name: str) -> PublicIdentity | None:
        with lock:
            if name in pinned:
                return pinned[name]
        link = by_name.get(name)
        if link is None:
            return None
        try:
            public = link.identity()
        except Exception:
            return None
        if public.name != name:
            return None
        with lock:
            return pinned.setdefault(name, public)

    return lookup


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
    override = settings.capacity_override.value() if settings.capacity_override else None
    if override == CapacityOverride():  # an empty mapping from the inventory: measure
        override = None
    host = HostProbe(cgroup_root=settings.cgroup_root, override=override)
    return NodeCore(engine, store, NodeOptions(data_dir, settings.stop_timeout_s,
                                               settings.network_bps, settings.max_hops,
                                               settings.container_prefix,
                                               settings.drop_pushed_images,
                                               settings.workload_host or "",
                                               settings.max_image_layers),
                    neighbours=neighbours, host=host)


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
        rasp = setup_rasp_endpoint(server, config, settings.rasp_endpoint,
                                   host_maximum=to_rasp(Amounts(*core.capacity().values())))
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
    links = [link for link in core.neighbours if isinstance(link, GrpcNeighbour)]
    core.adverts = AdvertTable(neighbour_keys(links), window_s=settings.advert_window_s,
                               ttl_s=settings.advert_ttl_s)
    server.on_stop(core.store.close)
    server.on_stop(core.host.stop)
    for link in links:
        server.on_stop(link.close)
    add_node_service(server, core)
    core.host.start()
    if settings.advertise_interval_s > 0 and config.tls is not None:  # subscribers need mTLS
        advertiser = build_advertiser(server, config, settings, core, roles, links)
        server.on_stop(advertiser.stop)
        advertiser.start()
    return core, roles


def subscriber_publish(kind: str, channel: grpc.Channel) -> Publish:
    """How to hand an advertisement to a subscriber of ``kind`` ("smf" or "node")."""
    if kind == "smf":
        smf = spb_grpc.SmfServiceStub(channel)

        def to_smf(message: common_pb2.SignedAdvertisement) -> None:
            smf.PublishResources(spb.PublishResourcesRequest(advertisement=message),
                                 timeout=10.0)
        return to_smf
    node = node_stub(channel)

    def to_node(message: common_pb2.SignedAdvertisement) -> None:
        node.PublishResources(pb.PublishResourcesRequest(advertisement=message), timeout=10.0)
    return to_node


def build_advertiser(server: AgentServer, config: AgentConfig, settings: NodeSettings,
                     core: NodeCore, roles: HostRoles,
                     links: list[GrpcNeighbour]) -> Advertiser:
    """The Algorithm 1 advertiser: the host identity (the RASP endpoint's key), the
    neighbours and ``advertise_to`` as subscribers."""
    if config.tls is None:
        raise AgentConfigError("advertisements need tls: subscribers are called over mTLS")
    if roles.rasp is not None:
        identity = roles.rasp.identity
    else:
        name = config.name
        identity = load_or_create_identity(
            config.resolved_data_dir / "keys" / "rasp-endpoint.key", name)
    subscribers: dict[str, Publish] = {f"node:{link.name}": link.publish for link in links}
    for sub in settings.advertise_to:
        channel = secure_channel_from_config(config.tls, sub.address, sub.server_name)
        server.on_stop(channel.close)
        subscribers[f"{sub.kind}:{sub.name}"] = subscriber_publish(sub.kind, channel)
    bound = rasp_free_bound(roles.rasp) if roles.rasp is not None else None
    return Advertiser(core, settings.advertise_interval_s, identity, subscribers, bound)
