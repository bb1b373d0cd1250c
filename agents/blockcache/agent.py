"""Wiring of the blockcache agent: settings, origin store or edge cache, peer clients, servicer.

Configuration (``settings`` of /etc/edgeferry/<instance>.yaml)::

    settings:
      mode: edge                    # or origin (the control host's store)
      node: edge1                   # this host's node name (grants are bound to it)
      block_size: 65536
      # origin: the catalog seeded deterministically at start (agents.sso.workload.file_bytes)
      catalog: {n_files: 20, blocks_per_file: 8, block_size: 65536, seed: 4}
      # edge:
      origin: 10.10.0.11:50060      # the origin's blockcache agent
      neighbours: [{name: edge2, address: 10.10.0.13:50061}]   # nearest first
      capacity_bytes: 4194304
      policy: lru                   # lru | lfu
      granularity: bc               # bc (block caching) | ffc (full-file caching)
      services: [{service: transcode, cost_mean_ms: 20, cost_sd_ms: 5}]
      model_service_time: false     # add normal(cost_mean_ms, cost_sd_ms) to each execution
      require_grant: false          # refuse Execute without a composer's grant
      replay_capacity: 10000        # grant nonces remembered at most
      rpc_timeout_s: 10

Who may call which RPC is agents/blockcache/policy.py (by certificate role). Peers are dialled
with this agent's own certificate (``blockcache.<host>``) over mTLS.
"""

from __future__ import annotations

from typing import Literal

import grpc
from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field

from agents.blockcache.client import BlockCacheClient
from agents.blockcache.core import EdgeCore, OriginCore
from agents.blockcache.policy import BLOCKCACHE_POLICY
from agents.blockcache.servicer import SERVICE_NAME, BlockCacheServicer, add_to_server
from agents.blockcache.store import OriginStore
from agents.common.client import plaintext_loopback_channel, secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError
from agents.common.server import AgentServer
from agents.security.grant import GrantVerifier, ReplayTable
from agents.sso.blocks import BLOCK_SIZE_DEFAULT, FileManifest
from agents.sso.cache import BlockCache, Granularity, Policy
from agents.sso.lookup import Fetcher
from agents.sso.secure import ServiceOffer
from agents.sso.workload import Catalog, file_bytes, file_id_of

_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
_ADDRESS = r"^[A-Za-z0-9_.:\[\]-]{1,255}:[0-9]{1,5}$"


class CatalogSetting(BaseModel):
    """The origin's seeded catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_files: int = Field(default=0, ge=0, le=100_000)
    blocks_per_file: int = Field(default=8, ge=1, le=65_536)
    block_size: int = Field(default=BLOCK_SIZE_DEFAULT, ge=1, le=4 * 1024 * 1024)
    seed: int = 4


class NeighbourSetting(BaseModel):
    """A neighbouring edge's blockcache agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    address: str = Field(pattern=_ADDRESS)


class OfferSetting(BaseModel):
    """A service this edge offers and its cost model (paper section 8.1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(pattern=_NAME)
    cost_mean_ms: float = Field(default=10.0, ge=0)
    cost_sd_ms: float = Field(default=0.0, ge=0)


class BlockCacheSettings(BaseModel):
    """``settings`` of a blockcache agent (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["origin", "edge"] = "edge"
    node: str = Field(default="", pattern=r"^([A-Za-z0-9_.-]{1,64})?$")
    block_size: int = Field(default=BLOCK_SIZE_DEFAULT, ge=1, le=4 * 1024 * 1024)
    catalog: CatalogSetting = Field(default_factory=CatalogSetting)
    max_files: int = Field(default=100_000, ge=1)
    max_store_bytes: int = Field(default=64 * 1024**3, ge=1)
    origin: str = ""
    neighbours: list[NeighbourSetting] = Field(default_factory=list, max_length=1024)
    capacity_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    policy: Policy = Policy.LRU
    granularity: Granularity = Granularity.BLOCK
    services: list[OfferSetting] = Field(default_factory=list, max_length=256)
    model_service_time: bool = False
    execution_slots: int = Field(default=1, ge=1, le=64)
    require_grant: bool = False
    replay_capacity: int = Field(default=10_000, ge=1, le=1_000_000)
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    seed: int = 0


def _channel(config: AgentConfig, address: str) -> grpc.Channel:
    if config.tls is None:
        return plaintext_loopback_channel(address)
    return secure_channel_from_config(config.tls, address)


def _peer_fetcher(client: BlockCacheClient) -> Fetcher:
    def fetch(file_id: str, digest: str, index: int) -> bytes | None:
        return client.get_block(file_id, index, digest)
    return fetch


def seed_catalog(core: OriginCore, catalog: CatalogSetting) -> int:
    """Store the catalog's files that the origin does not hold yet; how many were added."""
    if catalog.n_files == 0:
        return 0
    cat = Catalog(catalog.n_files, catalog.blocks_per_file, catalog.block_size)
    added = 0
    for rank in range(catalog.n_files):
        file_id = file_id_of(cat, rank)
        if core.store.manifest(file_id) is None:
            core.put(file_id, file_bytes(cat, file_id, catalog.seed), catalog.block_size)
            added += 1
    return added


def build_origin(config: AgentConfig, settings: BlockCacheSettings) -> OriginCore:
    """The origin core over its on-disk store, the catalog seeded."""
    store = OriginStore(config.resolved_data_dir / "origin", max_files=settings.max_files,
                        max_bytes=settings.max_store_bytes)
    core = OriginCore(settings.node or config.name, store, settings.block_size)
    seed_catalog(core, settings.catalog)
    return core


def build_edge(server: AgentServer, config: AgentConfig,
               settings: BlockCacheSettings) -> EdgeCore:
    """The edge core with clients of its neighbours and of the origin."""
    if not settings.origin:
        raise AgentConfigError(f"settings.origin: an edge blockcache needs the origin's address "
                               f"(in {config.source})")
    channels = [_channel(config, settings.origin)]
    origin = BlockCacheClient(channels[0], timeout=settings.rpc_timeout_s)
    neighbours = []
    for n in settings.neighbours:
        channels.append(_channel(config, n.address))
        neighbours.append((n.name, _peer_fetcher(
            BlockCacheClient(channels[-1], timeout=settings.rpc_timeout_s))))
    for ch in channels:
        server.on_stop(ch.close)
    verifier = None
    if config.tls is not None:
        ca = x509.load_pem_x509_certificate(config.tls.ca_cert.read_bytes())
        verifier = GrantVerifier(settings.node or config.name, ca,
                                 ReplayTable(settings.replay_capacity))
    node = settings.node or config.name
    offers = {o.service: ServiceOffer(node, o.service, o.cost_mean_ms, o.cost_sd_ms)
              for o in settings.services}

    def manifests(file_id: str) -> FileManifest | None:
        try:
            return origin.manifest(file_id)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    return EdgeCore(
        node,
        BlockCache(settings.capacity_bytes, settings.policy, settings.granularity,
                   settings.block_size),
        neighbours=neighbours, origin=_peer_fetcher(origin), manifests=manifests,
        offers=offers, verifier=verifier, require_grant=settings.require_grant,
        model_service_time=settings.model_service_time, seed=settings.seed,
        execution_slots=settings.execution_slots)


def setup_blockcache(server: AgentServer, config: AgentConfig) -> EdgeCore | OriginCore:
    """Build the agent's core for its mode and register the servicer with its policy."""
    settings = config.settings_as(BlockCacheSettings)
    core: EdgeCore | OriginCore
    if settings.mode == "origin":
        core = build_origin(config, settings)
    else:
        core = build_edge(server, config, settings)
    server.add(add_to_server, BlockCacheServicer(core), SERVICE_NAME, policy=BLOCKCACHE_POLICY)
    return core
