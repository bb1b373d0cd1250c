"""The ledger servicer's error -> status decisions, through the one mapping of
`agents.common.status` (its only fallback: INTERNAL)."""

from __future__ import annotations

import grpc
import pytest

from agents._proto.edgeferry.common.v1 import common_pb2
from agents.common.status import status_of
from agents.ledger.errors import (
    AdmissionRefused,
    BadBlockSignature,
    ConfirmationRefused,
    InvalidMetadata,
    LedgerError,
    ReplayDetected,
    UnknownPeer,
)
from agents.ledger.servicer import _STATUS, _error_code

S = grpc.StatusCode


@pytest.mark.parametrize("exc, status, code", [
    (ReplayDetected("seen"), S.ALREADY_EXISTS, common_pb2.ERROR_CODE_REPLAY),
    (InvalidMetadata("bad"), S.INVALID_ARGUMENT, common_pb2.ERROR_CODE_MALFORMED),
    (BadBlockSignature(3, "bad"), S.INVALID_ARGUMENT, common_pb2.ERROR_CODE_BAD_SIGNATURE),
    (AdmissionRefused("who"), S.PERMISSION_DENIED, common_pb2.ERROR_CODE_UNKNOWN_PRINCIPAL),
    (ConfirmationRefused("no"), S.INVALID_ARGUMENT, common_pb2.ERROR_CODE_BAD_SIGNATURE),
    (UnknownPeer("peer 'p' is not hosted here"), S.FAILED_PRECONDITION,
     common_pb2.ERROR_CODE_INTERNAL),
    (LedgerError("stored metadata was altered"), S.INTERNAL, common_pb2.ERROR_CODE_INTERNAL),
])
def test_each_ledger_error_has_its_status_and_the_rest_is_internal(exc, status, code):
    assert status_of(exc, _STATUS) == status
    assert _error_code(exc) == code
