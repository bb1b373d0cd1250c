"""Who may write and who confirmed what: the validator's admission gate, node registration and
the peers' signed confirmations behind Algorithm 1's confirmations() and totalNodes().

A peer confirms a block only after verifying it and every block before it, so a confirmation
of height h confirms every transaction at height <= h.  Confirmations are signed by the peer's
own key and carry a strictly increasing sequence number per peer (the replay guard), the chain
id (genesis hash), the height and the block hash.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.ledger.chain import Chain
from agents.ledger.errors import (
    AdmissionRefused,
    ConfirmationRefused,
    InvalidMetadata,
    LedgerError,
    ReplayDetected,
)
from agents.ledger.signing import canonical, public_key_bytes, same_digest, verify_signature
from agents.ledger.transactions import Transaction, check_text

DEFAULT_QUORUM = 0.9  # Algorithm 1, line 23
DEFAULT_TX_WINDOW_MS = 5 * 60 * 1000  # a transaction older / newer than this is refused

_TAG_CONF = b"edgeferry.ledger.v1.confirmation"
_TAG_REG = b"edgeferry.ledger.v1.registration"


# ------------------------------------------------------------------------------------ admission


@dataclass
class Admission:
    """The validator's gate for submitted transactions (registered submitter, fresh, new)."""

    members: dict[str, bytes] = field(default_factory=dict)  # submitter id -> public key
    window_ms: int = DEFAULT_TX_WINDOW_MS

    def check(self, tx: Transaction, now_ms: int, known: Callable[[str], bool]) -> None:
        """Raise AdmissionRefused unless `tx` is well formed, signed by its registered submitter's
        key and fresh; ReplayDetected when `known(tx_id)` says it was already submitted."""
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
    """What a registered node may do."""

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
        """What the node signs: id, public key, role, address and sequence number."""
        return canonical(_TAG_REG
, self.node_id, self.public_key, self.role, self.address, self.seq)

    def check(self) -> None:
        """Raise AdmissionRefused unless well formed, of a known role and signed by its own key."""
        check_text("node_id", self.node_id)
        check_text("address", self.address, allow_empty=True)
        if self.role not in (NodeRole.PEER, NodeRole.SUBMITTER):
            raise AdmissionRefused(f"unknown node role {self.role!r}")
        if not verify_signature(self.public_key, self.signature, self.signing_bytes()):
            raise AdmissionRefused(f"registration of {self.node_id!r} is not signed by its key")


def sign_registration(
    node_id: str, key: Ed25519PrivateKey, role: str, address: str, seq: int
) -> Registration:
    """A registration of `node_id` in `role`, signed with `key` (proof of possession)."""
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
        """What the peer signs: its id, the chain id, the height, the block hash, the sequence."""
        return canonical(
            _TAG_CONF, self.peer_id, self.chain_id, self.height, self.block_hash, self.seq
        )


def sign_confirmation(
    peer_id: str, key: Ed25519PrivateKey, chain: Chain, seq: int
) -> Confirmation:
    """`peer_id`'s signed confirmation of `chain`'s head (LedgerError when the chain is empty)."""
    head = chain.head
    if head is None:
        raise LedgerError("nothing to confirm: the chain is empty")
    draft = Confirmation(peer_id, chain.chain_id, head.height, head.block_hash, seq, b"")
    return replace(draft, signature=key.sign(draft.signing_bytes()))


@dataclass
class PeerStanding:
    """The validator's record of one peer: key, address, highest confirmed height, last sequence."""
    public_key: bytes
    address: str
    confirmed_height: int = -1
    last_seq: int = 0


class ConfirmationBook:
    """The validator's bookkeeping behind Algorithm 1's confirmations() and totalNodes()."""

    def __init__(self) -> None:
        self.peers: dict[str, PeerStanding] = {}

    def register(self, peer_id: str, public_key: bytes, address: str) -> None:
        """(Re)start the bookkeeping of a peer; it has confirmed nothing yet."""
        self.peers[peer_id] = PeerStanding(public_key=public_key, address=address)

    def record(self, conf: Confirmation, chain: Chain) -> bool:
        """Verify and count one confirmation.  True if it raised the peer's confirmed height.

        Raises ReplayDetected when the sequence number is not above the last one accepted from
        this peer, ConfirmationRefused for any other defect.
        """
        peer = self.peers.get(conf.peer_id)
        if peer is None:
            raise ConfirmationRefused(f"peer {conf.peer_id!r} is not registered")
        if not verify_signature(peer.public_key, conf.signature, conf.signing_bytes()):
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
        """How many peers are registered (Algorithm 1's totalNodes())."""
        return len(self.peers)


def required_confirmations(total_nodes: int, quorum: float | Fraction = DEFAULT_QUORUM) -> int:
    """Smallest c with c >= n * quorum, in exact arithmetic (0.9 * 70 is 63, not 63.000...01)."""
    q = Fraction(str(quorum)) if isinstance(quorum, float) else Fraction(quorum)
    if not 0 < q <= 1:
        raise ValueError("quorum must be in (0, 1]")
    return math.ceil(total_nodes * q)
