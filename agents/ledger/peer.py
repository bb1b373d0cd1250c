"""Ledger peers: one process can host many peer identities (BloSM's 100 nodes on few boards).

Each identity has its own Ed25519 key, its own verified chain replica (stored under its id in
the host's SQLite file) and its own confirmation sequence counter.  Nothing is shared between
identities except the process and the database file: every identity verifies every block
itself and signs its own confirmations.  No grpc here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.ledger.chain import Authorities, Block, Chain
from agents.ledger.consensus import (
    Confirmation,
    NodeRole,
    Registration,
    next_sequence,
    sign_confirmation,
    sign_registration,
)
from agents.ledger.errors import LedgerError, UnknownPeer
from agents.ledger.store import LedgerStore
from agents.ledger.transactions import Transaction

SEQ_KEY = "conf_seq"
REG_SEQ_KEY = "reg_seq"


def wall_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class DeliveryResult:
    gap: bool  # the blocks did not extend the head: resend from head + 1
    head_height: int
    confirmation: Confirmation | None


class PeerIdentity:
    """One ledger node: key, replica, sequence counter."""

    def __init__(self, peer_id: str, key: Ed25519PrivateKey, chain: Chain) -> None:
        self.peer_id = peer_id
        self.key = key
        self.chain = chain
        self.lock = threading.Lock()


class PeerHost:
    """All peer identities of one process, with their durable replicas."""

    def __init__(
        self,
        store: LedgerStore,
        authorities: Authorities,
        keys: Mapping[str, Ed25519PrivateKey],
        *,
        clock_us: Callable[[], int] = wall_us,
    ) -> None:
        self.store = store
        self.authorities = dict(authorities)
        self._clock_us = clock_us
        self._seq_lock = threading.Lock()
        # Re-verify every stored replica; a tampered block raises ChainError and the host
        # refuses to start rather than confirm from a corrupted chain.
        self.identities = {
            pid: PeerIdentity(pid, key, store.load_chain(pid, self.authorities))
            for pid, key in keys.items()
        }

    def identity(self, peer_id: str) -> PeerIdentity:
        try:
            return self.identities[peer_id]
        except KeyError:
            raise UnknownPeer(f"peer {peer_id!r} is not hosted here") from None

    def _next_seq(self, peer_id: str, key: str) -> int:
        with self._seq_lock:
            seq = next_sequence(self.store.get_counter(peer_id, key), self._clock_us())
            self.store.set_counter(peer_id, key, seq)
            return seq

    def registrations(self, address: str) -> list[Registration]:
        """Signed registrations of every hosted identity (fresh sequence numbers)."""
        return [
            sign_registration(pid, ident.key, NodeRole.PEER, address,
                              self._next_seq(pid, REG_SEQ_KEY))
            for pid, ident in self.identities.items()
        ]

    def confirm(self, peer_id: str) -> Confirmation | None:
        """A freshly signed confirmation of the identity's head (None with an empty chain)."""
        ident = self.identity(peer_id)
        with ident.lock:
            return self._confirm_locked(ident)

    def _confirm_locked(self, ident: PeerIdentity) -> Confirmation | None:
        if ident.chain.head is None:
            return None
        return sign_confirmation(ident.peer_id, ident.key, ident.chain,
                                 self._next_seq(ident.peer_id, SEQ_KEY))

    def deliver(self, peer_id: str, blocks: list[Block]) -> DeliveryResult:
        """Verify pushed blocks (signature, Merkle root, linkage), persist, and confirm.

        Blocks already held are skipped (a replayed push changes nothing); a block that does
        not extend the head gives `gap=True` so the sender resends the missing range; any
        other verification failure raises ChainError and nothing after it is applied.
        """
        ident = self.identity(peer_id)
        with ident.lock:
            for block in blocks:
                head = ident.chain.height
                if block.height > head + 1:
                    return DeliveryResult(True, head, self._confirm_locked(ident))
                if block.height <= head:
                    ident.chain.offer(block)  # already held: no-op; a different block: fork
                    continue
                ident.chain.check_append(block)
                self.store.append_block(peer_id, block)
                ident.chain.append_checked(block)
            return DeliveryResult(False, ident.chain.height, self._confirm_locked(ident))

    def catch_up(self, peer_id: str, fetch: Callable[[int], list[Block]]) -> Confirmation | None:
        """Pull missing blocks (fetch(from_height) -> blocks) until the validator has no more."""
        while True:
            ident = self.identity(peer_id)
            blocks = fetch(ident.chain.height + 1)
            if not blocks:
                return self.confirm(peer_id)
            result = self.deliver(peer_id, blocks)
            if result.gap:
                raise LedgerError(f"peer {peer_id!r}: the validator served a non-contiguous range")

    def latest_metadata(self, peer_id: str, container_id: str) -> tuple[Transaction, int] | None:
        ident = self.identity(peer_id)
        with ident.lock:
            found = ident.chain.metadata_for(container_id)
            if not found:
                return None
            height = ident.chain.tx_height(found[-1].tx_id)
            assert height is not None
            return found[-1], height

    def min_head(self) -> int:
        return min((i.chain.height for i in self.identities.values()), default=-1)
