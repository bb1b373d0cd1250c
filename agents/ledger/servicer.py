"""gRPC side of the ledger: servicers that map pb2 <-> domain objects and errors -> status codes.

`LedgerServicer` (validator), `LedgerPeerServicer` (peer host, many identities) and
`CentralMetadataServicer` (baseline) map messages and errors only; the rules live in
`validator.ValidatorCore`, `peer.PeerHost`, `central.CentralStore` and the domain modules.
The validator's sealing thread is `propagation.Propagator`; traffic is counted by the
interceptors of `metering`, around these servicers.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import NoReturn

import grpc

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as pb
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from agents.common.client import peer_identity
from agents.common.status import StatusTable, abort, mapped_errors
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
    MembershipFull,
    ReplayDetected,
    UnknownPeer,
)
from agents.ledger.peer import PeerHost
from agents.ledger.policy import CENTRAL_SERVICE, LEDGER_SERVICE, PEER_SERVICE
from agents.ledger.validator import ValidatorCore

__all__ = ["CENTRAL_SERVICE", "LEDGER_SERVICE", "PEER_SERVICE"]
MAX_WAIT_MS = 10_000
MAX_BLOCKS_PER_CALL = 256


#: ledger error -> gRPC status (`agents.common.status`; anything else: its INTERNAL fallback).
#: ReplayDetected first: it is both an AdmissionRefused and a ConfirmationRefused.
_STATUS: StatusTable = (
    (ReplayDetected, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidMetadata, grpc.StatusCode.INVALID_ARGUMENT),
    (ChainError, grpc.StatusCode.INVALID_ARGUMENT),
    (MembershipFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (AdmissionRefused, grpc.StatusCode.PERMISSION_DENIED),
    (ConfirmationRefused, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownPeer, grpc.StatusCode.FAILED_PRECONDITION),
)

#: ledger error -> the `edgeferry.common.v1.ErrorCode` of a refused confirmation in a
#: SubmitConfirmations answer (which refuses entries, not the call); else ERROR_CODE_INTERNAL.
_ERROR_CODES: tuple[tuple[type[LedgerError], common_pb2.ErrorCode.ValueType], ...] = (
    (ReplayDetected, common_pb2.ERROR_CODE_REPLAY),
    (InvalidMetadata, common_pb2.ERROR_CODE_MALFORMED),
    (ChainError, common_pb2.ERROR_CODE_BAD_SIGNATURE),
    (AdmissionRefused, common_pb2.ERROR_CODE_UNKNOWN_PRINCIPAL),
    (ConfirmationRefused, common_pb2.ERROR_CODE_BAD_SIGNATURE),
)


def _errors(context: grpc.ServicerContext) -> AbstractContextManager[None]:
    """Ledger errors by `_STATUS`, with their one-line message (agents.common.status)."""
    return mapped_errors(context, LedgerError, _STATUS)


def _error_code(exc: LedgerError) -> common_pb2.ErrorCode.ValueType:
    return next((code for cls, code in _ERROR_CODES if isinstance(exc, cls)),
                common_pb2.ERROR_CODE_INTERNAL)


def _not_found(context: grpc.ServicerContext, message: str) -> NoReturn:
    abort(context, grpc.StatusCode.NOT_FOUND, message)


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    """The validator's API."""

    def __init__(self, core: ValidatorCore,
                 on_change: Callable[[], None] | None = None) -> None:
        self.core = core
        self._on_change = on_change or (lambda: None)

    def RegisterNode(self, request: pb.RegisterNodeRequest,
                     context: grpc.ServicerContext) -> pb.RegisterNodeResponse:
        who = peer_identity(context)  # the policy admitted it for these ids
        with _errors(context):
            for reg in request.registrations:
                self.core.register(registration_from_pb(reg), who)
        self._on_change()
        return pb.RegisterNodeResponse(chain_id=self.core.chain.chain_id,
                                       head_height=self.core.head_height(),
                                       total_nodes=self.core.total_nodes())

    def SubmitTransaction(self, request: pb.SubmitTransactionRequest,
                          context: grpc.ServicerContext) -> pb.SubmitTransactionResponse:
        with _errors(context):
            tx_id = self.core.submit(tx_from_pb(request.transaction))
        return pb.SubmitTransactionResponse(tx_id=tx_id)

    def GetConfirmations(self, request: pb.GetConfirmationsRequest,
                         context: grpc.ServicerContext) -> pb.GetConfirmationsResponse:
        wait_s = min(request.max_wait_ms, MAX_WAIT_MS) / 1000
        try:
            count = self.core.confirmations(request.tx_id, request.at_least, wait_s)
        except AdmissionRefused as exc:
            _not_found(context, str(exc))
        return pb.GetConfirmationsResponse(confirmations=count.confirmations,
                                           total_nodes=count.total_nodes, height=count.height)

    def GetBlocks(self, request: pb.GetBlocksRequest,
                  context: grpc.ServicerContext) -> pb.GetBlocksResponse:
        blocks = self.core.blocks_from(request.from_height,
                                       min(request.max_blocks or 64, MAX_BLOCKS_PER_CALL))
        return pb.GetBlocksResponse(blocks=[block_to_pb(b) for b in blocks],
                                    head_height=self.core.head_height())

    def SubmitConfirmations(self, request: pb.SubmitConfirmationsRequest,
                            context: grpc.ServicerContext) -> pb.SubmitConfirmationsResponse:
        accepted, errors = 0, []
        for conf in request.confirmations:
            try:
                self.core.record(confirmation_from_pb(conf))
                accepted += 1
            except LedgerError as exc:
                errors.append(common_pb2.Error(code=_error_code(exc), message=str(exc)))
        return pb.SubmitConfirmationsResponse(accepted=accepted, errors=errors)

    def GetMetadata(self, request: pb.GetMetadataRequest,
                    context: grpc.ServicerContext) -> pb.GetMetadataResponse:
        found = self.core.latest_metadata(request.container_id)
        if found is None:
            _not_found(context, f"no metadata for container {request.container_id!r}")
        tx, height = found
        return pb.GetMetadataResponse(transaction=tx_to_pb(tx), height=height)

    def GetStatus(self, request: pb.GetStatusRequest,
                  context: grpc.ServicerContext) -> pb.GetStatusResponse:
        return pb.GetStatusResponse(chain_id=self.core.chain.chain_id,
                                    head_height=self.core.head_height(),
                                    total_nodes=self.core.total_nodes(),
                                    stored_bytes=self.core.store.size_bytes())


class LedgerPeerServicer(pb_grpc.LedgerPeerServiceServicer):
    """A peer host's API: block delivery to hosted identities and local replica reads."""

    def __init__(self, host: PeerHost) -> None:
        self.host = host

    def DeliverBlocks(self, request: pb.DeliverBlocksRequest,
                      context: grpc.ServicerContext) -> pb.DeliverBlocksResponse:
        with _errors(context):
            result = self.host.deliver(request.peer_id,
                                       [block_from_pb(b) for b in request.blocks])
        resp = pb.DeliverBlocksResponse(
            status=pb.DELIVER_STATUS_GAP if result.gap else pb.DELIVER_STATUS_OK,
            head_height=result.head_height,
        )
        if result.confirmation is not None:
            resp.confirmation.CopyFrom(confirmation_to_pb(result.confirmation))
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
        return pb.GetMetadataResponse(transaction=tx_to_pb(tx), height=height)

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

    def __init__(self, store: CentralStore) -> None:
        self.store = store

    def PutMetadata(self, request: pb.PutMetadataRequest,
                    context: grpc.ServicerContext) -> pb.PutMetadataResponse:
        with _errors(context):
            tx_id = self.store.put(tx_from_pb(request.transaction))
        return pb.PutMetadataResponse(tx_id=tx_id)

    def GetMetadata(self, request: pb.GetMetadataRequest,
                    context: grpc.ServicerContext) -> pb.GetMetadataResponse:
        with _errors(context):
            tx = self.store.latest(request.container_id)
        if tx is None:
            _not_found(context, f"no metadata for container {request.container_id!r}")
        return pb.GetMetadataResponse(transaction=tx_to_pb(tx), height=-1)
