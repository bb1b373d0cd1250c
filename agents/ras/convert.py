"""protobuf <-> security-layer types for RASP (Resources, PublicIdentity, TransferDescriptor).

Units: the protocol's `Resources` count CPU in millicores, memory and storage in MiB and network
in Mbit/s; the common proto counts bytes and bit/s. Capacities are rounded down and requests
rounded up when converting, so a conversion never makes a request look smaller or a host larger.
"""

from __future__ import annotations

from typing import Any

from agents._proto.edgeferry.common.v1 import common_pb2
from agents.security.crypto import PublicIdentity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources, TransferDescriptor

MIB = 1024 * 1024
MBIT = 1_000_000


def _div(value: int, unit: int, round_up: bool) -> int:
    return -(-value // unit) if round_up else value // unit


def resources_from_pb(msg: common_pb2.Resources, *, request: bool = False) -> Resources:
    """Common proto -> protocol units (`request=True` rounds up, else down)."""
    return Resources(
        cpu=int(msg.cpu_millicores),
        memory=_div(int(msg.memory_bytes), MIB, request),
        storage=_div(int(msg.storage_bytes), MIB, request),
        network=_div(int(msg.network_bps), MBIT, request),
    )


def resources_to_pb(res: Resources) -> common_pb2.Resources:
    return common_pb2.Resources(
        cpu_millicores=res.cpu,
        memory_bytes=res.memory * MIB,
        storage_bytes=res.storage * MIB,
        network_bps=res.network * MBIT,
    )


def identity_from_pb(msg: Any) -> PublicIdentity:
    """A `PublicIdentity` message (ras or smf proto) -> the security type; name must match."""
    if not msg.encoded:
        raise ProtocolError(ErrorCode.MALFORMED, "public identity is missing")
    try:
        public = PublicIdentity.from_bytes(bytes(msg.encoded))
    except ValueError as exc:
        raise ProtocolError(ErrorCode.MALFORMED, f"bad public identity: {exc}") from None
    if msg.name and msg.name != public.name:
        raise ProtocolError(ErrorCode.MALFORMED, "identity name differs from its encoding")
    return public


def identity_to_pb(public: PublicIdentity, cls: Any) -> Any:
    return cls(name=public.name, encoded=public.to_bytes())


def transfer_from_pb(msg: Any) -> TransferDescriptor:
    if not msg.service:
        raise ProtocolError(ErrorCode.MALFORMED, "transfer descriptor names no service")
    return TransferDescriptor(
        service=msg.service,
        image_ref=msg.image_ref,
        image_digest=msg.image_digest,
        size_bytes=int(msg.size_bytes),
    )


def transfer_to_pb(t: TransferDescriptor, cls: Any) -> Any:
    return cls(
        service=t.service, image_ref=t.image_ref, image_digest=t.image_digest,
        size_bytes=t.size_bytes,
    )
