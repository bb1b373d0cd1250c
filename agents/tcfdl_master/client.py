"""What other processes use of a TCFDL master: its gRPC service (workers register; clients and
the controller list functions) and its NATS protocol (subjects, headers, TLS connection), which
the instances and offloading clients speak on the cluster's server."""

from __future__ import annotations

import grpc

from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2 as pb
from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2_grpc as pb_grpc
from agents.common.status import call
from agents.tcfdl_master import wire
from agents.tcfdl_master.bus import connect, tls_context
from agents.tcfdl_master.natsconf import Subjects, stream_names, token

__all__ = ["MasterClient", "Subjects", "connect", "stream_names", "tls_context", "token", "wire"]

DEFAULT_TIMEOUT_S = 10.0


class MasterClient:
    """Typed calls to a master (refusals raise RemoteProtocolError or grpc.RpcError)."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = pb_grpc.TcfdlMasterServiceStub(channel)
        self.timeout = timeout

    def register_instance(self, function: str) -> str:
        """Register the caller as an instance of `function`; its NATS subject."""
        r = call(self.stub.RegisterInstance, pb.RegisterInstanceRequest(function=function),
                 rpc="tcfdl-master.RegisterInstance", timeout=self.timeout)
        return r.subject

    def functions(self) -> dict[str, list[str]]:
        """The cluster's functions and their instances."""
        r = call(self.stub.ListFunctions, pb.ListFunctionsRequest(),
                 rpc="tcfdl-master.ListFunctions", timeout=self.timeout)
        return {f.function: list(f.instances) for f in r.functions}
