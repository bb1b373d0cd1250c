"""The validator's block propagation: one thread that seals pending transactions into blocks
and pushes to every registered peer every block the peer has not confirmed.

One DeliverBlocks RPC is in flight per peer; a peer that answers with a gap (or is behind a
block sealed meanwhile) is sent the rest from its head, a peer that is down is retried with
back-off, and the signed confirmation each answer carries is counted by the validator core.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as pb
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from agents.common.logging import get_logger
from agents.ledger.convert import block_to_pb, confirmation_from_pb
from agents.ledger.errors import LedgerError
from agents.ledger.validator import PeerTarget, ValidatorCore


@dataclass
class _PeerLink:
    inflight: bool = False
    retry_at: float = 0.0


class Propagator:
    """Seals blocks and pushes them to every peer; counts the confirmations returned."""

    def __init__(
        self,
        core: ValidatorCore,
        channel_for: Callable[[str], grpc.Channel],
        *,
        batch: int = 64,
        rpc_timeout_s: float = 5.0,
        retry_s: float = 1.0,
        idle_s: float = 0.05,
    ) -> None:
        self.core = core
        self._channel_for = channel_for
        self._stubs: dict[str, pb_grpc.LedgerPeerServiceStub] = {}
        self._links: dict[str, _PeerLink] = {}
        self._lock = threading.Lock()
        self._batch = batch
        self._rpc_timeout_s = rpc_timeout_s
        self._retry_s = retry_s
        self._idle_s = idle_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-propagator", daemon=True)
        self.log = get_logger("ledger.propagator")

    def start(self) -> None:
        """Start the sealing thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waits up to 5 s for its round) and flush the store."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.core.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                block = self.core.seal_next(self._idle_s)
                if block is not None:
                    self.log.debug("block_sealed", height=block.height,
                                   txs=len(block.transactions))
                self.kick()
                self.core.flush()
            except Exception:  # keep sealing: one bad round must not stop the ledger
                self.log.exception("propagation_round_failed")
                time.sleep(self._idle_s)

    def kick(self) -> None:
        """Send every lagging, idle, not-backing-off peer the blocks it misses."""
        head = self.core.head_height()
        now = time.monotonic()
        for target in self.core.peer_targets():
            if target.confirmed_height >= head:
                continue
            with self._lock:
                link = self._links.setdefault(target.peer_id, _PeerLink())
                if link.inflight or link.retry_at > now:
                    continue
                link.inflight = True
            self._send(target, target.confirmed_height + 1)

    def _stub(self, address: str) -> pb_grpc.LedgerPeerServiceStub:
        with self._lock:
            stub = self._stubs.get(address)
            if stub is None:
                stub = self._stubs[address] = pb_grpc.LedgerPeerServiceStub(
                    self._channel_for(address))
            return stub

    def _send(self, target: PeerTarget, from_height: int) -> None:
        blocks = self.core.blocks_from(from_height, self._batch)
        if not blocks:
            self._release(target.peer_id, retry=False)
            return
        request = pb.DeliverBlocksRequest(peer_id=target.peer_id,
                                          blocks=[block_to_pb(b) for b in blocks])
        try:
            future = self._stub(target.address).DeliverBlocks.future(
                request, timeout=self._rpc_timeout_s)
        except Exception:
            self.log.exception("push_failed", peer=target.peer_id)
            self._release(target.peer_id, retry=True)
            return
        future.add_done_callback(lambda f: self._done(target, f))

    def _release(self, peer_id: str, *, retry: bool) -> None:
        with self._lock:
            link = self._links.setdefault(peer_id, _PeerLink())
            link.inflight = False
            link.retry_at = time.monotonic() + self._retry_s if retry else 0.0

    def _done(self, target: PeerTarget, future: Any) -> None:
        try:
            resp: pb.DeliverBlocksResponse = future.result()
        except grpc.RpcError as exc:
            self.log.warning("peer_unreachable", peer=target.peer_id, address=target.address,
                             code=str(exc.code()))
            self._release(target.peer_id, retry=True)
            return
        if resp.HasField("confirmation"):
            try:
                self.core.record(confirmation_from_pb(resp.confirmation))
            except LedgerError as exc:
                self.log.warning("confirmation_refused", peer=target.peer_id, error=str(exc))
        head = self.core.head_height()
        if resp.head_height < head:  # a gap, or new blocks sealed meanwhile: keep going
            self._send(target, resp.head_height + 1)
            return
        self._release(target.peer_id, retry=False)
