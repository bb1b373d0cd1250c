"""protobuf <-> domain conversions of the node agent (NodeService and its RASP endpoint role).

The node's own `agents.node.domain.Resources` counts bytes and bit/s like the common proto, so
`node_resources_*` copy fields one to one. RASP resources and identities (protocol units) are
converted by `agents.common.convert`; the transfer descriptor of RASP step 10 is here because
only the endpoint role and its client carry it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents.node.domain import Layer, Resources
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import TransferDescriptor


def node_resources_to_pb(r: Resources) -> common_pb2.Resources:
    """Node resources (bytes, bit/s) -> common proto (same units)."""
    return common_pb2.Resources(**r.as_dict())


def node_resources_from_pb(r: common_pb2.Resources) -> Resources:
    """Common proto -> node resources (same units, GPU included)."""
    return Resources(r.cpu_millicores, r.memory_bytes, r.storage_bytes, r.network_bps, r.gpu)


def layers_to_pb(layers: Sequence[Layer]) -> list[pb.LayerTransfer]:
    """Image layers moved by a push or pull -> their proto rows."""
    return [pb.LayerTransfer(digest=x.digest, size=x.size, transferred=x.transferred)
            for x in layers]


def timing(
    phase: str,
    seconds: float,
    bytes_moved: int = 0,
    detail: str = "",
    outcome: common_pb2.PhaseOutcome.ValueType = common_pb2.PHASE_OUTCOME_OK,
) -> common_pb2.PhaseTiming:
    """One phase's timing row."""
    return common_pb2.PhaseTiming(phase=phase, wall_seconds=seconds, bytes_moved=bytes_moved,
                                  outcome=outcome, detail=detail)


def transfer_from_pb(msg: Any) -> TransferDescriptor:
    """A `TransferDescriptor` message -> the protocol type (MALFORMED without a service)."""
    if not msg.service:
        raise ProtocolError(ErrorCode.MALFORMED, "transfer descriptor names no service")
    return TransferDescriptor(
        service=msg.service,
        image_ref=msg.image_ref,
        image_digest=msg.image_digest,
        size_bytes=int(msg.size_bytes),
    )


def transfer_to_pb(t: TransferDescriptor, cls: Any) -> Any:
    """The protocol type -> a `TransferDescriptor` message of class `cls`."""
    return cls(
        service=t.service, image_ref=t.image_ref, image_digest=t.image_digest,
        size_bytes=t.size_bytes,
    )
