"""RFC 6962 Merkle tree over transactions."""

from __future__ import annotations

import hashlib

import pytest

from agents.ledger.merkle import merkle_proof, merkle_root, verify_merkle_proof


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_small_trees_match_the_rfc_definition() -> None:
    a, b, c = b"a", b"b", b"c"
    la, lb, lc = (_h(b"\x00" + x) for x in (a, b, c))
    assert merkle_root([]) == _h(b"")
    assert merkle_root([a]) == la
    assert merkle_root([a, b]) == _h(b"\x01" + la + lb)
    assert merkle_root([a, b, c]) == _h(b"\x01" + _h(b"\x01" + la + lb) + lc)


def test_duplicated_last_leaf_changes_the_root() -> None:
    # Bitcoin's tree gives [a,b,c] and [a,b,c,c] the same root (CVE-2012-2459); RFC 6962 not.
    assert merkle_root([b"a", b"b", b"c"]) != merkle_root([b"a", b"b", b"c", b"c"])


def test_order_matters() -> None:
    assert merkle_root([b"a", b"b"]) != merkle_root([b"b", b"a"])


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_every_audit_path_verifies_and_only_for_its_leaf(size: int) -> None:
    leaves = [f"tx{i}".encode() for i in range(size)]
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        proof = merkle_proof(leaves, i)
        assert verify_merkle_proof(leaf, i, size, proof, root)
        assert not verify_merkle_proof(b"other", i, size, proof, root)
        if size > 1:
            assert not verify_merkle_proof(leaf, (i + 1) % size, size, proof, root)
            assert not verify_merkle_proof(leaf, i, size, proof[:-1], root)
    with pytest.raises(IndexError):
        merkle_proof(leaves, size)
