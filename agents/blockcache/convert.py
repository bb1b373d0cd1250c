"""protobuf <-> domain values of the blockcache agent (manifests, grants, cache settings)."""

from __future__ import annotations

from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2 as pb
from agents.security.grant import SignedGrant
from agents.sso.blocks import FileManifest
from agents.sso.cache import Granularity, Policy
from agents.sso.lookup import Source

MAX_MANIFEST_BLOCKS = 65_536

POLICY_TO_PB = {Policy.LRU: pb.CACHE_POLICY_LRU, Policy.LFU: pb.CACHE_POLICY_LFU}
POLICY_FROM_PB = {v: k for k, v in POLICY_TO_PB.items()}
GRANULARITY_TO_PB = {Granularity.BLOCK: pb.GRANULARITY_BLOCK,
                     Granularity.FILE: pb.GRANULARITY_FILE}
GRANULARITY_FROM_PB = {v: k for k, v in GRANULARITY_TO_PB.items()}
SOURCE_TO_PB = {Source.LOCAL: pb.BLOCK_SOURCE_LOCAL, Source.NEIGHBOUR: pb.BLOCK_SOURCE_NEIGHBOUR,
                Source.ORIGIN: pb.BLOCK_SOURCE_ORIGIN}


def manifest_to_pb(manifest: FileManifest) -> pb.FileManifest:
    """A FileManifest as its message."""
    return pb.FileManifest(file_id=manifest.file_id, size=manifest.size,
                           blocks=list(manifest.blocks), block_size=manifest.block_size)


def manifest_from_pb(msg: pb.FileManifest) -> FileManifest:
    """A FileManifest from its message (bounded; digests checked when blocks are)."""
    if len(msg.blocks) > MAX_MANIFEST_BLOCKS:
        raise ValueError(f"manifest of {msg.file_id!r} lists over {MAX_MANIFEST_BLOCKS} blocks")
    return FileManifest(msg.file_id, int(msg.size), tuple(msg.blocks), int(msg.block_size))


def signed_grant_to_pb(grant: SignedGrant) -> pb.SignedGrant:
    """A SignedGrant as its message."""
    return pb.SignedGrant(payload=grant.payload, signature=grant.signature,
                          certificate=grant.certificate)


def signed_grant_from_pb(msg: pb.SignedGrant) -> SignedGrant:
    """A SignedGrant from its message."""
    return SignedGrant(bytes(msg.payload), bytes(msg.signature), bytes(msg.certificate))
