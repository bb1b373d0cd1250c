"""Client of a TCFDL TEE proxy (its master)."""

from __future__ import annotations

import grpc

from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2 as pb
from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2_grpc as pb_grpc
from agents.common.status import call

DEFAULT_TIMEOUT_S = 30.0


class ProxyClient:
    """Typed calls to a proxy (refusals raise RemoteProtocolError or grpc.RpcError)."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = pb_grpc.TcfdlProxyServiceStub(channel)
        self.timeout = timeout

    def transform(self, scheme: str, frame: bytes, *, function: str, next_hop: str = "",
                  first: bool = False, instance: str = "",
                  envelope_only: bool = False) -> tuple[bytes, int]:
        """The frame for the next hop and the proxy's crypto time (ns); with `envelope_only`
        (EAE) `frame` and the result are the frame's envelope alone (frame.split)."""
        r = call(self.stub.Transform, pb.TransformRequest(
            scheme=scheme, frame=frame, function=function, next=next_hop, first=first,
            instance=instance, envelope_only=envelope_only), rpc="tcfdl-proxy.Transform",
            timeout=self.timeout)
        return bytes(r.frame), int(r.crypto_ns)
