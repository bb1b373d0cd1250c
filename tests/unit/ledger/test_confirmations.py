"""Admission of transactions and the validator's confirmation bookkeeping."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.ledger.chain import Chain
from agents.ledger.consensus import (
    Admission,
    ConfirmationBook,
    NodeRole,
    next_sequence,
    sign_confirmation,
    sign_registration,
)
from agents.ledger.errors import AdmissionRefused, ConfirmationRefused, ReplayDetected
from agents.ledger.signing import public_key_bytes
from agents.ledger.transactions import sign_transaction
from tests.unit.ledger.helpers import NOW_MS, World, metadata


def _replica(w: World, upto: int) -> Chain:
    c = Chain(w.authorities)
    for b in w.chain.blocks[: upto + 1]:
        c.append(b)
    return c


def test_confirmations_count_peers_that_verified_up_to_a_height() -> None:
    w = World()
    w.grow(3)
    book = ConfirmationBook()
    keys = {f"p{i}": Ed25519PrivateKey.generate() for i in range(4)}
    for pid, k in keys.items():
        book.register(pid, public_key_bytes(k), "")
    assert book.total_nodes() == 4
    assert book.confirmations_at(1) == 0
    book.record(sign_confirmation("p0", keys["p0"], _replica(w, 3), seq=1), w.chain)
    book.record(sign_confirmation("p1", keys["p1"], _replica(w, 2), seq=1), w.chain)
    book.record(sign_confirmation("p2", keys["p2"], _replica(w, 1), seq=1), w.chain)
    assert [book.confirmations_at(h) for h in range(4)] == [3, 3, 2, 1]
    # an older confirmation later does not lower a peer's height
    assert book.record(sign_confirmation("p0", keys["p0"], _replica(w, 1), seq=2), w.chain) is False
    assert book.confirmations_at(3) == 1


def test_confirmation_defects_are_refused() -> None:
    w = World()
    w.grow(2)
    book = ConfirmationBook()
    k = Ed25519PrivateKey.generate()
    book.register("p", public_key_bytes(k), "")
    conf = sign_confirmation("p", k, w.chain, seq=5)
    book.record(conf, w.chain)
    with pytest.raises(ReplayDetected, match="reuses sequence 5"):
        book.record(conf, w.chain)
    with pytest.raises(ReplayDetected):
        book.record(sign_confirmation("p", k, w.chain, seq=4), w.chain)
    with pytest.raises(ConfirmationRefused, match="not registered"):
        book.record(sign_confirmation("q", k, w.chain, seq=9), w.chain)
    with pytest.raises(ConfirmationRefused, match="does not verify"):
        book.record(sign_confirmation("p", Ed25519PrivateKey.generate(), w.chain, 9), w.chain)
    forged = dataclasses.replace(sign_confirmation("p", k, w.chain, seq=10), height=1)
    with pytest.raises(ConfirmationRefused, match="does not verify"):
        book.record(forged, w.chain)
    # a correctly signed confirmation of a block this chain does not hold
    other = World()
    other.authorities = w.authorities
    with pytest.raises(ConfirmationRefused, match="another chain"):
        book.record(sign_confirmation("p", k, other.chain, seq=11), w.chain)
    w2 = World()
    w2.grow(5)
    with pytest.raises(ConfirmationRefused, match="unknown height 5"):
        bad = dataclasses.replace(sign_confirmation("p", k, w2.chain, seq=12),
                                  chain_id=w.chain.chain_id, signature=b"")
        bad = dataclasses.replace(bad, signature=k.sign(bad.signing_bytes()))
        book.record(bad, w.chain)
    assert book.peers["p"].last_seq == 5


def test_sequence_is_strictly_increasing_and_clock_anchored() -> None:
    assert next_sequence(0, 1_000) == 1_000
    assert next_sequence(5_000, 1_000) == 5_001


def test_admission_gate() -> None:
    w = World()
    gate = Admission(members={"edge-1": public_key_bytes(w.submitter_key)}, window_ms=1000)
    tx = w.tx()
    never = lambda _tx_id: False  # noqa: E731
    gate.check(tx, NOW_MS, never)
    with pytest.raises(AdmissionRefused, match="already submitted"):
        gate.check(tx, NOW_MS, lambda tx_id: tx_id == tx.tx_id)
    with pytest.raises(AdmissionRefused, match="window"):
        gate.check(tx, NOW_MS + 10_000, never)
    stranger = sign_transaction(metadata(), "edge-9", Ed25519PrivateKey.generate(), NOW_MS)
    with pytest.raises(AdmissionRefused, match="not registered"):
        gate.check(stranger, NOW_MS, never)
    impostor = sign_transaction(metadata(), "edge-1", Ed25519PrivateKey.generate(), NOW_MS)
    with pytest.raises(AdmissionRefused, match="another key"):
        gate.check(impostor, NOW_MS, never)
    bad_meta = dataclasses.replace(tx, metadata=metadata(source_ip="nowhere"))
    with pytest.raises(AdmissionRefused):
        gate.check(bad_meta, NOW_MS, never)


def test_registration_proves_key_possession() -> None:
    k = Ed25519PrivateKey.generate()
    reg = sign_registration("p1", k, NodeRole.PEER, "127.0.0.1:5000", seq=1)
    reg.check()
    with pytest.raises(AdmissionRefused, match="not signed"):
        dataclasses.replace(reg, public_key=public_key_bytes(Ed25519PrivateKey.generate())).check()
    with pytest.raises(AdmissionRefused, match="not signed"):
        dataclasses.replace(reg, address="10.0.0.66:5000").check()
    with pytest.raises(AdmissionRefused, match="role"):
        dataclasses.replace(reg, role="validator").check()
