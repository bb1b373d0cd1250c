"""Errors -> gRPC status, for every servicer, and protocol refusals back from a failed call.

One mapping with one fallback (`FALLBACK`, INTERNAL): a servicer lists its own exception
classes with their status codes (`StatusTable`) and runs each call inside `mapped_errors`; an
exception of the caught family that no entry names ends the call with INTERNAL.

A refused message ends the RPC with a gRPC status code chosen from the security layer's
`ErrorCode` and two trailing metadata entries, so a caller (or a test) can assert the precise
reason without parsing text:

* ``ef-protocol-error``: the security layer's code (``REPLAY``, ``STALE_NONCE``, ...);
* ``ef-error-code``: the nearest ``edgeferry.common.v1.ErrorCode`` name (``ERROR_CODE_REPLAY``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn, TypeVar, cast

import grpc

from agents._proto.edgeferry.common.v1 import common_pb2
from agents.security.errors import ErrorCode, ProtocolError

#: exception class -> status code; the first entry the exception is an instance of wins
StatusTable = Sequence[tuple[type[BaseException], grpc.StatusCode]]
#: the status of an error no table entry names (the only fallback of every servicer)
FALLBACK = grpc.StatusCode.INTERNAL

PROTOCOL_ERROR_KEY = "ef-protocol-error"
COMMON_ERROR_KEY = "ef-error-code"

_STATUS: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.REPLAY: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.BAD_SIGNATURE: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.BAD_TAG: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.DECRYPT_FAILED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.KEY_MISMATCH: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.STALE_NONCE: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.EXPIRED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.REVOKED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.UNKNOWN_PRINCIPAL: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.NOT_AUTHORISED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.WRONG_STEP: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.WRONG_SESSION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.WRONG_RECIPIENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.REFLECTED: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.INSUFFICIENT_RESOURCES: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.INSECURE_KEY_FILE: grpc.StatusCode.INTERNAL,
    ErrorCode.LIMIT_REACHED: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

_COMMON: dict[str, common_pb2.ErrorCode.ValueType] = {
    "MALFORMED": common_pb2.ERROR_CODE_MALFORMED,
    "REPLAY": common_pb2.ERROR_CODE_REPLAY,
    "BAD_SIGNATURE": common_pb2.ERROR_CODE_BAD_SIGNATURE,
    "BAD_TAG": common_pb2.ERROR_CODE_BAD_TAG,
    "DECRYPT_FAILED": common_pb2.ERROR_CODE_BAD_TAG,
    "KEY_MISMATCH": common_pb2.ERROR_CODE_BAD_SIGNATURE,
    "STALE_NONCE": common_pb2.ERROR_CODE_STALE_NONCE,
    "EXPIRED": common_pb2.ERROR_CODE_EXPIRED,
    "REVOKED": common_pb2.ERROR_CODE_REVOKED,
    "UNKNOWN_PRINCIPAL": common_pb2.ERROR_CODE_UNKNOWN_PRINCIPAL,
    "NOT_AUTHORISED": common_pb2.ERROR_CODE_PERMISSION_DENIED,
    "WRONG_STEP": common_pb2.ERROR_CODE_MALFORMED,
    "WRONG_SESSION": common_pb2.ERROR_CODE_NOT_FOUND,
    "WRONG_RECIPIENT": common_pb2.ERROR_CODE_MALFORMED,
    "REFLECTED": common_pb2.ERROR_CODE_MALFORMED,
    "INSUFFICIENT_RESOURCES": common_pb2.ERROR_CODE_INSUFFICIENT_RESOURCES,
    "UNKNOWN_SERVICE": common_pb2.ERROR_CODE_NOT_FOUND,
    "INSECURE_KEY_FILE": common_pb2.ERROR_CODE_INTERNAL,
    "LIMIT_REACHED": common_pb2.ERROR_CODE_INSUFFICIENT_RESOURCES,
}


def status_for(code: ErrorCode | str) -> grpc.StatusCode:
    """The gRPC status code a refusal with `code` ends with."""
    if str(code) == "UNKNOWN_SERVICE":
        return grpc.StatusCode.NOT_FOUND
    try:
        return _STATUS[ErrorCode(str(code))]
    except (ValueError, KeyError):
        return FALLBACK


def common_code(code: ErrorCode | str) -> common_pb2.ErrorCode.ValueType:
    """The `edgeferry.common.v1.ErrorCode` value nearest to a security-layer code."""
    return _COMMON.get(str(code), common_pb2.ERROR_CODE_INTERNAL)


def abort_protocol(context: grpc.ServicerContext, exc: ProtocolError) -> NoReturn:
    """End the RPC for a refused message: status + both trailing error codes."""
    code = str(exc.code)
    context.set_trailing_metadata(
        (
            (PROTOCOL_ERROR_KEY, code),
            (COMMON_ERROR_KEY, common_pb2.ErrorCode.Name(common_code(code))),
        )
    )
    context.abort(status_for(code), exc.message)
    raise AssertionError("unreachable")  # context.abort raises


@contextmanager
def protocol_errors(context: grpc.ServicerContext) -> Iterator[None]:
    """Turn a ProtocolError raised inside the block into `abort_protocol`."""
    try:
        yield
    except ProtocolError as exc:
        abort_protocol(context, exc)


def status_of(exc: BaseException, table: StatusTable) -> grpc.StatusCode:
    """The status an error ends a call with: a ProtocolError's by its code, else the first
    `table` entry `exc` is an instance of, else `FALLBACK`."""
    if isinstance(exc, ProtocolError):
        return status_for(exc.code)
    return next((status for cls, status in table if isinstance(exc, cls)), FALLBACK)


def abort(context: grpc.ServicerContext, status: grpc.StatusCode, message: str) -> NoReturn:
    """End the RPC with `status` and a one-line message (``context.abort`` raises)."""
    context.abort(status, message)
    raise AssertionError("unreachable")


@contextmanager
def mapped_errors(
    context: grpc.ServicerContext,
    catch: type[BaseException] | tuple[type[BaseException], ...],
    table: StatusTable,
) -> Iterator[None]:
    """Inside the block: a ProtocolError ends the call as `abort_protocol` does; an error of
    the `catch` family ends it with `status_of(err, table)` and ``str(err)``."""
    try:
        yield
    except ProtocolError as exc:
        abort_protocol(context, exc)
    except catch as exc:
        abort(context, status_of(exc, table), str(exc))


def error_code_of(err: grpc.RpcError) -> str | None:
    """The ``ef-protocol-error`` of a failed call (None when the refusal carried none)."""
    # types-grpcio types RpcError.trailing_metadata() as attribute-only ``_Metadatum`` objects;
    # grpc returns (key, value) pairs (namedtuples), as it does for Call.trailing_metadata()
    trailing = (
        cast("Sequence[tuple[str, str | bytes]]", err.trailing_metadata())
        if hasattr(err, "trailing_metadata")
        else None
    )
    for key, value in trailing or ():
        if key == PROTOCOL_ERROR_KEY:
            return str(value)
    return None


class RemoteProtocolError(ProtocolError):
    """A peer agent refused a call with a protocol error code (see `remote_error`)."""

    def __init__(self, code: ErrorCode, message: str, *, rpc: str, status: grpc.StatusCode) -> None:
        super().__init__(code, f"{rpc}: {message}")
        self.rpc = rpc
        self.status = status


def remote_error(err: grpc.RpcError, rpc: str) -> RemoteProtocolError | None:
    """The RemoteProtocolError a failed call carries (None when it carries no protocol code)."""
    code = error_code_of(err)
    if code is None:
        return None
    details = err.details() if hasattr(err, "details") else str(err)
    try:
        parsed = ErrorCode(code)
    except ValueError:
        parsed = ErrorCode.MALFORMED
    status = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    return RemoteProtocolError(parsed, details or code, rpc=rpc, status=status)


_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


def call(
    stub_method: grpc.UnaryUnaryMultiCallable[_Request, _Response],
    request: _Request,
    *,
    rpc: str,
    timeout: float,
) -> _Response:
    """Invoke a unary stub method; a protocol refusal becomes RemoteProtocolError, other
    failures propagate as grpc.RpcError."""
    try:
        return stub_method(request, timeout=timeout)
    except grpc.RpcError as err:
        remote = remote_error(err, rpc)
        if remote is None:
            raise
        raise remote from None
