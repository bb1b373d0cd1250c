"""gRPC side of the TCFDL TEE proxy: TransformRequest <-> ProxyCore.transform."""

from __future__ import annotations

import grpc

from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2 as pb
from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2_grpc as pb_grpc
from agents.common.status import StatusTable, mapped_errors
from agents.tcfdl_proxy.core import ProxyCore

SERVICE_NAME = "edgeferry.tcfdl.v1.TcfdlProxyService"
add_to_server = pb_grpc.add_TcfdlProxyServiceServicer_to_server
ERRORS: StatusTable = (
    (LookupError, grpc.StatusCode.NOT_FOUND),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (grpc.RpcError, grpc.StatusCode.UNAVAILABLE),
)
_CATCH = (LookupError, ValueError, grpc.RpcError)


class ProxyServicer(pb_grpc.TcfdlProxyServiceServicer):
    """TcfdlProxyService over a ProxyCore (who may call: policy.py)."""

    def __init__(self, core: ProxyCore) -> None:
        self.core = core

    def Transform(self, request: pb.TransformRequest,
                  context: grpc.ServicerContext) -> pb.TransformResponse:
        with mapped_errors(context, _CATCH, ERRORS):
            frame, ns = self.core.transform(
                request.scheme, request.frame, function=request.function,
                next_hop=request.next, first=request.first, instance=request.instance,
                envelope_only=request.envelope_only)
        return pb.TransformResponse(frame=frame, crypto_ns=ns)
