"""The authority's state machine: registry, admission, sealing, confirmation counting.

Thread-safe, no grpc: the servicer calls it from RPC threads, the propagator from its own
thread.  Everything that changes the chain is persisted before it is visible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.ledger.chain import MAX_BLOCK_TXS, Block, genesis_block, seal_block
from agents.ledger.consensus import (
    DEFAULT_TX_WINDOW_MS,
    Admission,
    Confirmation,
    ConfirmationBook,
    NodeRole,
    Registration,
)
from agents.ledger.errors import AdmissionRefused, MembershipFull, ReplayDetected
from agents.ledger.signing import public_key_bytes, same_digest
from agents.ledger.store import LedgerStore, MemberRow
from agents.ledger.transactions import Transaction


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class PeerTarget:
    """Where and how far a peer is, for the propagator."""

    peer_id: str
    address: str
    confirmed_height: int


@dataclass(frozen=True)
class ConfirmationCount:
    confirmations: int
    total_nodes: int
    height: int  # -1 while the transaction is pending


#: Registered nodes the validator keeps at most (peers settings allow 1000 per peer host).
DEFAULT_MAX_MEMBERS = 2048


class ValidatorCore:
    """The single PoA authority: only it seals blocks; peers verify and confirm them."""

    def __init__(
        self,
        store: LedgerStore,
        validator_id: str,
        key: Ed25519PrivateKey,
        *,
        clock_ms: Callable[[], int] = wall_ms,
        window_ms: int = DEFAULT_TX_WINDOW_MS,
        max_block_txs: int = 256,
        max_members: int = DEFAULT_MAX_MEMBERS,
    ) -> None:
        self.store = store
        self.validator_id = validator_id
        self._key = key
        self._clock_ms = clock_ms
        self.max_block_txs = min(max_block_txs, MAX_BLOCK_TXS)
        self.authorities = {validator_id: public_key_bytes(key)}
        self.chain = store.load_chain(validator_id, self.authorities)  # re-verifies everything
        if self.chain.head is None:
            genesis = genesis_block(validator_id, key, clock_ms())
            store.append_block(validator_id, genesis)
            self.chain.append(genesis)
        self.admission = Admission(window_ms=window_ms)
        self.book = ConfirmationBook()
        self.max_members = max_members
        self._members: dict[str, MemberRow] = {}
        for row in store.members():
            self._install(row)
        self._cond = threading.Condition()
        self._pending: list[Transaction] = []
        self._pending_ids: set[str] = set()
        self._dirty: set[str] = set()

    # -------------------------------------------------------------------------- registry

    def _install(self, row: MemberRow) -> None:
        self._members[row.node_id] = row
        self.admission.members[row.node_id] = row.public_key
        if row.role == NodeRole.PEER:
            self.book.register(row.node_id, row.public_key, row.address)
            standing = self.book.peers[row.node_id]
            standing.confirmed_height = row.confirmed_height
            standing.last_seq = row.conf_seq

    def register(self, reg: Registration, tls_identity: str) -> None:
        """Admit or update a node.  Its id stays bound to its first key and TLS identity."""
        reg.check()
        with self._cond:
            old = self._members.get(reg.node_id)
            if old is not None:
                if not same_digest(old.public_key, reg.public_key):
                    raise AdmissionRefused(f"node {reg.node_id!r} is registered with another key")
                if old.registered_by != tls_identity:
                    raise AdmissionRefused(
                        f"node {reg.node_id!r} was registered by {old.registered_by!r}"
                    )
                if old.role != reg.role:
                    raise AdmissionRefused(f"node {reg.node_id!r} is registered as {old.role}")
                if reg.seq <= old.reg_seq:
                    raise ReplayDetected(f"registration of {reg.node_id!r} reuses seq {reg.seq}")
            elif len(self._members) >= self.max_members:
                raise MembershipFull(
                    f"the validator holds {len(self._members)} nodes, its limit; node "
                    f"{reg.node_id!r} is refused (raise settings.max_members to admit more)")
            standing = self.book.peers.get(reg.node_id)
            row = MemberRow(
                node_id=reg.node_id,
                public_key=reg.public_key,
                role=reg.role,
                address=reg.address,
                registered_by=tls_identity,
                reg_seq=reg.seq,
                confirmed_height=standing.confirmed_height if standing else -1,
                conf_seq=standing.last_seq if standing else 0,
            )
            self.store.save_member(row)
            self._install(row)
            if standing is not None:  # keep the counted state across re-registration
                self.book.peers[reg.node_id].confirmed_height = row.confirmed_height
                self.book.peers[reg.node_id].last_seq = row.conf_seq
            self._cond.notify_all()

    # ------------------------------------------------------------------------- admission

    def _known(self, tx_id: str) -> bool:
        return tx_id in self._pending_ids or self.chain.tx_height(tx_id) is not None

    def submit(self, tx: Transaction) -> str:
        """Admit a signed transaction into the pending pool; the sealer picks it up."""
        with self._cond:
            self.admission.check(tx, self._clock_ms(), self._known)
            self._pending.append(tx)
            self._pending_ids.add(tx.tx_id)
            self._cond.notify_all()
        return tx.tx_id

    def seal_next(self, wait_s: float) -> Block | None:
        """Wait up to wait_s for pending transactions, then seal, persist and append a block."""
        with self._cond:
            if not self._pending:
                self._cond.wait(wait_s)
            if not self._pending:
                return None
            txs = self._pending[: self.max_block_txs]
            head = self.chain.head
            assert head is not None
            block = seal_block(
                height=head.height + 1,
                prev_hash=head.block_hash,
                transactions=txs,
                validator_id=self.validator_id,
                key=self._key,
                now_ms=self._clock_ms(),
            )
            self.chain.check_append(block)
            self.store.append_block(self.validator_id, block)
            self.chain.append_checked(block)
            del self._pending[: len(txs)]
            self._pending_ids.difference_update(tx.tx_id for tx in txs)
            self._cond.notify_all()
            return block

    # ---------------------------------------------------------------------- confirmations

    def record(self, conf: Confirmation) -> bool:
        """Verify and count a peer's confirmation (raises ConfirmationRefused/ReplayDetected)."""
        with self._cond:
            raised = self.book.record(conf, self.chain)
            self._dirty.add(conf.peer_id)
            if raised:
                self._cond.notify_all()
            return raised

    def flush(self) -> None:
        """Persist confirmation standings changed since the last flush (one transaction)."""
        with self._cond:
            rows = [
                (pid, self.book.peers[pid].confirmed_height, self.book.peers[pid].last_seq)
                for pid in self._dirty
            ]
            self._dirty.clear()
        self.store.save_confirmations(rows)

    def _count(self, tx_id: str) -> ConfirmationCount:
        height = self.chain.tx_height(tx_id)
        total = self.book.total_nodes()
        if height is None:
            return ConfirmationCount(0, total, -1)
        return ConfirmationCount(self.book.confirmations_at(height), total, height)

    def confirmations(
        self, tx_id: str, at_least: int = 0, wait_s: float = 0.0
    ) -> ConfirmationCount:
        """confirmations(tx) and totalNodes(); blocks up to wait_s until >= at_least."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            if not self._known(tx_id):
                raise AdmissionRefused(f"transaction {tx_id[:16]} is unknown")
            count = self._count(tx_id)
            while count.confirmations < at_least:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
                count = self._count(tx_id)
            return count

    # --------------------------------------------------------------------------- reading

    def blocks_from(self, height: int, max_blocks: int) -> list[Block]:
        with self._cond:
            start = max(height, 0)
            return self.chain.blocks[start : start + max(0, max_blocks)]

    def head_height(self) -> int:
        with self._cond:
            return self.chain.height

    def peer_targets(self) -> list[PeerTarget]:
        with self._cond:
            return [
                PeerTarget(pid, p.address, p.confirmed_height)
                for pid, p in self.book.peers.items()
                if p.address
            ]

    def latest_metadata(self, container_id: str) -> tuple[Transaction, int] | None:
        with self._cond:
            found = self.chain.metadata_for(container_id)
            if not found:
                return None
            tx = found[-1]
            height = self.chain.tx_height(tx.tx_id)
            assert height is not None
            return tx, height

    def total_nodes(self) -> int:
        with self._cond:
            return self.book.total_nodes()
