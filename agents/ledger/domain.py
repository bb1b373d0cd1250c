"""Proof-of-authority metadata ledger (seed 001, BloSM), pure domain logic.

No grpc, docker or ansible here: this module is the ledger's rules, used by the gRPC agent
(`servicer.py`), the SQLite store (`store.py`) and unit tests alike.

What is built (BloSM section 4.1, Figure 3, Algorithms 1-2):

* A **transaction** is container metadata {source_ip, container_id, total_size, gpu_usage,
  cpu_usage, type}, signed (Ed25519) by the submitting node over a canonical, length-prefixed
  encoding that also binds the submitter id, a fresh 16-byte nonce and a timestamp (so a captured
  transaction cannot be submitted twice: the validator refuses a known id or a stale timestamp).
* A **block** carries the ordered transactions, their Merkle root (RFC 6962 tree: leaf and node
  hashes are domain separated, so the Bitcoin duplicate-last-leaf mutation does not exist), the
  previous block hash, a nonce, its height, a timestamp, the validator id, the block hash and the
  validator's signature over that hash.  BloSM's nonce comes from a proof-of-work step; under
  proof of authority there is no puzzle, so the nonce is 16 random bytes chosen by the validator
  that make every block hash unique (a confirmation of one block can never count for another).
* **Chain verification** recomputes every hash, Merkle root, link and signature and raises a
  `ChainError` subclass naming the height and what is wrong.
* **Confirmations**: a peer confirms a block only after verifying it and every block before it,
  so a confirmation of height h confirms every transaction at height <= h.  Confirmations are
  signed by the peer's own key and carry a strictly increasing sequence number per peer (the
  replay guard), the chain id (genesis hash), the height and the block hash.
* **Algorithm 1** (`write_to_blockchain`) and **Algorithm 2** (`self_evaluate`), see their
  docstrings for how the paper's pseudocode is read.

Units (integers, so the canonical encoding is exact): total_size in bytes, cpu_usage in
millicores (1000 = one core), gpu_usage in milli-GPU (1000 = one whole GPU).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import os
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HASH_LEN = 32
NONCE_LEN = 16
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64
ZERO_HASH = b"\x00" * HASH_LEN
MAX_TEXT = 256  # longest id / ip / type string accepted
MAX_BLOCK_TXS = 4096
DEFAULT_QUORUM = 0.9  # Algorithm 1, line 23
DEFAULT_TX_WINDOW_MS = 5 * 60 * 1000  # a transaction older / newer than this is refused

_TAG_TX = b"edgeferry.ledger.v1.tx"
_TAG_BLOCK = b"edgeferry.ledger.v1.block"
_TAG_BLOCK_SIG = b"edgeferry.ledger.v1.block-signature"
_TAG_CONF = b"edgeferry.ledger.v1.confirmation"
_TAG_REG = b"edgeferry.ledger.v1.registration"
_MERKLE_LEAF = b"\x00"
_MERKLE_NODE = b"\x01"


# --------------------------------------------------------------------------------------- errors


class LedgerError(Exception):
    """Base class of every ledger rule violation; `str(err)` is one line."""


class InvalidMetadata(LedgerError):
    """Container metadata outside the accepted ranges."""


class ChainError(LedgerError):
    """A block or chain failed verification.  `height` names the offending block."""

    def __init__(self, height: int, message: str) -> None:
        super().__init__(f"block {height}: {message}")
        self.height = height


class BlockHashMismatch(ChainError):
    """The stored block hash is not the hash of the block's header."""


class MerkleRootMismatch(ChainError):
    """The Merkle root does not match the block's transactions."""


class BrokenLink(ChainError):
    """prev_hash does not name the previous block, or the height is out of sequence."""


class NotAuthority(ChainError):
    """The block names a validator that is not an authority of this chain."""


class BadBlockSignature(ChainError):
    """The validator signature over the block hash does not verify."""


class BadTransaction(ChainError):
    """A transaction inside the block is malformed, badly signed or duplicated."""


class ForkRefused(ChainError):
    """A different block is offered for a height this node already holds."""


class AdmissionRefused(LedgerError):
    """The validator refuses a submitted transaction (unknown submitter, stale, duplicate)."""


class ConfirmationRefused(LedgerError):
    """A confirmation is badly signed, from an unknown peer, or names an unknown block."""


class ReplayDetected(ConfirmationRefused, AdmissionRefused):
    """A transaction, confirmation or registration that was already seen (a replay)."""


# ------------------------------------------------------------------------------ canonical bytes


def _field(value: str | int | bytes) -> bytes:
    """One typed, length-prefixed field: the encoding of a tuple of fields is injective."""
    if isinstance(value, bool):  # bool is an int subclass; never silently accept it
        raise TypeError("booleans are not canonical fields")
    if isinstance(value, int):
        return b"i" + struct.pack(">q", value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return b"s" + struct.pack(">I", len(raw)) + raw
    if isinstance(value, bytes):
        return b"b" + struct.pack(">I", len(value)) + value
    raise TypeError(f"unsupported canonical field type {type(value).__name__}")


def canonical(tag: bytes, *fields: str | int | bytes) -> bytes:
    """Domain-separated canonical encoding used for every hash and signature in the ledger."""
    return _field(tag) + struct.pack(">I", len(fields)) + b"".join(_field(f) for f in fields)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Raw 32-byte Ed25519 public key."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != PUBLIC_KEY_LEN:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_LEN} bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _verify(public_key: bytes | Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key = load_public_key(public_key) if isinstance(public_key, bytes) else public_key
        key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def same_digest(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of hashes and tags."""
    return hmac.compare_digest(a, b)


# ------------------------------------------------------------------------------------ metadata


def _check_text(name: str, value: str, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidMetadata(f"{name} must be text")
    if not value and not allow_empty:
        raise InvalidMetadata(f"{name} must not be empty")
    if len(value) > MAX_TEXT:
        raise InvalidMetadata(f"{name} is longer than {MAX_TEXT} characters")
    if any(ord(c) < 0x20 for c in value):
        raise InvalidMetadata(f"{name} contains control characters")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMetadata(f"{name} must be an integer")
    if not 0 <= value < 2**63:
        raise InvalidMetadata(f"{name} must be between 0 and 2^63-1, got {value}")


@dataclass(frozen=True)
class ContainerMetadata:
    """One BloSM transaction payload (Figure 3 plus Algorithm 1's `type`)."""

    source_ip: str
    container_id: str
    total_size: int  # bytes
    gpu_usage: int  # milli-GPU, 1000 = one GPU
    cpu_usage: int  # millicores, 1000 = one core
    type: str  # application type, compared by Algorithm 2

    def validate(self) -> None:
        _check_text("source_ip", self.source_ip)
        try:
            ipaddress.ip_address(self.source_ip)
        except ValueError as exc:
            raise InvalidMetadata(f"source_ip {self.source_ip!r} is not an IP address") from exc
        _check_text("container_id", self.container_id)
        _check_text("type", self.type)
        _check_count("total_size", self.total_size)
        _check_count("gpu_usage", self.gpu_usage)
        _check_count("cpu_usage", self.cpu_usage)

    def fields(self) -> tuple[str | int, ...]:
        return (
            self.source_ip,
            self.container_id,
            self.total_size,
            self.gpu_usage,
            self.cpu_usage,
            self.type,
        )


# -------------------------------------------------------------------------------- transactions


@dataclass(frozen=True)
class Transaction:
    """Container metadata signed by the node that submits it."""

    metadata: ContainerMetadata
    submitter_id: str
    submitter_key: bytes  # raw Ed25519 public key
    nonce: bytes  # 16 random bytes
    timestamp_ms: int
    signature: bytes

    def signing_bytes(self) -> bytes:
        return canonical(
            _TAG_TX,
            *self.metadata.fields(),
            self.submitter_id,
            self.submitter_key,
            self.nonce,
            self.timestamp_ms,
        )

    @property
    def tx_id(self) -> str:
        """Hex SHA-256 of the signed content (independent of the signature bytes)."""
        return sha256(self.signing_bytes()).hex()

    def leaf_bytes(self) -> bytes:
        """What the Merkle tree commits to: the signed content and the signature."""
        return self.signing_bytes() + _field(self.signature)

    def check(self) -> None:
        """Raise InvalidMetadata / AdmissionRefused unless well formed and correctly signed."""
        self.metadata.validate()
        _check_text("submitter_id", self.submitter_id)
        if len(self.submitter_key) != PUBLIC_KEY_LEN:
            raise AdmissionRefused("submitter key is not a raw Ed25519 public key")
        if len(self.nonce) != NONCE_LEN:
            raise AdmissionRefused(f"transaction nonce must be {NONCE_LEN} bytes")
        if len(self.signature) != SIGNATURE_LEN:
            raise AdmissionRefused("transaction signature has the wrong length")
        if not _verify(self.submitter_key, self.signature, self.signing_bytes()):
            raise AdmissionRefused(f"transaction {self.tx_id[:16]} signature does not verify")


def sign_transaction(
    metadata: ContainerMetadata,
    submitter_id: str,
    key: Ed25519PrivateKey,
    now_ms: int,
    nonce: bytes | None = None,
) -> Transaction:
    """Build and sign a transaction (Algorithm 1, lines 9-15: meta + source node identity)."""
    metadata.validate()
    unsigned = Transaction(
        metadata=metadata,
        submitter_id=submitter_id,
        submitter_key=public_key_bytes(key),
        nonce=nonce if nonce is not None else os.urandom(NONCE_LEN),
        timestamp_ms=now_ms,
        signature=b"",
    )
    return replace(unsigned, signature=key.sign(unsigned.signing_bytes()))


# ---------------------------------------------------------------------------------- Merkle tree


def merkle_leaf_hash(data: bytes) -> bytes:
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


# --------------------------------------------------------------------------------------- blocks


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
        return sha256(self.header_bytes())

    def compute_merkle_root(self) -> bytes:
        return merkle_root([tx.leaf_bytes() for tx in self.transactions])

    @property
    def hash_hex(self) -> str:
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
    if not _verify(authorities[block.validator_id], block.signature,
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
        return self.blocks[-1] if self.blocks else None

    @property
    def height(self) -> int:
        """Height of the head block; -1 when empty."""
        return len(self.blocks) - 1

    @property
    def chain_id(self) -> bytes:
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
        return self._tx_height.get(tx_id)

    def find_transaction(self, tx_id: str) -> Transaction | None:
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


# ------------------------------------------------------------------------------------ admission


@dataclass
class Admission:
    """The validator's gate for submitted transactions (registered submitter, fresh, new)."""

    members: dict[str, bytes] = field(default_factory=dict)  # submitter id -> public key
    window_ms: int = DEFAULT_TX_WINDOW_MS

    def check(self, tx: Transaction, now_ms: int, known: Callable[[str], bool]) -> None:
        try:
            tx.check()
        except InvalidMetadata as exc:
            raise AdmissionRefused(str(exc)) from exc
        registered = self.members.get(tx.submitter_id)
        if registered is None:
            raise AdmissionRefused(f"submitter {tx.submitter_id!r} is not registered")
        if not same_digest(registered, tx.submitter_key):
            raise AdmissionRefused(f"submitter {tx.submitter_id!r} signed with another key")
        if abs(now_ms - tx.timestamp_ms) > self.window_ms:
            raise AdmissionRefused("transaction timestamp is outside the accepted window")
        if known(tx.tx_id):
            raise ReplayDetected(f"transaction {tx.tx_id[:16]} was already submitted")


# --------------------------------------------------------------------------------- registration


class NodeRole:
    PEER = "peer"  # holds a replica, receives blocks, confirms; counts in total_nodes()
    SUBMITTER = "submitter"  # may submit transactions only (e.g. an SMF)


@dataclass(frozen=True)
class Registration:
    """A node's signed request to join: proves possession of its key; seq is the replay guard."""

    node_id: str
    public_key: bytes
    role: str
    address: str  # host:port where a peer accepts blocks ("" for submitters / pull-only)
    seq: int
    signature: bytes

    def signing_bytes(self) -> bytes:
        return canonical(_TAG_REG, self.node_id, self.public_key, self.role, self.address, self.seq)

    def check(self) -> None:
        _check_text("node_id", self.node_id)
        _check_text("address", self.address, allow_empty=True)
        if self.role not in (NodeRole.PEER, NodeRole.SUBMITTER):
            raise AdmissionRefused(f"unknown node role {self.role!r}")
        if not _verify(self.public_key, self.signature, self.signing_bytes()):
            raise AdmissionRefused(f"registration of {self.node_id!r} is not signed by its key")


def sign_registration(
    node_id: str, key: Ed25519PrivateKey, role: str, address: str, seq: int
) -> Registration:
    draft = Registration(node_id, public_key_bytes(key), role, address, seq, b"")
    return replace(draft, signature=key.sign(draft.signing_bytes()))


def next_sequence(last: int, now_us: int) -> int:
    """Strictly increasing and clock-anchored, so it survives a peer that lost its state."""
    return max(last + 1, now_us)


# -------------------------------------------------------------------------------- confirmations


@dataclass(frozen=True)
class Confirmation:
    """A peer's signed statement: 'I verified the chain up to this block'."""

    peer_id: str
    chain_id: bytes
    height: int
    block_hash: bytes
    seq: int
    signature: bytes

    def signing_bytes(self) -> bytes:
        return canonical(
            _TAG_CONF, self.peer_id, self.chain_id, self.height, self.block_hash, self.seq
        )


def sign_confirmation(
    peer_id: str, key: Ed25519PrivateKey, chain: Chain, seq: int
) -> Confirmation:
    head = chain.head
    if head is None:
        raise LedgerError("nothing to confirm: the chain is empty")
    draft = Confirmation(peer_id, chain.chain_id, head.height, head.block_hash, seq, b"")
    return replace(draft, signature=key.sign(draft.signing_bytes()))


@dataclass
class PeerStanding:
    public_key: bytes
    address: str
    confirmed_height: int = -1
    last_seq: int = 0


class ConfirmationBook:
    """The validator's bookkeeping behind Algorithm 1's confirmations() and totalNodes()."""

    def __init__(self) -> None:
        self.peers: dict[str, PeerStanding] = {}

    def register(self, peer_id: str, public_key: bytes, address: str) -> None:
        self.peers[peer_id] = PeerStanding(public_key=public_key, address=address)

    def record(self, conf: Confirmation, chain: Chain) -> bool:
        """Verify and count one confirmation.  True if it raised the peer's confirmed height.

        Raises ReplayDetected when the sequence number is not above the last one accepted from
        this peer, ConfirmationRefused for any other defect.
        """
        peer = self.peers.get(conf.peer_id)
        if peer is None:
            raise ConfirmationRefused(f"peer {conf.peer_id!r} is not registered")
        if not _verify(peer.public_key, conf.signature, conf.signing_bytes()):
            raise ConfirmationRefused(f"confirmation from {conf.peer_id!r} does not verify")
        if conf.seq <= peer.last_seq:
            raise ReplayDetected(
                f"confirmation from {conf.peer_id!r} reuses sequence {conf.seq} "
                f"(last accepted {peer.last_seq})"
            )
        if not same_digest(conf.chain_id, chain.chain_id):
            raise ConfirmationRefused(f"confirmation from {conf.peer_id!r} is for another chain")
        if not 0 <= conf.height <= chain.height:
            raise ConfirmationRefused(f"confirmation names unknown height {conf.height}")
        if not same_digest(chain.blocks[conf.height].block_hash, conf.block_hash):
            raise ConfirmationRefused(
                f"confirmation from {conf.peer_id!r} names a block not on this chain"
            )
        peer.last_seq = conf.seq
        if conf.height > peer.confirmed_height:
            peer.confirmed_height = conf.height
            return True
        return False

    def confirmations_at(self, height: int) -> int:
        """How many peers verified the chain up to at least `height`."""
        return sum(1 for p in self.peers.values() if p.confirmed_height >= height)

    def total_nodes(self) -> int:
        return len(self.peers)


def required_confirmations(total_nodes: int, quorum: float | Fraction = DEFAULT_QUORUM) -> int:
    """Smallest c with c >= n * quorum, in exact arithmetic (0.9 * 70 is 63, not 63.000...01)."""
    q = Fraction(str(quorum)) if isinstance(quorum, float) else Fraction(quorum)
    if not 0 < q <= 1:
        raise ValueError("quorum must be in (0, 1]")
    return math.ceil(total_nodes * q)


# ---------------------------------------------------------------------------------- Algorithm 1


@dataclass(frozen=True)
class SubmitStatus:
    ok: bool
    tx_id: str = ""
    error: str = ""


class LedgerPort(Protocol):
    """What Algorithm 1 needs from 'Blockchain.instance()'."""

    def new_transaction(self, metadata: ContainerMetadata) -> SubmitStatus: ...

    def confirmations(self, tx_id: str, *, at_least: int = 0, wait_s: float = 0.0) -> int:
        """Current confirmations of `tx_id`; may block up to wait_s until >= at_least."""
        ...

    def total_nodes(self) -> int: ...


@dataclass(frozen=True)
class WriteResult:
    ok: bool
    tx_id: str
    confirmations: int
    total_nodes: int
    required: int
    elapsed_s: float
    reason: str = ""


def write_to_blockchain(
    port: LedgerPort,
    metadata: ContainerMetadata,
    *,
    quorum: float = DEFAULT_QUORUM,
    timeout_s: float,
    clock: Callable[[], float],
    poll_s: float = 0.05,
) -> WriteResult:
    """Algorithm 1: write the metadata, then wait until >= quorum of the nodes confirmed.

    Follows the paper line by line (newTransaction; false if not OK; c = confirmations,
    n = totalNodes; while c < n * 0.9 re-read c), with two changes the spec asks for: the loop
    ends with ok=False after `timeout_s` instead of spinning forever, and the threshold is
    computed exactly (`required_confirmations`).  `n` is re-read on every round so a node that
    registers while we wait is counted.  Each round asks the port to block up to `poll_s`
    until the required count is reached (a gRPC port long-polls, so this is not a busy loop).
    """
    start = clock()
    status = port.new_transaction(metadata)
    if not status.ok:
        return WriteResult(False, status.tx_id, 0, 0, 0, clock() - start, status.error)
    n = port.total_nodes()
    need = required_confirmations(n, quorum)
    c = port.confirmations(status.tx_id)
    while c < need:
        remaining = timeout_s - (clock() - start)
        if remaining <= 0:
            return WriteResult(
                False, status.tx_id, c, n, need, clock() - start,
                f"timed out after {timeout_s:.3f} s with {c}/{n} confirmations (need {need})",
            )
        c = port.confirmations(status.tx_id, at_least=need, wait_s=min(poll_s, remaining))
        n = port.total_nodes()
        need = required_confirmations(n, quorum)
    return WriteResult(True, status.tx_id, c, n, need, clock() - start)


# ---------------------------------------------------------------------------------- Algorithm 2


@dataclass(frozen=True)
class NodeResources:
    """Algorithm 2's `sys`: the destination's free resources and its application types."""

    free_memory: int  # bytes, compared with metadata.total_size (as in the paper)
    free_cpu: int  # millicores
    free_gpu: int  # milli-GPU
    application_types: tuple[str, ...]


@dataclass(frozen=True)
class SelfEvaluation:
    """The outcome of Algorithm 2 and the `prob` entries that led to it."""

    source_ip: str
    accept: bool  # the Boolean flag sent with migrationRequest(source_ip, result)
    memory_ok: bool
    cpu_ok: bool
    gpu_ok: bool
    type_matches: int  # how many local applications have meta.type
    reason: str


def self_evaluate(metadata: ContainerMetadata, node: NodeResources) -> SelfEvaluation:
    """Algorithm 2, destination node self-evaluation, read as follows.

    The pseudocode appends `meta.size > sys.memory(free)` (and the same for cpu and gpu) to
    `prob`, then counts the FALSE entries and rejects when that count exceeds one.  Read
    literally, a node with every resource free would be rejected and a node lacking all three
    accepted, which contradicts the prose (section 4.2): "true means that the node can provide
    this resource and false means the opposite" and "[result] is updated to false ... if more
    than one of the resources fail in comparison".  We follow the prose, which is the only
    reading consistent with the decision rule:

    1. prob = [size <= free memory, cpu <= free cpu, gpu <= free gpu]  (equal still fits);
    2. one TRUE per local application whose type equals meta.type (lines 11-13);
    3. result = TRUE; if len(prob) == 3 (no application type matched) result = FALSE;
       otherwise result = FALSE when more than one entry of prob is FALSE.

    So a destination with a matching application type accepts when at most ONE of
    memory / CPU / GPU is short.  That tolerance is the paper's rule and is kept exactly; a
    caller that wants all three to fit can check the `*_ok` fields.
    """
    prob = [
        metadata.total_size <= node.free_memory,
        metadata.cpu_usage <= node.free_cpu,
        metadata.gpu_usage <= node.free_gpu,
    ]
    matches = sum(1 for app_type in node.application_types if app_type == metadata.type)
    prob.extend([True] * matches)
    result = True
    failed = prob.count(False)
    if len(prob) == 3:
        result = False
        reason = f"no local application of type {metadata.type!r}"
    elif failed > 1:
        result = False
        reason = f"{failed} of memory/cpu/gpu do not fit"
    else:
        reason = "fits" if failed == 0 else "one resource short (tolerated by Algorithm 2)"
    return SelfEvaluation(
        source_ip=metadata.source_ip,
        accept=result,
        memory_ok=prob[0],
        cpu_ok=prob[1],
        gpu_ok=prob[2],
        type_matches=matches,
        reason=reason,
    )


# ------------------------------------------------------------------------------ JSON round trip


def tx_to_dict(tx: Transaction) -> dict[str, Any]:
    m = tx.metadata
    return {
        "metadata": {
            "source_ip": m.source_ip,
            "container_id": m.container_id,
            "total_size": m.total_size,
            "gpu_usage": m.gpu_usage,
            "cpu_usage": m.cpu_usage,
            "type": m.type,
        },
        "submitter_id": tx.submitter_id,
        "submitter_key": tx.submitter_key.hex(),
        "nonce": tx.nonce.hex(),
        "timestamp_ms": tx.timestamp_ms,
        "signature": tx.signature.hex(),
    }


def _int(d: Mapping[str, Any], key: str) -> int:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value


def _str(d: Mapping[str, Any], key: str) -> str:
    value = d[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text")
    return value


def _hex(d: Mapping[str, Any], key: str) -> bytes:
    return bytes.fromhex(_str(d, key))


def tx_from_dict(d: Mapping[str, Any]) -> Transaction:
    m = d["metadata"]
    return Transaction(
        metadata=ContainerMetadata(
            source_ip=_str(m, "source_ip"),
            container_id=_str(m, "container_id"),
            total_size=_int(m, "total_size"),
            gpu_usage=_int(m, "gpu_usage"),
            cpu_usage=_int(m, "cpu_usage"),
            type=_str(m, "type"),
        ),
        submitter_id=_str(d, "submitter_id"),
        submitter_key=_hex(d, "submitter_key"),
        nonce=_hex(d, "nonce"),
        timestamp_ms=_int(d, "timestamp_ms"),
        signature=_hex(d, "signature"),
    )


def block_to_dict(block: Block) -> dict[str, Any]:
    return {
        "height": block.height,
        "prev_hash": block.prev_hash.hex(),
        "merkle_root": block.merkle_root.hex(),
        "timestamp_ms": block.timestamp_ms,
        "nonce": block.nonce.hex(),
        "validator_id": block.validator_id,
        "transactions": [tx_to_dict(tx) for tx in block.transactions],
        "block_hash": block.block_hash.hex(),
        "signature": block.signature.hex(),
    }


def block_from_dict(d: Mapping[str, Any]) -> Block:
    txs = d["transactions"]
    if not isinstance(txs, list):
        raise ValueError("transactions must be a list")
    return Block(
        height=_int(d, "height"),
        prev_hash=_hex(d, "prev_hash"),
        merkle_root=_hex(d, "merkle_root"),
        timestamp_ms=_int(d, "timestamp_ms"),
        nonce=_hex(d, "nonce"),
        validator_id=_str(d, "validator_id"),
        transactions=tuple(tx_from_dict(t) for t in txs),
        block_hash=_hex(d, "block_hash"),
        signature=_hex(d, "signature"),
    )


def block_to_json(block: Block) -> str:
    return json.dumps(block_to_dict(block), sort_keys=True, separators=(",", ":"))


def block_from_json(text: str) -> Block:
    try:
        return block_from_dict(json.loads(text))
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerError(f"stored block is not readable: {exc}") from exc
