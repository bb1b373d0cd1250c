"""gRPC mapping of the node agent: pb requests -> `NodeCore`, domain errors -> status codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as pb_grpc
from agents.common.logging import get_logger
from agents.common.status import StatusTable, mapped_errors, protocol_errors
from agents.node.core import NodeCore
from agents.node.domain import (
    Conflict,
    DigestMismatch,
    Fenced,
    InvalidRequest,
    NoCapacity,
    NodeError,
    NotFound,
    PhaseFailed,
)
from agents.node.policy import NODE_SERVICE

__all__ = ["NODE_SERVICE", "NodeServicer"]
T = TypeVar("T")

_CODES: StatusTable = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (Fenced, grpc.StatusCode.FAILED_PRECONDITION),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Conflict, grpc.StatusCode.ALREADY_EXISTS),
    (DigestMismatch, grpc.StatusCode.DATA_LOSS),
    (NoCapacity, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (PhaseFailed, grpc.StatusCode.ABORTED),
)


class NodeServicer(pb_grpc.NodeServiceServicer):
    """NodeService over a NodeCore (who may call what: agents/node/policy.py)."""

    def __init__(self, core: NodeCore) -> None:
        self.core = core
        self.log = get_logger("node.servicer")

    def _call(self, context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
        with mapped_errors(context, NodeError, _CODES):
            return fn()

    def GetResources(self, request: pb.GetResourcesRequest,
                     context: grpc.ServicerContext) -> pb.GetResourcesResponse:
        return self._call(context, self.core.report)

    def RunWorkload(self, request: pb.RunWorkloadRequest,
                    context: grpc.ServicerContext) -> pb.RunWorkloadResponse:
        return self._call(context, lambda: self.core.run(request))

    def RemoveWorkload(self, request: pb.RemoveWorkloadRequest,
                       context: grpc.ServicerContext) -> pb.RemoveWorkloadResponse:
        return self._call(
            context, lambda: pb.RemoveWorkloadResponse(removed=self.core.remove(request.name)))

    def StopContainer(self, request: pb.StopContainerRequest,
                      context: grpc.ServicerContext) -> pb.StopContainerResponse:
        return self._call(context, lambda: self.core.stop(request))

    def StartContainer(self, request: pb.StartContainerRequest,
                       context: grpc.ServicerContext) -> pb.StartContainerResponse:
        return self._call(context, lambda: self.core.start(request))

    def CommitContainer(self, request: pb.CommitContainerRequest,
                        context: grpc.ServicerContext) -> pb.CommitContainerResponse:
        return self._call(context, lambda: self.core.commit(request))

    def PushImage(self, request: pb.PushImageRequest,
                  context: grpc.ServicerContext) -> pb.PushImageResponse:
        return self._call(context, lambda: self.core.push(request))

    def PullImage(self, request: pb.PullImageRequest,
                  context: grpc.ServicerContext) -> pb.PullImageResponse:
        return self._call(context, lambda: self.core.pull(request))

    def PrePullImage(self, request: pb.PrePullImageRequest,
                     context: grpc.ServicerContext) -> pb.PrePullImageResponse:
        return self._call(context, lambda: self.core.prepull(request))

    def ExportDiff(self, request: pb.ExportDiffRequest,
                   context: grpc.ServicerContext) -> Iterator[pb.ExportDiffResponse]:
        with mapped_errors(context, NodeError, _CODES):
            yield from self.core.export_diff(request)

    def ImportDiff(self, request_iterator: Iterator[pb.ImportDiffRequest],
                   context: grpc.ServicerContext) -> pb.ImportDiffResponse:
        return self._call(context, lambda: self.core.import_diff(request_iterator))

    def LoadDiff(self, request: pb.LoadDiffRequest,
                 context: grpc.ServicerContext) -> pb.LoadDiffResponse:
        return self._call(context, lambda: self.core.load_diff(request))

    def ProbeFirstResponse(self, request: pb.ProbeFirstResponseRequest,
                           context: grpc.ServicerContext) -> pb.ProbeFirstResponseResponse:
        return self._call(context, lambda: self.core.probe(request))

    def GetMigration(self, request: pb.GetMigrationRequest,
                     context: grpc.ServicerContext) -> pb.GetMigrationResponse:
        return self._call(context, lambda: self.core.migration(request.migration_id))

    def DescribeWorkload(self, request: pb.DescribeWorkloadRequest,
                         context: grpc.ServicerContext) -> pb.DescribeWorkloadResponse:
        return self._call(context, lambda: self.core.describe(request.name))

    def SubmitRequest(self, request: pb.SubmitRequestRequest,
                      context: grpc.ServicerContext) -> pb.SubmitRequestResponse:
        return self._call(context, lambda: self.core.submit_request(request))

    def PublishResources(self, request: pb.PublishResourcesRequest,
                         context: grpc.ServicerContext) -> pb.PublishResourcesResponse:
        def publish() -> pb.PublishResourcesResponse:
            with protocol_errors(context):
                advert = self.core.publish(request.advertisement.body,
                                           request.advertisement.signature)
            return pb.PublishResourcesResponse(seq=advert.seq)

        return self._call(context, publish)
