"""Wiring of the ledger agent's three roles onto an `AgentServer` (used by __main__ and tests).

Configuration (``settings`` of /etc/edgeferry/ledger.yaml)::

    settings:
      role: validator            # validator | peers | central
      node_id: validator         # validator: its authority id; peers: id prefix
      peers: 1                   # peers role: identities hosted by this process (scale mode)
      validator: 10.10.0.1:50061 # peers role: where the validator listens
      authority_id: validator    # peers role: the authority's id ...
      authority_key: <64 hex>    # ... and its raw Ed25519 public key (from the validator's key)
      advertise: 10.10.0.11:50061  # peers role: address the validator dials (default: listen)

Keys live in ``<data_dir>/keys/<id>.key`` (mode 0600, created on first start); the validator
writes its public key to ``<data_dir>/keys/<id>.pub.hex`` for distribution to peers.
"""

from __future__ import annotations

from typing import Literal

import grpc
from pydantic import BaseModel, ConfigDict, Field

from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from agents.common.client import secure_channel
from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError, AgentStartError
from agents.common.server import AgentServer, format_address
from agents.ledger.central import CentralStore
from agents.ledger.client import bootstrap_peer_host
from agents.ledger.errors import LedgerError
from agents.ledger.metering import MeteringInterceptor, TrafficMeter, metered_channels
from agents.ledger.peer import PeerHost
from agents.ledger.policy import CENTRAL_POLICY, LEDGER_POLICY, PEER_POLICY
from agents.ledger.propagation import Propagator
from agents.ledger.servicer import (
    CENTRAL_SERVICE,
    LEDGER_SERVICE,
    PEER_SERVICE,
    CentralMetadataServicer,
    LedgerPeerServicer,
    LedgerServicer,
)
from agents.ledger.signing import public_key_bytes
from agents.ledger.store import LedgerStore, load_or_create_key
from agents.ledger.validator import ValidatorCore


class LedgerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["validator", "peers", "central"]
    node_id: str = Field(default="validator", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    peers: int = Field(default=1, ge=1, le=1000)
    validator: str = ""
    authority_id: str = "validator"
    authority_key: str = Field(default="", pattern=r"^([0-9a-f]{64})?$")
    advertise: str = ""
    max_block_txs: int = Field(default=256, ge=1, le=4096)
    #: nodes the validator registers at most (a new one beyond is refused RESOURCE_EXHAUSTED)
    max_members: int = Field(default=2048, ge=1, le=100_000)


def peer_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(count)]


def _channel_for(config: AgentConfig):  # type: ignore[no-untyped-def]
    tls = config.tls
    if tls is None:
        raise AgentConfigError("the ledger agent needs tls (ca_cert, cert, key) to dial others")
    return lambda address: secure_channel(address, tls.ca_cert, tls.cert, tls.key)


def setup_validator(server: AgentServer, config: AgentConfig, meter: TrafficMeter | None = None
                    ) -> tuple[ValidatorCore, Propagator]:
    settings = config.settings_as(LedgerSettings)
    data = config.resolved_data_dir
    key = load_or_create_key(data / "keys" / f"{settings.node_id}.key")
    (data / "keys" / f"{settings.node_id}.pub.hex").write_text(public_key_bytes(key).hex() + "\n")
    store = LedgerStore(data / "ledger.sqlite3", durable=True)
    try:
        core = ValidatorCore(store, settings.node_id, key, max_block_txs=settings.max_block_txs,
                             max_members=settings.max_members)
    except LedgerError as exc:
        raise AgentStartError(f"ledger store {store.path} failed verification: {exc}") from exc
    meter = meter or TrafficMeter()
    propagator = Propagator(core, metered_channels(_channel_for(config), meter))
    server.add(pb_grpc.add_LedgerServiceServicer_to_server,
               LedgerServicer(core, on_change=propagator.kick), LEDGER_SERVICE,
               policy=LEDGER_POLICY, interceptors=(MeteringInterceptor(meter),))
    propagator.start()
    server.on_stop(store.close)
    server.on_stop(propagator.stop)
    return core, propagator


def setup_peers(server: AgentServer, config: AgentConfig, meter: TrafficMeter | None = None
                ) -> PeerHost:
    settings = config.settings_as(LedgerSettings)
    if not settings.authority_key:
        raise AgentConfigError("settings.authority_key: the validator's public key is required")
    data = config.resolved_data_dir
    keys = {pid: load_or_create_key(data / "keys" / f"{pid}.key")
            for pid in peer_ids(settings.node_id, settings.peers)}
    store = LedgerStore(data / "ledger.sqlite3", durable=False)
    try:
        host = PeerHost(store, {settings.authority_id: bytes.fromhex(settings.authority_key)}, keys)
    except LedgerError as exc:
        raise AgentStartError(f"ledger replica {store.path} failed verification: {exc}") from exc
    server.add(pb_grpc.add_LedgerPeerServiceServicer_to_server, LedgerPeerServicer(host),
               PEER_SERVICE, policy=PEER_POLICY,
               interceptors=(MeteringInterceptor(meter or TrafficMeter()),))
    server.on_stop(store.close)
    return host


def bootstrap(host: PeerHost, server: AgentServer, config: AgentConfig) -> int:
    """After start(): register the identities with the validator and catch them up."""
    settings = config.settings_as(LedgerSettings)
    if not settings.validator:
        raise AgentConfigError("settings.validator: the validator's host:port is required")
    advertise = settings.advertise or format_address(config.listen_host, server.port)
    channel = _channel_for(config)(settings.validator)
    try:
        return bootstrap_peer_host(host, pb_grpc.LedgerServiceStub(channel), advertise)
    except grpc.RpcError as exc:
        raise AgentStartError(
            f"cannot join the ledger at {settings.validator}: {exc.code().name} {exc.details()}"
        ) from exc
    except LedgerError as exc:
        raise AgentStartError(f"catch-up from {settings.validator} failed: {exc}") from exc
    finally:
        channel.close()


def setup_central(server: AgentServer, config: AgentConfig, meter: TrafficMeter | None = None
                  ) -> CentralStore:
    store = CentralStore(config.resolved_data_dir / "central.sqlite3")
    server.add(pb_grpc.add_CentralMetadataServiceServicer_to_server,
               CentralMetadataServicer(store), CENTRAL_SERVICE, policy=CENTRAL_POLICY,
               interceptors=(MeteringInterceptor(meter or TrafficMeter()),))
    server.on_stop(store.close)
    return store
