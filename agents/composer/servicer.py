"""gRPC side of the composer agent: protobuf <-> ComposerCore, refusals -> status."""

from __future__ import annotations

import grpc

from agents._proto.edgeferry.composer.v1 import composer_service_pb2 as pb
from agents._proto.edgeferry.composer.v1 import composer_service_pb2_grpc as pb_grpc
from agents.common.status import StatusTable, abort, mapped_errors
from agents.composer.core import ComposerCore, UnsoundComposition
from agents.sso.blocks import BlockIntegrityError
from agents.sso.strategies import Strategy
from agents.sso.wfnet import CompositionError

SERVICE_NAME = "edgeferry.composer.v1.ComposerService"
MAX_RESULT_BYTES = 8 * 1024 * 1024
MAX_NODES = 256
MAX_INDICES = 1024

STRATEGY_FROM_PB = {
    pb.STRATEGY_NON_COOPERATIVE: Strategy.NON_COOPERATIVE,
    pb.STRATEGY_COOPERATIVE: Strategy.COOPERATIVE,
    pb.STRATEGY_COOPERATIVE_SECURE: Strategy.SECURE,
}
ERRORS: StatusTable = (
    (UnsoundComposition, grpc.StatusCode.FAILED_PRECONDITION),
    (CompositionError, grpc.StatusCode.INVALID_ARGUMENT),
    (PermissionError, grpc.StatusCode.PERMISSION_DENIED),
    (BlockIntegrityError, grpc.StatusCode.DATA_LOSS),
    (LookupError, grpc.StatusCode.NOT_FOUND),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (grpc.RpcError, grpc.StatusCode.UNAVAILABLE),
)
_CATCH = (UnsoundComposition, CompositionError, PermissionError, LookupError, ValueError,
          grpc.RpcError)


class ComposerServicer(pb_grpc.ComposerServiceServicer):
    """ComposerService over a ComposerCore (who may call what: agents/composer/policy.py)."""

    def __init__(self, core: ComposerCore) -> None:
        self.core = core

    def Compose(self, request: pb.ComposeRequest,
                context: grpc.ServicerContext) -> pb.ComposeResponse:
        with mapped_errors(context, _CATCH, ERRORS):
            composed = self.core.compose(request.process)
        comp = composed.composition
        return pb.ComposeResponse(
            tasks=[pb.Task(transition=t, service=s) for t, s in sorted(comp.tasks.items())],
            stages=[pb.Stage(transitions=stage) for stage in composed.stages],
            compose_ns=composed.compose_ns, soundness_ns=composed.soundness_ns,
            places=len(comp.structure.places))

    def Run(self, request: pb.RunRequest, context: grpc.ServicerContext) -> pb.RunResponse:
        strategy = STRATEGY_FROM_PB.get(request.strategy)
        if strategy is None:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                  "strategy: choose non-cooperative, cooperative or cooperative-secure")
        with mapped_errors(context, _CATCH, ERRORS):
            if len(request.nodes) > MAX_NODES:
                abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                      f"nodes: at most {MAX_NODES} names")
            if len(request.indices) > MAX_INDICES:
                abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                      f"indices: at most {MAX_INDICES} blocks")
            out = self.core.run(request.process, strategy, request.home, request.file_id,
                                request.request_id, tuple(request.nodes),
                                tuple(request.indices))
        if request.return_result and len(out.result) > MAX_RESULT_BYTES:
            abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                  f"the result is {len(out.result)} bytes, over {MAX_RESULT_BYTES}: ask for its "
                  "digest only")
        return pb.RunResponse(
            request_id=out.request_id, result_digest=out.result_digest,
            result_size=len(out.result), result=out.result if request.return_result else b"",
            phases=[pb.Phase(name=p.name, ns=p.ns, node=p.node, modeled_ns=p.modeled_ns)
                    for p in out.phases],
            tasks=[pb.Task(transition=t, service=out.tasks[t], node=out.assignment.get(t, ""))
                   for t in sorted(out.tasks)],
            serial_order=out.serial, bytes_moved=out.bytes_moved, hits_local=out.hits_local,
            hits_neighbour=out.hits_neighbour, from_origin=out.from_origin,
            total_ns=out.total_ns, grants=out.grants)

    def ListOffers(self, request: pb.ListOffersRequest,
                   context: grpc.ServicerContext) -> pb.ListOffersResponse:
        return pb.ListOffersResponse(
            offers=[pb.Offer(node=o.node, service=o.service, cost_mean_ms=o.cost_mean_ms,
                             cost_sd_ms=o.cost_sd_ms) for o in self.core.offers],
            access=[pb.NodeAccess(node=n, resources=sorted(self.core.chi.get(n, frozenset())))
                    for n in self.core.nodes])


def add_to_server(servicer: ComposerServicer, server: grpc.Server) -> None:
    """Register the servicer with a grpc server."""
    pb_grpc.add_ComposerServiceServicer_to_server(servicer, server)
