"""Blocks and the verified chain (proof of authority; seed 001, section 4.1, Figure 3).

* A **block** carries the ordered transactions, their Merkle root, the previous block hash, a
  nonce, its height, a timestamp, the validator id, the block hash and the validator's signature
  over that hash.  BloSM's nonce comes from a proof-of-work step; under proof of authority there
  is no puzzle, so the nonce is 16 random bytes chosen by the validator that make every block
  hash unique (a confirmation of one block can never count for another).
* **Chain verification** recomputes every hash, Merkle root, link and signature and raises a
  `ChainError` subclass naming the height and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.ledger.errors import (
    BadBlockSignature,
    BadTransaction,
    BlockHashMismatch,
    BrokenLink,
    ForkRefused,
    LedgerError,
    MerkleRootMismatch,
    NotAuthority,
)
from agents.ledger.merkle import merkle_root
from agents.ledger.signing import (
    HASH_LEN,
    NONCE_LEN,
    ZERO_HASH,
    canonical,
    same_digest,
    sha256,
    verify_signature,
)
from agents.ledger.transactions import Transaction

MAX_BLOCK_TXS = 4096

_TAG_BLOCK = b"edgeferry.ledger.v1.block"
_TAG_BLOCK_SIG = b"edgeferry.ledger.v1.block-signature"


@dataclass(frozen=True)
class Block:
    """A sealed block: header fields, the ordered transactions, the hash and the signature."""

    height: int
    prev_hash: bytes
    merkle_root: bytes
    timestamp_ms: int
    nonce: bytes
    validator_id: str
    transactions: tuple[Transaction, ...]
    block_hash: bytes
    signature: bytes

    def header_bytes(self) -> bytes:
        """Hash input: {block data (via Merkle root) + previous hash + nonce} (Figure 3)."""
        return canonical(
            _TAG_BLOCK,
            self.height,
            self.prev_hash,
            self.merkle_root,
            self.timestamp_ms,
            self.nonce,
            self.validator_id,
            len(self.transactions),
        )

    def compute_hash(self) -> bytes:
        """SHA-256 of `header_bytes()`: what `block_hash` must be."""
        return sha256(self.header_bytes())

    def compute_merkle_root(self) -> bytes:
        """Merkle root of the transactions: what `merkle_root` must be."""
        return merkle_root([tx.leaf_bytes() for tx in self.transactions])

    @property
    def hash_hex(self) -> str:
        """The block hash as hex text."""
        return self.block_hash.hex()


def _block_signing_bytes(block_hash: bytes) -> bytes:
    return canonical(_TAG_BLOCK_SIG, block_hash)


def seal_block(
    *,
    height: int,
    prev_hash: bytes,
    transactions: Sequence[Transaction],
    validator_id: str,
    key: Ed25519PrivateKey,
    now_ms: int,
    nonce: bytes | None = None,
) -> Block:
    """The authority's job: order the transactions, commit to them, hash, sign."""
    if len(transactions) > MAX_BLOCK_TXS:
        raise ValueError(f"a block holds at most {MAX_BLOCK_TXS} transactions")
    txs = tuple(transactions)
    draft = Block(
        height=height,
        prev_hash=prev_hash,
        merkle_root=merkle_root([tx.leaf_bytes() for tx in txs]),
        timestamp_ms=now_ms,
        nonce=nonce if nonce is not None else os.urandom(NONCE_LEN),
        validator_id=validator_id,
        transactions=txs,
        block_hash=b"",
        signature=b"",
    )
    block_hash = draft.compute_hash()
    signature = key.sign(_block_signing_bytes(block_hash))
    return replace(draft, block_hash=block_hash, signature=signature)


def genesis_block(validator_id: str, key: Ed25519PrivateKey, now_ms: int) -> Block:
    """Height 0, no transactions, previous hash all zero; its hash is the chain id."""
    return seal_block(
        height=0,
        prev_hash=ZERO_HASH,
        transactions=(),
        validator_id=validator_id,
        key=key,
        now_ms=now_ms,
    )


Authorities = Mapping[str, bytes]  # validator id -> raw Ed25519 public key


def verify_block(block: Block, authorities: Authorities) -> None:
    """Check one block on its own: authority, signature, hash, Merkle root, transactions."""
    h = block.height
    if block.validator_id not in authorities:
        raise NotAuthority(h, f"validator {block.validator_id!r} is not an authority of this chain")
    if len(block.prev_hash) != HASH_LEN or len(block.nonce) != NONCE_LEN:
        raise BlockHashMismatch(h, "previous hash or nonce has the wrong length")
    if not same_digest(block.compute_hash(), block.block_hash):
        raise BlockHashMismatch(h, "block hash does not match the header (header tampered?)")
    if not verify_signature(authorities[block.validator_id], block.signature,
                   _block_signing_bytes(block.block_hash)):
        raise BadBlockSignature(h, f"signature of {block.validator_id!r} does not verify")
    if not same_digest(block.compute_merkle_root(), block.merkle_root):
        raise MerkleRootMismatch(h, "Merkle root does not match the transactions")
    seen: set[str] = set()
    for i, tx in enumerate(block.transactions):
        try:
            tx.check()
        except LedgerError as exc:
            raise BadTransaction(h, f"transaction {i}: {exc}") from exc
        if tx.tx_id in seen:
            raise BadTransaction(h, f"transaction {i} appears twice")
        seen.add(tx.tx_id)


def verify_link(prev: Block | None, block: Block) -> None:
    """Check that `block` extends `prev` (None: `block` must be a genesis block)."""
    if prev is None:
        if block.height != 0:
            raise BrokenLink(block.height, "the chain must start at height 0")
        if block.prev_hash != ZERO_HASH:
            raise BrokenLink(0, "the genesis block must have an all-zero previous hash")
        if block.transactions:
            raise BrokenLink(0, "the genesis block must not carry transactions")
        return
    if block.height != prev.height + 1:
        raise BrokenLink(block.height, f"expected height {prev.height + 1}")
    if not same_digest(block.prev_hash, prev.block_hash):
        raise BrokenLink(block.height, "previous hash does not name the block before it")


class Chain:
    """An in-memory, verified chain.  Every block goes through `append` (verified first)."""

    def __init__(self, authorities: Authorities) -> None:
        if not authorities:
            raise ValueError("a proof-of-authority chain needs at least one authority key")
        self.authorities: dict[str, bytes] = dict(authorities)
        self.blocks: list[Block] = []
        self._tx_height: dict[str, int] = {}

    @classmethod
    def from_blocks(cls, blocks: Iterable[Block], authorities: Authorities) -> Chain:
        """Re-verify a whole stored chain; raises the first ChainError found."""
        chain = cls(authorities)
        for block in blocks:
            chain.append(block)
        return chain

    @property
    def head(self) -> Block | None:
        """The newest block; None when empty."""
        return self.blocks[-1] if self.blocks else None

    @property
    def height(self) -> int:
        """Height of the head block; -1 when empty."""
        return len(self.blocks) - 1

    @property
    def chain_id(self) -> bytes:
        """The genesis block's hash (LedgerError when there is none yet)."""
        if not self.blocks:
            raise LedgerError("the chain has no genesis block yet")
        return self.blocks[0].block_hash

    def check_append(self, block: Block) -> None:
        """Verify `block` as the next block, without appending it."""
        verify_block(block, self.authorities)
        verify_link(self.head, block)
        for i, tx in enumerate(block.transactions):
            if tx.tx_id in self._tx_height:
                raise BadTransaction(
                    block.height,
                    f"transaction {i} already recorded at height {self._tx_height[tx.tx_id]}",
                )

    def append(self, block: Block) -> None:
        """Verify `block` as the next block and append it (ChainError if it does not fit)."""
        self.check_append(block)
        self.append_checked(block)

    def append_checked(self, block: Block) -> None:
        """Append a block that `check_append` accepted in the same critical section (lets a
        caller persist between verifying and appending without verifying twice)."""
        if block.height != len(self.blocks):
            raise BrokenLink(block.height, f"expected height {len(self.blocks)}")
        self.blocks.append(block)
        for tx in block.transactions:
            self._tx_height[tx.tx_id] = block.height

    def offer(self, block: Block) -> bool:
        """Accept a pushed block: True if appended, False if already held (a harmless replay).

        Raises ForkRefused when a different block is offered for a held height, and the usual
        ChainError when the block does not verify or does not extend the head.
        """
        if 0 <= block.height <= self.height:
            held = self.blocks[block.height]
            if same_digest(held.block_hash, block.block_hash) and held == block:
                return False
            raise ForkRefused(block.height, "a different block is already held at this height")
        self.append(block)
        return True

    def tx_height(self, tx_id: str) -> int | None:
        """Height of the block recording `tx_id`; None if not recorded."""
        return self._tx_height.get(tx_id)

    def find_transaction(self, tx_id: str) -> Transaction | None:
        """The recorded transaction `tx_id`; None if not recorded."""
        h = self._tx_height.get(tx_id)
        if h is None:
            return None
        return next(tx for tx in self.blocks[h].transactions if tx.tx_id == tx_id)

    def metadata_for(self, container_id: str) -> list[Transaction]:
        """Every recorded transaction for `container_id`, oldest first."""
        return [
            tx for b in self.blocks for tx in b.transactions
            if tx.metadata.container_id == container_id
        ]


def verify_chain(blocks: Sequence[Block], authorities: Authorities) -> None:
    """Raise the first ChainError in `blocks` (genesis first)."""
    Chain.from_blocks(blocks, authorities)
