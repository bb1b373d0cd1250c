"""Transactions, blocks and chain verification (BloSM Figure 3 under proof of authority)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.ledger.chain import Chain, seal_block, verify_chain
from agents.ledger.codec import block_from_json, block_to_json
from agents.ledger.errors import (
    AdmissionRefused,
    BadBlockSignature,
    BadTransaction,
    BrokenLink,
    ChainError,
    ForkRefused,
    InvalidMetadata,
    NotAuthority,
)
from agents.ledger.signing import canonical
from agents.ledger.transactions import ContainerMetadata
from tests.unit.ledger.helpers import NOW_MS, World, metadata


def test_canonical_encoding_is_injective_on_field_boundaries() -> None:
    assert canonical(b"t", "ab", "c") != canonical(b"t", "a", "bc")
    assert canonical(b"t", 1) != canonical(b"t", "1")
    assert canonical(b"t", b"x") != canonical(b"u", b"x")
    with pytest.raises(TypeError):
        canonical(b"t", True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source_ip": "not-an-ip"}, "not an IP"),
        ({"container_id": ""}, "must not be empty"),
        ({"total_size": -1}, "between 0"),
        ({"cpu_usage": 1.5}, "integer"),
        ({"gpu_usage": True}, "integer"),
        ({"type": "x" * 300}, "longer"),
        ({"type": "a\nb"}, "control"),
    ],
)
def test_metadata_validation_names_the_bad_field(overrides: dict, message: str) -> None:
    with pytest.raises(InvalidMetadata, match=message):
        metadata(**overrides).validate()


def test_transaction_signature_binds_every_field() -> None:
    w = World()
    tx = w.tx()
    tx.check()
    other_meta = dataclasses.replace(tx.metadata, cpu_usage=tx.metadata.cpu_usage + 1)
    for changed in (
        dataclasses.replace(tx, metadata=other_meta),
        dataclasses.replace(tx, submitter_id="edge-2"),
        dataclasses.replace(tx, nonce=bytes(16)),
        dataclasses.replace(tx, timestamp_ms=tx.timestamp_ms + 1),
    ):
        assert changed.tx_id != tx.tx_id
        with pytest.raises(AdmissionRefused, match="does not verify"):
            changed.check()


def test_sealed_blocks_verify_and_link() -> None:
    w = World()
    w.grow(4)
    assert w.chain.height == 4
    verify_chain(w.chain.blocks, w.authorities)
    tx = w.chain.blocks[2].transactions[1]
    assert w.chain.tx_height(tx.tx_id) == 2
    assert w.chain.find_transaction(tx.tx_id) == tx
    assert w.chain.metadata_for(tx.metadata.container_id) == [tx]


def test_json_round_trip_is_exact() -> None:
    w = World()
    w.grow(1)
    block = w.chain.blocks[1]
    assert block_from_json(block_to_json(block)) == block


def _mutations(block_json: str, spare_tx: dict) -> list[tuple[str, str]]:
    """Every single-field change of a serialised block: (path, mutated JSON)."""
    original = json.loads(block_json)
    out: list[tuple[str, str]] = []

    def mutate(value: object) -> object:
        if isinstance(value, bool):
            raise AssertionError("no booleans in a block")
        if isinstance(value, int):
            return value + 1
        if isinstance(value, str):
            try:
                raw = bytearray(bytes.fromhex(value))
            except ValueError:
                return value + "x"
            if not raw:
                return "00"
            raw[0] ^= 0x01
            return raw.hex()
        raise AssertionError(type(value))

    def walk(node: object, path: list[object]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, [*path, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, [*path, i])
        else:
            copy = json.loads(block_json)
            target = copy
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = mutate(node)
            out.append(("/".join(map(str, path)), json.dumps(copy)))

    walk(original, [])
    # structural single changes: drop, duplicate and swap transactions
    txs = original["transactions"]
    structural = [("transactions:add", [*txs, spare_tx])]
    if len(txs) >= 2:
        structural += [
            ("transactions:drop", txs[1:]),
            ("transactions:dup", [*txs, txs[0]]),
            ("transactions:swap", [txs[1], txs[0], *txs[2:]]),
        ]
    for name, new_txs in structural:
        copy = dict(original, transactions=new_txs)
        out.append((name, json.dumps(copy)))
    return out


@pytest.mark.parametrize("target_height", [0, 2, 4])
def test_every_single_field_tamper_is_detected(target_height: int) -> None:
    w = World()
    w.grow(4, n_txs=3)
    blocks = list(w.chain.blocks)
    spare = json.loads(block_to_json(w.next_block(1)))["transactions"][0]
    mutations = _mutations(block_to_json(blocks[target_height]), spare)
    assert len(mutations) > (40 if target_height else 8)
    for path, tampered in mutations:
        chain = list(blocks)
        chain[target_height] = block_from_json(tampered)
        with pytest.raises(ChainError) as err:
            verify_chain(chain, w.authorities)
        assert err.value.height in (target_height, target_height + 1), path


def test_block_from_non_authority_is_refused() -> None:
    w = World()
    w.grow(1)
    mallory = Ed25519PrivateKey.generate()
    with pytest.raises(NotAuthority, match="'mallory' is not an authority"):
        w.chain.append(w.next_block(key=mallory, validator_id="mallory"))
    with pytest.raises(BadBlockSignature):
        w.chain.append(w.next_block(key=mallory, validator_id="validator"))
    assert w.chain.height == 1


def test_resealed_tampered_past_block_breaks_the_next_link() -> None:
    w = World()
    w.grow(3)
    b = w.chain.blocks[1]
    forged_txs = (dataclasses.replace(b.transactions[0], signature=b.transactions[1].signature),)
    # even the real validator re-signing a changed past block cannot hide it: block 2 links to
    # the old hash
    resealed = seal_block(height=1, prev_hash=b.prev_hash, transactions=b.transactions[1:],
                          validator_id="validator", key=w.validator_key, now_ms=NOW_MS)
    chain = list(w.chain.blocks)
    chain[1] = resealed
    with pytest.raises(BrokenLink) as err:
        verify_chain(chain, w.authorities)
    assert err.value.height == 2
    bad = seal_block(height=1, prev_hash=b.prev_hash, transactions=forged_txs,
                     validator_id="validator", key=w.validator_key, now_ms=NOW_MS)
    with pytest.raises(BadTransaction, match="does not verify"):
        verify_chain([chain[0], bad], w.authorities)


def test_duplicate_transaction_across_blocks_is_refused() -> None:
    w = World()
    w.grow(1)
    head = w.chain.head
    assert head is not None
    replayed = seal_block(height=2, prev_hash=head.block_hash, transactions=head.transactions[:1],
                          validator_id="validator", key=w.validator_key, now_ms=NOW_MS)
    with pytest.raises(BadTransaction, match="already recorded at height 1"):
        w.chain.append(replayed)


def test_chain_must_start_with_a_clean_genesis_and_have_no_gaps() -> None:
    w = World()
    w.grow(3)
    with pytest.raises(BrokenLink, match="start at height 0"):
        verify_chain(w.chain.blocks[1:], w.authorities)
    with pytest.raises(BrokenLink, match="expected height 2"):
        verify_chain([w.chain.blocks[0], w.chain.blocks[1], w.chain.blocks[3]], w.authorities)


def test_offer_is_idempotent_and_refuses_forks() -> None:
    w = World()
    w.grow(2)
    replica = Chain(w.authorities)
    for b in w.chain.blocks:
        assert replica.offer(b) is True
    assert replica.offer(w.chain.blocks[1]) is False  # a replayed push changes nothing
    other = seal_block(height=1, prev_hash=w.chain.blocks[0].block_hash, transactions=[],
                       validator_id="validator", key=w.validator_key, now_ms=NOW_MS)
    with pytest.raises(ForkRefused):
        replica.offer(other)
    gap = seal_block(height=9, prev_hash=w.chain.blocks[2].block_hash, transactions=[],
                     validator_id="validator", key=w.validator_key, now_ms=NOW_MS)
    with pytest.raises(BrokenLink, match="expected height 3"):  # the peer must catch up first
        replica.offer(gap)


def test_metadata_is_frozen() -> None:
    m: ContainerMetadata = metadata()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.cpu_usage = 1  # type: ignore[misc]
