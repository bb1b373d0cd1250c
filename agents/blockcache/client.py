"""Client of the blockcache agent (edges' peer queries, the composer, the controller).

    bc = BlockCacheClient(channel)
    manifest = bc.manifest("file-000001")
    data = bc.get_block("file-000001", 0, manifest.blocks[0])   # None: not held there
    reply = bc.fetch("file-000001", [0, 1], return_data=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2 as pb
from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2_grpc as pb_grpc
from agents.blockcache.convert import manifest_from_pb, signed_grant_to_pb
from agents.common.status import call
from agents.security.grant import SignedGrant
from agents.sso.blocks import FileManifest

DEFAULT_TIMEOUT_S = 30.0


class BlockCacheClient:
    """Typed calls to a blockcache agent."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = pb_grpc.BlockCacheServiceStub(channel)
        self.timeout = timeout

    def _call(self, name: str, request: Any) -> Any:
        return call(getattr(self.stub, name), request, rpc=f"blockcache.{name}",
                    timeout=self.timeout)

    def manifest(self, file_id: str) -> FileManifest:
        """The manifest of `file_id`."""
        resp = self._call("GetManifest", pb.GetManifestRequest(file_id=file_id))
        return manifest_from_pb(resp.manifest)

    def get_block(self, file_id: str, index: int, digest: str) -> bytes | None:
        """A block the agent holds (peer query), None when it does not hold it."""
        try:
            resp = self._call("GetBlock", pb.GetBlockRequest(file_id=file_id, index=index,
                                                             digest=digest))
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return bytes(resp.data)

    def fetch(self, file_id: str, indices: Sequence[int] = (), *,
              return_data: bool = False) -> pb.FetchResponse:
        """Blocks of `file_id` through the edge's cache (each counts one cache request)."""
        resp: pb.FetchResponse = self._call("Fetch", pb.FetchRequest(
            file_id=file_id, indices=list(indices), return_data=return_data))
        return resp

    def put_file(self, file_id: str, data: bytes, block_size: int = 0) -> FileManifest:
        """Store a file at the origin."""
        resp = self._call("PutFile", pb.PutFileRequest(file_id=file_id, data=data,
                                                       block_size=block_size))
        return manifest_from_pb(resp.manifest)

    def configure(self, capacity_bytes: int = 0,
                  policy: pb.CachePolicy.ValueType = pb.CACHE_POLICY_UNSPECIFIED,
                  granularity: pb.Granularity.ValueType = pb.GRANULARITY_UNSPECIFIED
                  ) -> pb.CacheStats:
        """Replace the edge's cache (empty); the new statistics."""
        resp = self._call("Configure", pb.ConfigureRequest(
            capacity_bytes=capacity_bytes, policy=policy, granularity=granularity))
        stats: pb.CacheStats = resp.stats
        return stats

    def stats(self) -> pb.CacheStats:
        """The agent's statistics."""
        stats: pb.CacheStats = self._call("GetStats", pb.GetStatsRequest()).stats
        return stats

    def reset_stats(self) -> pb.CacheStats:
        """Zero the statistics; the values before."""
        stats: pb.CacheStats = self._call("ResetStats", pb.ResetStatsRequest()).stats
        return stats

    def execute(self, service: str, data: bytes, *, request_id: str = "", transition: str = "",
                grant: SignedGrant | None = None,
                cost: tuple[float, float] = (0.0, 0.0)) -> pb.ExecuteResponse:
        """Apply `service` on the edge to `data` (with the composer's grant when given;
        `cost` = modeled (mean, sd) ms, (0, 0) for the edge's own offer)."""
        request = pb.ExecuteRequest(service=service, input=data, request_id=request_id,
                                    transition=transition, cost_mean_ms=cost[0],
                                    cost_sd_ms=cost[1])
        if grant is not None:
            request.grant.CopyFrom(signed_grant_to_pb(grant))
        resp: pb.ExecuteResponse = self._call("Execute", request)
        return resp
