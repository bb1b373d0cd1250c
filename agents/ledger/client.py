"""Clients of the ledger for other agents (SMF) and for benchmarks.

    client = LedgerClient(secure_channel(validator, ca, cert, key), "smf@edge1", signing_key)
    client.register()                                  # once: admit our key as a submitter
    result = client.write_and_wait(meta, quorum=0.9, timeout=5.0)       # Algorithm 1
    ev = client.self_evaluate("c0001", NodeResources(...))              # Algorithm 2
    if ev.accept: ...  migrationRequest(ev.source_ip, True)

`bootstrap_peer_host` registers a peer host's identities with the validator and catches each
of them up (pull GetBlocks, verify, then SubmitConfirmations) -- what a restarted or new peer
does before the validator's pushes take over.

Other processes reach the ledger only through this module, so it also exports the values they
build and get back (`ContainerMetadata`, `NodeResources`, `SelfEvaluation`, `WriteResult`,
`Transaction`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as pb
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from agents.ledger.chain import Block
from agents.ledger.consensus import DEFAULT_QUORUM, NodeRole, next_sequence, sign_registration
from agents.ledger.convert import (
    block_from_pb,
    confirmation_to_pb,
    metadata_from_pb,
    registration_to_pb,
    tx_from_pb,
    tx_to_pb,
)
from agents.ledger.decisions import (
    NodeResources,
    SelfEvaluation,
    SubmitStatus,
    WriteResult,
    self_evaluate,
    write_to_blockchain,
)
from agents.ledger.errors import LedgerError
from agents.ledger.peer import PeerHost
from agents.ledger.transactions import ContainerMetadata, Transaction, sign_transaction

__all__ = [
    "CentralClient",
    "ContainerMetadata",
    "LedgerClient",
    "NodeResources",
    "ReplicaReader",
    "SelfEvaluation",
    "Transaction",
    "WriteResult",
    "bootstrap_peer_host",
]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class LedgerClient:
    """Submitter-side port to the validator; implements `decisions.LedgerPort`."""

    def __init__(
        self,
        channel: grpc.Channel,
        node_id: str,
        key: Ed25519PrivateKey,
        *,
        rpc_timeout_s: float = 5.0,
        clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.stub = pb_grpc.LedgerServiceStub(channel)
        self.node_id = node_id
        self._key = key
        self._timeout = rpc_timeout_s
        self._clock_ms = clock_ms
        self._last_total: int | None = None

    def register(self) -> None:
        """Register our key as a SUBMITTER (idempotent; a fresh sequence number each time)."""
        reg = sign_registration(self.node_id, self._key, NodeRole.SUBMITTER, "",
                                next_sequence(0, time.time_ns() // 1000))
        self.stub.RegisterNode(pb.RegisterNodeRequest(registrations=[registration_to_pb(reg)]),
                               timeout=self._timeout)

    # ---------------------------------------------------------------------- LedgerPort

    def sign(self, metadata: ContainerMetadata) -> Transaction:
        return sign_transaction(metadata, self.node_id, self._key, self._clock_ms())

    def new_transaction(self, metadata: ContainerMetadata) -> SubmitStatus:
        try:
            tx = self.sign(metadata)
            resp = self.stub.SubmitTransaction(
                pb.SubmitTransactionRequest(transaction=tx_to_pb(tx)), timeout=self._timeout)
        except LedgerError as exc:
            return SubmitStatus(False, error=str(exc))
        except grpc.RpcError as exc:
            return SubmitStatus(False, error=f"{exc.code().name}: {exc.details()}")
        return SubmitStatus(True, tx_id=resp.tx_id)

    def confirmations(self, tx_id: str, *, at_least: int = 0, wait_s: float = 0.0) -> int:
        resp = self.stub.GetConfirmations(
            pb.GetConfirmationsRequest(tx_id=tx_id, at_least=at_least,
                                       max_wait_ms=int(wait_s * 1000)),
            timeout=self._timeout + wait_s,
        )
        self._last_total = resp.total_nodes
        return int(resp.confirmations)

    def total_nodes(self) -> int:
        if self._last_total is not None:  # fresh from the last confirmations() answer
            total, self._last_total = self._last_total, None
            return total
        return int(self.stub.GetStatus(pb.GetStatusRequest(), timeout=self._timeout).total_nodes)

    # ------------------------------------------------------------------ what SMF calls

    def write_and_wait(
        self, metadata: ContainerMetadata, quorum: float = DEFAULT_QUORUM, timeout: float = 10.0
    ) -> WriteResult:
        """Algorithm 1: write the metadata, wait for >= quorum confirmations or the timeout."""
        return write_to_blockchain(self, metadata, quorum=quorum, timeout_s=timeout,
                                   clock=time.monotonic, poll_s=0.5)

    def metadata(self, container_id: str) -> Transaction | None:
        """Newest metadata for a container from the validator's chain (None if absent)."""
        try:
            resp = self.stub.GetMetadata(pb.GetMetadataRequest(container_id=container_id),
                                         timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return tx_from_pb(resp.transaction)

    def self_evaluate(
        self,
        container_id: str,
        resources: NodeResources,
        replica: ReplicaReader | None = None,
    ) -> SelfEvaluation | None:
        """Algorithm 2 on the destination: read the metadata (from the destination's own
        replica when given, else from the validator) and evaluate it against `resources`.
        None when no metadata for the container is on the ledger."""
        tx = replica.metadata(container_id) if replica is not None else self.metadata(
            container_id)
        return None if tx is None else self_evaluate(tx.metadata, resources)


class ReplicaReader:
    """Reads one hosted peer identity's local replica (the destination's own copy)."""

    def __init__(self, channel: grpc.Channel, peer_id: str, rpc_timeout_s: float = 5.0) -> None:
        self.stub = pb_grpc.LedgerPeerServiceStub(channel)
        self.peer_id = peer_id
        self._timeout = rpc_timeout_s

    def metadata(self, container_id: str) -> Transaction | None:
        try:
            resp = self.stub.GetMetadata(
                pb.GetMetadataRequest(container_id=container_id, peer_id=self.peer_id),
                timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return tx_from_pb(resp.transaction)


class CentralClient:
    """The baseline: upload signed metadata to one central service, query it back."""

    def __init__(self, channel: grpc.Channel, node_id: str, key: Ed25519PrivateKey,
                 rpc_timeout_s: float = 5.0) -> None:
        self.stub = pb_grpc.CentralMetadataServiceStub(channel)
        self.node_id = node_id
        self._key = key
        self._timeout = rpc_timeout_s

    def put(self, metadata: ContainerMetadata) -> str:
        tx = sign_transaction(metadata, self.node_id, self._key, _wall_ms())
        resp = self.stub.PutMetadata(pb.PutMetadataRequest(transaction=tx_to_pb(tx)),
                                     timeout=self._timeout)
        return str(resp.tx_id)

    def get(self, container_id: str) -> ContainerMetadata | None:
        try:
            resp = self.stub.GetMetadata(pb.GetMetadataRequest(container_id=container_id),
                                         timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return metadata_from_pb(resp.transaction.metadata)


def bootstrap_peer_host(
    host: PeerHost, validator: pb_grpc.LedgerServiceStub, address: str,
    rpc_timeout_s: float = 10.0,
) -> int:
    """Register every hosted identity, pull missing blocks, send confirmations.

    Returns how many confirmations the validator accepted.
    """
    validator.RegisterNode(
        pb.RegisterNodeRequest(
            registrations=[registration_to_pb(r) for r in host.registrations(address)]),
        timeout=rpc_timeout_s,
    )

    def fetch(from_height: int) -> list[Block]:
        resp = validator.GetBlocks(pb.GetBlocksRequest(from_height=from_height, max_blocks=256),
                                   timeout=rpc_timeout_s)
        return [block_from_pb(b) for b in resp.blocks]

    confirmations = []
    for peer_id in host.identities:
        conf = host.catch_up(peer_id, fetch)
        if conf is not None:
            confirmations.append(confirmation_to_pb(conf))
    if not confirmations:
        return 0
    resp = validator.SubmitConfirmations(
        pb.SubmitConfirmationsRequest(confirmations=confirmations), timeout=rpc_timeout_s)
    return int(resp.accepted)
