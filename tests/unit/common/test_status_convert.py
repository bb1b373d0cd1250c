"""Error -> status mapping (agents.common.status) and shared unit conversions (convert)."""

from __future__ import annotations

import grpc
import pytest

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.ras.v1 import ras_service_pb2 as pb
from agents.common.convert import (
    MIB,
    identity_from_pb,
    identity_to_pb,
    resources_from_pb,
    resources_to_pb,
)
from agents.common.status import FALLBACK, common_code, mapped_errors, status_for, status_of
from agents.security.crypto import Identity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_protocol_code_has_a_status_and_a_common_code(code: ErrorCode) -> None:
    assert status_for(code) != grpc.StatusCode.OK
    assert common_code(code) != common_pb2.ERROR_CODE_UNSPECIFIED
    assert common_code(code) != common_pb2.ERROR_CODE_INTERNAL or code is \
        ErrorCode.INSECURE_KEY_FILE


def test_specific_mappings() -> None:
    assert status_for(ErrorCode.REPLAY) == grpc.StatusCode.ALREADY_EXISTS
    assert common_code(ErrorCode.REPLAY) == common_pb2.ERROR_CODE_REPLAY
    assert status_for(ErrorCode.EXPIRED) == grpc.StatusCode.PERMISSION_DENIED
    assert common_code(ErrorCode.EXPIRED) == common_pb2.ERROR_CODE_EXPIRED
    assert status_for(ErrorCode.INSUFFICIENT_RESOURCES) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_capacities_round_down_and_requests_round_up() -> None:
    msg = common_pb2.Resources(cpu_millicores=1500, memory_bytes=MIB + 1,
                               storage_bytes=2 * MIB - 1, network_bps=1_500_000)
    assert resources_from_pb(msg) == Resources(1500, 1, 1, 1)
    assert resources_from_pb(msg, request=True) == Resources(1500, 2, 2, 2)
    res = Resources(1, 2, 3, 4)
    assert resources_from_pb(resources_to_pb(res)) == res


def test_identity_round_trip_and_name_check() -> None:
    public = Identity.generate("edge1").public
    msg = identity_to_pb(public, pb.PublicIdentity)
    assert identity_from_pb(msg) == public
    msg.name = "edge9"
    with pytest.raises(ProtocolError) as err:
        identity_from_pb(msg)
    assert err.value.code is ErrorCode.MALFORMED
    with pytest.raises(ProtocolError):
        identity_from_pb(pb.PublicIdentity())


class _Aborted(Exception):
    pass


class _Context:
    """Records what a servicer's context was told (abort raises, as grpc's does)."""

    def __init__(self) -> None:
        self.status: grpc.StatusCode | None = None
        self.trailing: tuple[tuple[str, str], ...] = ()

    def set_trailing_metadata(self, md: tuple[tuple[str, str], ...]) -> None:
        self.trailing = md

    def abort(self, status: grpc.StatusCode, message: str) -> None:
        self.status = status
        raise _Aborted(message)


class _Base(Exception):
    pass


class _Known(_Base):
    pass


TABLE = ((_Known, grpc.StatusCode.NOT_FOUND),)


def test_table_entries_then_one_fallback() -> None:
    assert FALLBACK == grpc.StatusCode.INTERNAL
    assert status_of(_Known("x"), TABLE) == grpc.StatusCode.NOT_FOUND
    assert status_of(_Base("x"), TABLE) == grpc.StatusCode.INTERNAL
    assert status_of(ProtocolError(ErrorCode.REPLAY, "x"), TABLE) == grpc.StatusCode.ALREADY_EXISTS
    assert status_for("NOT_A_CODE") == grpc.StatusCode.INTERNAL


@pytest.mark.parametrize(("exc", "status"), [
    (_Known("gone"), grpc.StatusCode.NOT_FOUND),
    (_Base("odd"), grpc.StatusCode.INTERNAL),
    (ProtocolError(ErrorCode.REPLAY, "again"), grpc.StatusCode.ALREADY_EXISTS),
])
def test_mapped_errors_aborts_with_the_mapped_status(exc: Exception,
                                                     status: grpc.StatusCode) -> None:
    context = _Context()
    with pytest.raises(_Aborted), mapped_errors(context, _Base, TABLE):  # type: ignore[arg-type]
        raise exc
    assert context.status == status


def test_mapped_errors_lets_other_errors_through() -> None:
    with pytest.raises(KeyError), mapped_errors(_Context(), _Base, TABLE):  # type: ignore[arg-type]
        raise KeyError("not ours")
