"""gRPC side of the ledger: servicers (pb2 <-> domain, errors -> status codes) and the
validator's block propagator.

* `LedgerServicer` (validator), `LedgerPeerServicer` (peer host, many identities),
  `CentralMetadataServicer` (baseline) map messages and errors only; the rules live in
  `validator.ValidatorCore`, `peer.PeerHost`, `central.CentralStore` and `domain`.
* `Propagator` is the validator's sealing thread: it seals pending transactions into a block
  and pushes to every registered peer every block the peer has not confirmed (one RPC in
  flight per peer, resent from the peer's head on a gap, retried with back-off when a peer is
  down), counting the signed confirmations that come back.
* `TrafficMeter` counts protobuf payload bytes (request + response, without HTTP/2 and TLS
  framing) so the benchmark can compare bandwidth.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as pb
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from agents.common.client import peer_identity
from agents.common.errors import NoPeerIdentity
from agents.common.logging import get_logger
from agents.ledger.central import CentralStore
from agents.ledger.convert import (
    block_from_pb,
    block_to_pb,
    confirmation_from_pb,
    confirmation_to_pb,
    registration_from_pb,
    tx_from_pb,
    tx_to_pb,
)
from agents.ledger.errors import (
    AdmissionRefused,
    ChainError,
    ConfirmationRefused,
    InvalidMetadata,
    LedgerError,
    ReplayDetected,
)
from agents.ledger.peer import PeerHost
from agents.ledger.validator import PeerTarget, ValidatorCore

LEDGER_SERVICE = "edgeferry.ledger.v1.LedgerService"
PEER_SERVICE = "edgeferry.ledger.v1.LedgerPeerService"
CENTRAL_SERVICE = "edgeferry.ledger.v1.CentralMetadataService"
MAX_WAIT_MS = 10_000
MAX_BLOCKS_PER_CALL = 256


class TrafficMeter:
    """Thread-safe byte and call counters keyed by RPC name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, *messages: Any) -> None:
        size = sum(m.ByteSize() for m in messages)
        with self._lock:
            self.bytes[name] = self.bytes.get(name, 0) + size
            self.calls[name] = self.calls.get(name, 0) + 1

    def total(self) -> int:
        with self._lock:
            return sum(self.bytes.values())

    def reset(self) -> None:
        with self._lock:
            self.bytes.clear()
            self.calls.clear()


def _code_for(exc: LedgerError) -> tuple[grpc.StatusCode, Any]:
    if isinstance(exc, ReplayDetected):
        return grpc.StatusCode.ALREADY_EXISTS, common_pb2.ERROR_CODE_REPLAY
    if isinstance(exc, InvalidMetadata):
        return grpc.StatusCode.INVALID_ARGUMENT, common_pb2.ERROR_CODE_MALFORMED
    if isinstance(exc, ChainError):
        return grpc.StatusCode.INVALID_ARGUMENT, common_pb2.ERROR_CODE_BAD_SIGNATURE
    if isinstance(exc, AdmissionRefused):
        return grpc.StatusCode.PERMISSION_DENIED, common_pb2.ERROR_CODE_UNKNOWN_PRINCIPAL
    if isinstance(exc, ConfirmationRefused):
        return grpc.StatusCode.INVALID_ARGUMENT, common_pb2.ERROR_CODE_BAD_SIGNATURE
    return grpc.StatusCode.FAILED_PRECONDITION, common_pb2.ERROR_CODE_INTERNAL


def _abort(context: grpc.ServicerContext, exc: LedgerError) -> NoReturn:
    code, _ = _code_for(exc)
    context.abort(code, str(exc))
    raise AssertionError("unreachable")  # context.abort raises


def _not_found(context: grpc.ServicerContext, message: str) -> NoReturn:
    context.abort(grpc.StatusCode.NOT_FOUND, message)
    raise AssertionError("unreachable")


def _caller(context: grpc.ServicerContext) -> str:
    try:
        return peer_identity(context)
    except NoPeerIdentity as exc:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        raise AssertionError("unreachable") from exc


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    """The validator's API."""

    def __init__(self, core: ValidatorCore, meter: TrafficMeter | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.core = core
        self.meter = meter or TrafficMeter()
        self._on_change = on_change or (lambda: None)

    def RegisterNode(self, request: pb.RegisterNodeRequest,
                     context: grpc.ServicerContext) -> pb.RegisterNodeResponse:
        who = _caller(context)
        try:
            for reg in request.registrations:
                self.core.register(registration_from_pb(reg), who)
        except LedgerError as exc:
            _abort(context, exc)
        self._on_change()
        resp = pb.RegisterNodeResponse(chain_id=self.core.chain.chain_id,
                                       head_height=self.core.head_height(),
                                       total_nodes=self.core.total_nodes())
        self.meter.add("RegisterNode", request, resp)
        return resp

    def SubmitTransaction(self, request: pb.SubmitTransactionRequest,
                          context: grpc.ServicerContext) -> pb.SubmitTransactionResponse:
        try:
            tx_id = self.core.submit(tx_from_pb(request.transaction))
        except LedgerError as exc:
            _abort(context, exc)
        resp = pb.SubmitTransactionResponse(tx_id=tx_id)
        self.meter.add("SubmitTransaction", request, resp)
        return resp

    def GetConfirmations(self, request: pb.GetConfirmationsRequest,
                         context: grpc.ServicerContext) -> pb.GetConfirmationsResponse:
        wait_s = min(request.max_wait_ms, MAX_WAIT_MS) / 1000
        try:
            count = self.core.confirmations(request.tx_id, request.at_least, wait_s)
        except AdmissionRefused as exc:
            _not_found(context, str(exc))
        resp = pb.GetConfirmationsResponse(confirmations=count.confirmations,
                                           total_nodes=count.total_nodes, height=count.height)
        self.meter.add("GetConfirmations", request, resp)
        return resp

    def GetBlocks(self, request: pb.GetBlocksRequest,
                  context: grpc.ServicerContext) -> pb.GetBlocksResponse:
        blocks = self.core.blocks_from(request.from_height,
                                       min(request.max_blocks or 64, MAX_BLOCKS_PER_CALL))
        resp = pb.GetBlocksResponse(blocks=[block_to_pb(b) for b in blocks],
                                    head_height=self.core.head_height())
        self.meter.add("GetBlocks", request, resp)
        return resp

    def SubmitConfirmations(self, request: pb.SubmitConfirmationsRequest,
                            context: grpc.ServicerContext) -> pb.SubmitConfirmationsResponse:
        accepted, errors = 0, []
        for conf in request.confirmations:
            try:
                self.core.record(confirmation_from_pb(conf))
                accepted += 1
            except LedgerError as exc:
                errors.append(common_pb2.Error(code=_code_for(exc)[1], message=str(exc)))
        resp = pb.SubmitConfirmationsResponse(accepted=accepted, errors=errors)
        self.meter.add("SubmitConfirmations", request, resp)
        return resp

    def GetMetadata(self, request: pb.GetMetadataRequest,
                    context: grpc.ServicerContext) -> pb.GetMetadataResponse:
        found = self.core.latest_metadata(request.container_id)
        if found is None:
            _not_found(context, f"no metadata for container {request.container_id!r}")
        tx, height = found
        resp = pb.GetMetadataResponse(transaction=tx_to_pb(tx), height=height)
        self.meter.add("GetMetadata", request, resp)
        return resp

    def GetStatus(self, request: pb.GetStatusRequest,
                  context: grpc.ServicerContext) -> pb.GetStatusResponse:
        return pb.GetStatusResponse(chain_id=self.core.chain.chain_id,
                                    head_height=self.core.head_height(),
                                    total_nodes=self.core.total_nodes(),
                                    stored_bytes=self.core.store.size_bytes())


class LedgerPeerServicer(pb_grpc.LedgerPeerServiceServicer):
    """A peer host's API: block delivery to hosted identities and local replica reads."""

    def __init__(self, host: PeerHost, meter: TrafficMeter | None = None) -> None:
        self.host = host
        self.meter = meter or TrafficMeter()

    def DeliverBlocks(self, request: pb.DeliverBlocksRequest,
                      context: grpc.ServicerContext) -> pb.DeliverBlocksResponse:
        try:
            result = self.host.deliver(request.peer_id,
                                       [block_from_pb(b) for b in request.blocks])
        except LedgerError as exc:
            _abort(context, exc)
        resp = pb.DeliverBlocksResponse(
            status=pb.DELIVER_STATUS_GAP if result.gap else pb.DELIVER_STATUS_OK,
            head_height=result.head_height,
        )
        if result.confirmation is not None:
            resp.confirmation.CopyFrom(confirmation_to_pb(result.confirmation))
        self.meter.add("DeliverBlocks", request, resp)
        return resp

    def GetMetadata(self, request: pb.GetMetadataRequest,
                    context: grpc.ServicerContext) -> pb.GetMetadataResponse:
        try:
            found = self.host.latest_metadata(request.peer_id, request.container_id)
        except LedgerError as exc:
            _not_found(context, str(exc))
        if found is None:
            _not_found(context, f"no metadata for container {request.container_id!r}")
        tx, height = found
        resp = pb.GetMetadataResponse(transaction=tx_to_pb(tx), height=height)
        self.meter.add("GetMetadata", request, resp)
        return resp

    def GetStatus(self, request: pb.GetStatusRequest,
                  context: grpc.ServicerContext) -> pb.GetStatusResponse:
        if request.peer_id:
            try:
                chain = self.host.identity(request.peer_id).chain
            except LedgerError as exc:
                _not_found(context, str(exc))
            head = chain.height
            chain_id = chain.chain_id if head >= 0 else b""
            stored = self.host.store.size_bytes(request.peer_id)
        else:
            head, chain_id, stored = self.host.min_head(), b"", self.host.store.size_bytes()
        return pb.GetStatusResponse(chain_id=chain_id, head_height=head,
                                    total_nodes=len(self.host.identities), stored_bytes=stored)


class CentralMetadataServicer(pb_grpc.CentralMetadataServiceServicer):
    """The central-cloud (or direct two-node) baseline."""

    def __init__(self, store: CentralStore, meter: TrafficMeter | None = None) -> None:
        self.store = store
        self.meter = meter or TrafficMeter()

    def PutMetadata(self, request: pb.PutMetadataRequest,
                    context: grpc.ServicerContext) -> pb.PutMetadataResponse:
        try:
            tx_id = self.store.put(tx_from_pb(request.transaction))
        except LedgerError as exc:
            _abort(context, exc)
        resp = pb.PutMetadataResponse(tx_id=tx_id)
        self.meter.add("PutMetadata", request, resp)
        return resp

    def GetMetadata(self, request: pb.GetMetadataRequest,
                    context: grpc.ServicerContext) -> pb.GetMetadataResponse:
        try:
            tx = self.store.latest(request.container_id)
        except LedgerError as exc:
            _abort(context, exc)
        if tx is None:
            _not_found(context, f"no metadata for container {request.container_id!r}")
        resp = pb.GetMetadataResponse(transaction=tx_to_pb(tx), height=-1)
        self.meter.add("GetMetadata", request, resp)
        return resp


# ------------------------------------------------------------------------------- propagation


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
        meter: TrafficMeter | None = None,
        batch: int = 64,
        rpc_timeout_s: float = 5.0,
        retry_s: float = 1.0,
        idle_s: float = 0.05,
    ) -> None:
        self.core = core
        self.meter = meter or TrafficMeter()
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
        self._thread.start()

    def stop(self) -> None:
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
        future.add_done_callback(lambda f: self._done(target, request, f))

    def _release(self, peer_id: str, *, retry: bool) -> None:
        with self._lock:
            link = self._links.setdefault(peer_id, _PeerLink())
            link.inflight = False
            link.retry_at = time.monotonic() + self._retry_s if retry else 0.0

    def _done(self, target: PeerTarget, request: pb.DeliverBlocksRequest, future: Any) -> None:
        try:
            resp: pb.DeliverBlocksResponse = future.result()
        except grpc.RpcError as exc:
            self.log.warning("peer_unreachable", peer=target.peer_id, address=target.address,
                             code=str(exc.code()))
            self._release(target.peer_id, retry=True)
            return
        self.meter.add("DeliverBlocks", request, resp)
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
