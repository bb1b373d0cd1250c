"""The Merkle tree a block commits its transactions with: RFC 6962 (leaf and node hashes are
domain separated, so the Bitcoin duplicate-last-leaf mutation does not exist), with audit paths.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.ledger.signing import same_digest, sha256

_MERKLE_LEAF = b"\x00"
_MERKLE_NODE = b"\x01"


def merkle_leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256 of 0x00 + data."""
    return sha256(_MERKLE_LEAF + data)


def _merkle_node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(_MERKLE_NODE + left + right)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over `leaves` (raw leaf data, not yet hashed)."""
    if not leaves:
        return sha256(b"")
    level = [merkle_leaf_hash(leaf) for leaf in leaves]
    return _mth(level)


def _mth(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    split = 1 << ((len(hashes) - 1).bit_length() - 1)  # largest power of two < n
    return _merkle_node_hash(_mth(hashes[:split]), _mth(hashes[split:]))


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path (RFC 6962 section 2.1.1) proving leaves[index] is in merkle_root(leaves)."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    return _path(index, [merkle_leaf_hash(leaf) for leaf in leaves])


def _path(index: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    split = 1 << ((len(hashes) - 1).bit_length() - 1)
    if index < split:
        return [*_path(index, hashes[:split]), _mth(hashes[split:])]
    return [*_path(index - split, hashes[split:]), _mth(hashes[:split])]


def verify_merkle_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an audit path produced by `merkle_proof`."""
    if not 0 <= index < size:
        return False
    fn, sn, node = index, size - 1, merkle_leaf_hash(leaf)
    for sibling in proof:  # RFC 9162 section 2.1.3.2
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            node = _merkle_node_hash(sibling, node)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = _merkle_node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and same_digest(node, root)
