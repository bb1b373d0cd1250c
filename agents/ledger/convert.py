"""Protobuf messages <-> ledger domain objects (no logic beyond field mapping and range checks)."""

from __future__ import annotations

from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as pb
from agents.ledger.chain import Block
from agents.ledger.consensus import Confirmation, NodeRole, Registration
from agents.ledger.transactions import ContainerMetadata, Transaction

_ROLE_TO_PB = {NodeRole.PEER: pb.NODE_ROLE_PEER, NodeRole.SUBMITTER: pb.NODE_ROLE_SUBMITTER}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()}


def metadata_to_pb(m: ContainerMetadata) -> pb.ContainerMetadata:
    return pb.ContainerMetadata(
        source_ip=m.source_ip,
        container_id=m.container_id,
        total_size=m.total_size,
        gpu_usage=m.gpu_usage,
        cpu_usage=m.cpu_usage,
        type=m.type,
    )


def metadata_from_pb(m: pb.ContainerMetadata) -> ContainerMetadata:
    return ContainerMetadata(
        source_ip=m.source_ip,
        container_id=m.container_id,
        total_size=m.total_size,
        gpu_usage=m.gpu_usage,
        cpu_usage=m.cpu_usage,
        type=m.type,
    )


def tx_to_pb(tx: Transaction) -> pb.Transaction:
    return pb.Transaction(
        metadata=metadata_to_pb(tx.metadata),
        submitter_id=tx.submitter_id,
        submitter_key=tx.submitter_key,
        nonce=tx.nonce,
        timestamp_ms=tx.timestamp_ms,
        signature=tx.signature,
    )


def tx_from_pb(tx: pb.Transaction) -> Transaction:
    return Transaction(
        metadata=metadata_from_pb(tx.metadata),
        submitter_id=tx.submitter_id,
        submitter_key=bytes(tx.submitter_key),
        nonce=bytes(tx.nonce),
        timestamp_ms=tx.timestamp_ms,
        signature=bytes(tx.signature),
    )


def block_to_pb(b: Block) -> pb.Block:
    return pb.Block(
        height=b.height,
        prev_hash=b.prev_hash,
        merkle_root=b.merkle_root,
        timestamp_ms=b.timestamp_ms,
        nonce=b.nonce,
        validator_id=b.validator_id,
        transactions=[tx_to_pb(tx) for tx in b.transactions],
        block_hash=b.block_hash,
        signature=b.signature,
    )


def block_from_pb(b: pb.Block) -> Block:
    return Block(
        height=b.height,
        prev_hash=bytes(b.prev_hash),
        merkle_root=bytes(b.merkle_root),
        timestamp_ms=b.timestamp_ms,
        nonce=bytes(b.nonce),
        validator_id=b.validator_id,
        transactions=tuple(tx_from_pb(tx) for tx in b.transactions),
        block_hash=bytes(b.block_hash),
        signature=bytes(b.signature),
    )


def confirmation_to_pb(c: Confirmation) -> pb.Confirmation:
    return pb.Confirmation(
        peer_id=c.peer_id,
        chain_id=c.chain_id,
        height=c.height,
        block_hash=c.block_hash,
        seq=c.seq,
        signature=c.signature,
    )


def confirmation_from_pb(c: pb.Confirmation) -> Confirmation:
    return Confirmation(
        peer_id=c.peer_id,
        chain_id=bytes(c.chain_id),
        height=c.height,
        block_hash=bytes(c.block_hash),
        seq=c.seq,
        signature=bytes(c.signature),
    )


def registration_to_pb(r: Registration) -> pb.Registration:
    return pb.Registration(
        node_id=r.node_id,
        public_key=r.public_key,
        role=_ROLE_TO_PB[r.role],
        address=r.address,
        seq=r.seq,
        signature=r.signature,
    )


def registration_from_pb(r: pb.Registration) -> Registration:
    return Registration(
        node_id=r.node_id,
        public_key=bytes(r.public_key),
        role=_ROLE_FROM_PB.get(r.role, "unspecified"),
        address=r.address,
        seq=r.seq,
        signature=bytes(r.signature),
    )
