"""protobuf <-> security-layer types shared by the agents: RASP `Resources`, `PublicIdentity`.

One unit convention: the common proto counts bytes and bit/s; the protocol's `Resources` count
CPU in millicores, memory and storage in MiB (`MIB`) and network in Mbit/s (`MBIT`). Capacities
are rounded down and requests rounded up when converting, so a conversion never makes a request
look smaller or a host larger. (The node agent's own `agents.node.domain.Resources` counts bytes
like the proto; its converters are in `agents.node.convert`.)
"""

from __future__ import annotations

from typing import Any

from agents._proto.edgeferry.common.v1 import common_pb2
from agents.security.crypto import PublicIdentity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources

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
    """Protocol units -> common proto (bytes, bit/s)."""
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
    """The security type -> a `PublicIdentity` message of class `cls` (ras, smf proto)."""
    return cls(name=public.name, encoded=public.to_bytes())
