"""Wiring of the composer agent: settings (offers, chi, edges), edge clients, grant signing.

Configuration (``settings`` of /etc/edgeferry/composer.yaml; the edgeferry role renders it
from the inventory, see roles/edgeferry/defaults/main.yml ``edgeferry_sso_*``)::

    settings:
      origin: 10.10.0.11:50060                    # the origin blockcache agent
      edges: [{name: edge1, address: 10.10.0.12:50061}, ...]
      offers:                                     # what each node offers, cost per execution
        - {node: edge1, service: transcode, cost_mean_ms: 20, cost_sd_ms: 5}
      chi: {edge1: ["*"], edge2: [transcode, file-000000]}   # default: every edge "*"
      grant_ttl_s: 30                             # validity of an execution grant
      soundness_engine: reachability              # or woflan (pm4py's woflan)
      rpc_timeout_s: 60

chi names, per node, the resources (services and file ids) it may touch; ``*`` is any
resource (the documented permissive default: an edge missing from chi gets ``*``). Execution
grants are signed with the composer's own certificate key (tls.key, ``composer.<host>``), so
the edges verify them against the lab CA with no extra key distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import grpc
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field

from agents.blockcache.client import BlockCacheClient
from agents.common.client import plaintext_loopback_channel, secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError
from agents.common.server import AgentServer
from agents.composer.core import ANY, ComposerCore, Executed, Fetched, GrantIssuer
from agents.composer.policy import COMPOSER_POLICY
from agents.composer.servicer import SERVICE_NAME, ComposerServicer, add_to_server
from agents.security.grant import SignedGrant, issue_grant
from agents.sso.blocks import FileManifest
from agents.sso.secure import ServiceOffer
from agents.sso.wfnet import preload

_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
#: Blocks per Fetch when the composer reads a file (64 KiB blocks: 8 MiB per reply).
FETCH_CHUNK = 128


class EdgeEntry(BaseModel):
    """An edge's blockcache agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    address: str = Field(pattern=r"^[A-Za-z0-9_.:\[\]-]{1,255}:[0-9]{1,5}$")


class OfferEntry(BaseModel):
    """One node's offer of one service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str = Field(pattern=_NAME)
    service: str = Field(pattern=_NAME)
    cost_mean_ms: float = Field(default=10.0, ge=0)
    cost_sd_ms: float = Field(default=0.0, ge=0)


class ComposerSettings(BaseModel):
    """``settings`` of the composer (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    origin: str = ""
    edges: list[EdgeEntry] = Field(default_factory=list, max_length=1024)
    offers: list[OfferEntry] = Field(default_factory=list, max_length=100_000)
    chi: dict[str, list[str]] = Field(default_factory=dict)
    grant_ttl_s: float = Field(default=30.0, gt=0, le=600)
    #: how soundness is decided (agents.sso.wfnet.check_soundness): reachability or woflan
    soundness_engine: Literal["reachability", "woflan"] = "reachability"
    rpc_timeout_s: float = Field(default=60.0, gt=0)


class EdgeClients:
    """The blockcache agents by node name (agents.composer.core.Edges over gRPC)."""

    def __init__(self, origin: BlockCacheClient, edges: dict[str, BlockCacheClient]) -> None:
        self.origin = origin
        self.edges = edges

    def _edge(self, node: str) -> BlockCacheClient:
        try:
            return self.edges[node]
        except KeyError:
            raise LookupError(f"no blockcache agent configured for node {node!r}") from None

    def manifest(self, file_id: str) -> FileManifest:
        """The origin's manifest."""
        return self.origin.manifest(file_id)

    def fetch(self, home: str, file_id: str, indices: Sequence[int]) -> Fetched:
        """The blocks `indices` of `file_id` through `home`'s cache, `FETCH_CHUNK` per call."""
        blocks: list[tuple[int, str, bytes]] = []
        hits = neighbours = origin = bytes_in = 0
        for start in range(0, len(indices), FETCH_CHUNK):
            chunk = list(indices[start:start + FETCH_CHUNK])
            reply = self._edge(home).fetch(file_id, chunk, return_data=True)
            blocks += [(b.index, b.digest, bytes(b.data)) for b in reply.blocks]
            hits += reply.hits
            neighbours += reply.from_neighbours
            origin += reply.from_origin
            bytes_in += reply.bytes_in
        return Fetched(blocks, hits, neighbours, origin, bytes_in)

    def execute(self, node: str, service: str, data: bytes, request_id: str, transition: str,
                grant: SignedGrant | None, cost: tuple[float, float]) -> Executed:
        """One execution on `node`."""
        reply = self._edge(node).execute(service, data, request_id=request_id,
                                         transition=transition, grant=grant, cost=cost)
        return Executed(bytes(reply.output), reply.modeled_ns)


def _channel(config: AgentConfig, address: str) -> grpc.Channel:
    if config.tls is None:
        return plaintext_loopback_channel(address)
    return secure_channel_from_config(config.tls, address)


def grant_issuer(config: AgentConfig, ttl_s: float) -> GrantIssuer | None:
    """Sign grants with the composer's certificate key (None without TLS)."""
    if config.tls is None:
        return None
    key = load_pem_private_key(config.tls.key.read_bytes(), password=None)
    cert = config.tls.cert.read_bytes()

    def issue(node: str, service: str, digest: str, request_id: str,
              transition: str) -> SignedGrant:
        return issue_grant(key, cert, node=node, service=service, data_digest=digest,
                           request_id=request_id, transition=transition, ttl_s=ttl_s)[1]
    return issue


def setup_composer(server: AgentServer, config: AgentConfig) -> ComposerCore:
    """Build the composer's core and register the servicer with its policy."""
    settings = config.settings_as(ComposerSettings)
    preload()  # pm4py's import (about a second) at startup, not in the first request
    if not settings.origin:
        raise AgentConfigError(f"settings.origin: the composer needs the origin's address "
                               f"(in {config.source})")
    channels = {"": _channel(config, settings.origin)}
    for edge in settings.edges:
        channels[edge.name] = _channel(config, edge.address)
    for ch in channels.values():
        server.on_stop(ch.close)
    clients = {name: BlockCacheClient(ch, timeout=settings.rpc_timeout_s)
               for name, ch in channels.items()}
    origin = clients.pop("")
    offers = [ServiceOffer(o.node, o.service, o.cost_mean_ms, o.cost_sd_ms)
              for o in settings.offers]
    chi = {e.name: frozenset([ANY]) for e in settings.edges}
    chi.update({node: frozenset(res) for node, res in settings.chi.items()})
    core = ComposerCore(offers, chi, EdgeClients(origin, clients),
                        grant_issuer(config, settings.grant_ttl_s), settings.soundness_engine)
    server.add(add_to_server, ComposerServicer(core), SERVICE_NAME, policy=COMPOSER_POLICY)
    return core
