"""gRPC side of a TCFDL master: instance registration and the function list."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2 as pb
from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2_grpc as pb_grpc
from agents.common.client import peer_identity
from agents.common.errors import NoPeerIdentity
from agents.common.status import StatusTable, abort, mapped_errors
from agents.security.tcfdl.schemes import check_function
from agents.tcfdl_master.natsconf import Subjects
from agents.tcfdl_master.routing import FunctionTable

SERVICE_NAME = "edgeferry.tcfdl.v1.TcfdlMasterService"
add_to_server = pb_grpc.add_TcfdlMasterServiceServicer_to_server
ERRORS: StatusTable = (
    (OverflowError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (LookupError, grpc.StatusCode.NOT_FOUND),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (grpc.RpcError, grpc.StatusCode.UNAVAILABLE),
)
_CATCH = (OverflowError, LookupError, ValueError, grpc.RpcError)


class MasterServicer(pb_grpc.TcfdlMasterServiceServicer):
    """TcfdlMasterService over the master's FunctionTable; `register_function` tells the
    manager about a function new to this cluster (who may call: policy.py)."""

    def __init__(self, table: FunctionTable, register_function: Callable[[str], None]) -> None:
        self.table = table
        self.register_function = register_function

    def RegisterInstance(self, request: pb.RegisterInstanceRequest,
                         context: grpc.ServicerContext) -> pb.RegisterInstanceResponse:
        try:
            caller = peer_identity(context)
        except NoPeerIdentity:
            abort(context, grpc.StatusCode.UNAUTHENTICATED, "RegisterInstance needs mTLS")
        with mapped_errors(context, _CATCH, ERRORS):
            check_function(request.function)
            self.register_function(request.function)
            self.table.register(request.function, caller)
        return pb.RegisterInstanceResponse(subject=Subjects.instance(caller))

    def ListFunctions(self, request: pb.ListFunctionsRequest,
                      context: grpc.ServicerContext) -> pb.ListFunctionsResponse:
        return pb.ListFunctionsResponse(functions=[
            pb.FunctionEntry(function=f, instances=i) for f, i in self.table.snapshot().items()])
