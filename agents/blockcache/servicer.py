"""gRPC side of the blockcache agent: protobuf <-> EdgeCore / OriginCore, errors -> status."""

from __future__ import annotations

import grpc

from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2 as pb
from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2_grpc as pb_grpc
from agents.blockcache.convert import (
    GRANULARITY_FROM_PB,
    GRANULARITY_TO_PB,
    POLICY_FROM_PB,
    POLICY_TO_PB,
    SOURCE_TO_PB,
    manifest_to_pb,
    signed_grant_from_pb,
)
from agents.blockcache.core import Counters, EdgeCore, NotInThisMode, OriginCore
from agents.blockcache.store import StoreFull
from agents.common.status import StatusTable, abort, mapped_errors
from agents.security.grant import input_digest
from agents.sso.blocks import BlockIntegrityError
from agents.sso.cache import CacheStats

SERVICE_NAME = "edgeferry.blockcache.v1.BlockCacheService"
#: Block data one Fetch returns at most (the server's send limit is 16 MiB).
MAX_FETCH_DATA_BYTES = 12 * 1024 * 1024

ERRORS: StatusTable = (
    (BlockIntegrityError, grpc.StatusCode.DATA_LOSS),
    (NotInThisMode, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (LookupError, grpc.StatusCode.NOT_FOUND),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (grpc.RpcError, grpc.StatusCode.UNAVAILABLE),  # the origin, asked for a manifest, failed
)
_CATCH = (BlockIntegrityError, NotInThisMode, StoreFull, LookupError, ValueError, grpc.RpcError)


def stats_to_pb(core: EdgeCore | OriginCore) -> pb.CacheStats:
    """The agent's statistics message."""
    if isinstance(core, EdgeCore):
        cache, counters = core.stats()
        return _stats(core, cache, counters)
    return _stats(core, None, core.stats())


def _stats(core: EdgeCore | OriginCore, cache: CacheStats | None,
           counters: Counters) -> pb.CacheStats:
    out = pb.CacheStats(mode=core.mode, node=core.node,
                        from_neighbours=counters.from_neighbours,
                        from_origin=counters.from_origin, bytes_in=counters.bytes_in,
                        rejected_corrupt=counters.rejected_corrupt,
                        served_to_peers=counters.served_to_peers)
    if cache is not None and isinstance(core, EdgeCore):
        out.requests, out.hits, out.misses = cache.requests, cache.hits, cache.misses
        out.evictions, out.bytes_used = cache.evictions, cache.bytes_used
        out.capacity_bytes = cache.capacity_bytes
        out.policy = POLICY_TO_PB[core.cache.policy]
        out.granularity = GRANULARITY_TO_PB[core.cache.granularity]
    return out


class BlockCacheServicer(pb_grpc.BlockCacheServiceServicer):
    """BlockCacheService over an edge or origin core (who may call what: policy.py)."""

    def __init__(self, core: EdgeCore | OriginCore) -> None:
        self.core = core

    def _edge(self, rpc: str) -> EdgeCore:
        if not isinstance(self.core, EdgeCore):
            raise NotInThisMode(f"{rpc} is served by edge blockcache agents, this is the origin")
        return self.core

    def _origin(self, rpc: str) -> OriginCore:
        if not isinstance(self.core, OriginCore):
            raise NotInThisMode(f"{rpc} is served by the origin, this is edge {self.core.node!r}")
        return self.core

    def GetManifest(self, request: pb.GetManifestRequest,
                    context: grpc.ServicerContext) -> pb.GetManifestResponse:
        with mapped_errors(context, _CATCH, ERRORS):
            manifest = self.core.manifest(request.file_id)
        return pb.GetManifestResponse(manifest=manifest_to_pb(manifest))

    def GetBlock(self, request: pb.GetBlockRequest,
                 context: grpc.ServicerContext) -> pb.GetBlockResponse:
        with mapped_errors(context, _CATCH, ERRORS):
            data = self.core.peek(request.file_id, request.index, request.digest)
        if data is None:
            abort(context, grpc.StatusCode.NOT_FOUND,
                  f"{self.core.node} does not hold block {request.digest[:16]}...")
        return pb.GetBlockResponse(data=data)

    def Fetch(self, request: pb.FetchRequest, context: grpc.ServicerContext) -> pb.FetchResponse:
        with mapped_errors(context, _CATCH, ERRORS):
            out = self._edge("Fetch").fetch(request.file_id, list(request.indices))
        size = sum(len(b.data) for b in out.blocks) if request.return_data else 0
        if size > MAX_FETCH_DATA_BYTES:
            abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                  f"the blocks asked for are {size} bytes, over {MAX_FETCH_DATA_BYTES}: "
                  "ask for fewer blocks per Fetch")
        return pb.FetchResponse(
            manifest=manifest_to_pb(out.manifest),
            blocks=[pb.FetchedBlock(index=b.index, digest=b.digest,
                                    data=b.data if request.return_data else b"",
                                    source=SOURCE_TO_PB[b.source]) for b in out.blocks],
            hits=out.hits, from_neighbours=out.from_neighbours, from_origin=out.from_origin,
            bytes_in=out.bytes_in, rejected_corrupt=out.rejected_corrupt)

    def PutFile(self, request: pb.PutFileRequest,
                context: grpc.ServicerContext) -> pb.PutFileResponse:
        with mapped_errors(context, _CATCH, ERRORS):
            manifest = self._origin("PutFile").put(request.file_id, request.data,
                                                   request.block_size)
        return pb.PutFileResponse(manifest=manifest_to_pb(manifest))

    def Configure(self, request: pb.ConfigureRequest,
                  context: grpc.ServicerContext) -> pb.ConfigureResponse:
        with mapped_errors(context, _CATCH, ERRORS):
            edge = self._edge("Configure")
            edge.configure(request.capacity_bytes or None,
                           POLICY_FROM_PB.get(request.policy),
                           GRANULARITY_FROM_PB.get(request.granularity))
        return pb.ConfigureResponse(stats=stats_to_pb(self.core))

    def GetStats(self, request: pb.GetStatsRequest,
                 context: grpc.ServicerContext) -> pb.GetStatsResponse:
        return pb.GetStatsResponse(stats=stats_to_pb(self.core))

    def ResetStats(self, request: pb.ResetStatsRequest,
                   context: grpc.ServicerContext) -> pb.ResetStatsResponse:
        before = stats_to_pb(self.core)
        self.core.reset_stats()
        return pb.ResetStatsResponse(stats=before)

    def Execute(self, request: pb.ExecuteRequest,
                context: grpc.ServicerContext) -> pb.ExecuteResponse:
        with mapped_errors(context, _CATCH, ERRORS):
            grant = signed_grant_from_pb(request.grant) if request.HasField("grant") else None
            cost = (request.cost_mean_ms, request.cost_sd_ms) if request.cost_mean_ms else None
            out = self._edge("Execute").execute(request.service, request.input, grant, cost)
        return pb.ExecuteResponse(output=out.output, output_digest=input_digest(out.output),
                                  transform_ns=out.transform_ns, modeled_ns=out.modeled_ns,
                                  granted=out.granted)


def add_to_server(servicer: BlockCacheServicer, server: grpc.Server) -> None:
    """Register the servicer with a grpc server."""
    pb_grpc.add_BlockCacheServiceServicer_to_server(servicer, server)
