"""The monitor's way to the node agents: GetResources (utilisation, liveness of the edge) and
DescribeWorkload (liveness of each container located there) over mTLS, as role ``audit``.

The node agent of an edge is at ``node_addresses[edge]`` when configured, else at the edge's
registered address (``host`` or ``host:port``; a bare host gets ``node_port``). An edge with
neither raises :class:`agents.audit.monitor.NotAddressable` (the monitor skips it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping

import grpc

from agents._proto.edgeferry.node.v1 import node_service_pb2 as node_pb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as node_pb_grpc
from agents.audit.domain import EdgeAttributes
from agents.audit.monitor import NotAddressable

DEFAULT_NODE_PORT = 50056
DEFAULT_TIMEOUT_S = 5.0
#: node agents the probe keeps a channel to at most (bounded state; older ones are closed)
MAX_CHANNELS = 1024


def utilisation(report: node_pb.GetResourcesResponse) -> tuple[float, float]:
    """(cpu %, memory %) of a GetResources report: measured use over capacity (MAX)."""
    cap, used = report.max, report.measured_used
    if cap.cpu_millicores == 0 or cap.memory_bytes == 0:
        raise ValueError("the node agent reports no CPU or memory capacity")
    cpu = 100.0 * used.cpu_millicores / cap.cpu_millicores
    mem = 100.0 * used.memory_bytes / cap.memory_bytes
    return min(cpu, 100.0), min(mem, 100.0)


def node_address(edge: EdgeAttributes, overrides: Mapping[str, str], port: int) -> str:
    """Where the node agent of ``edge`` listens (module docstring)."""
    if edge.name in overrides:
        return overrides[edge.name]
    address = edge.address.strip()
    if not address:
        raise NotAddressable(f"edge {edge.name!r} has no address")
    if address.startswith("[") or address.count(":") == 1:
        return address  # host:port or [v6]:port
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class GrpcNodeProbe:
    """Implements monitor.NodeProbe and monitor.ContainerProbe over NodeService."""

    def __init__(self, channel: Callable[[str], grpc.Channel], *,
                 node_addresses: Mapping[str, str] | None = None,
                 node_port: int = DEFAULT_NODE_PORT, timeout_s: float = DEFAULT_TIMEOUT_S
                 ) -> None:
        self._factory = channel
        self.node_addresses = dict(node_addresses or {})
        self.node_port = node_port
        self.timeout_s = timeout_s
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _stub(self, edge: EdgeAttributes) -> node_pb_grpc.NodeServiceStub:
        address = node_address(edge, self.node_addresses, self.node_port)
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                if len(self._channels) >= MAX_CHANNELS:
                    _, old = self._channels.popitem()
                    old.close()
                channel = self._channels[address] = self._factory(address)
        return node_pb_grpc.NodeServiceStub(channel)

    def probe(self, edge: EdgeAttributes) -> tuple[float, float]:
        """(cpu %, memory %) from the edge's node agent; raises when it does not answer."""
        report = self._stub(edge).GetResources(node_pb.GetResourcesRequest(),
                                               timeout=self.timeout_s)
        return utilisation(report)

    def containers(self, edge: EdgeAttributes, names: Collection[str]) -> dict[str, str]:
        """The engine state of each container in ``names`` ("" when the node has none)."""
        stub = self._stub(edge)
        out: dict[str, str] = {}
        for name in names:
            try:
                resp = stub.DescribeWorkload(node_pb.DescribeWorkloadRequest(name=name),
                                             timeout=self.timeout_s)
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    out[name] = ""
                    continue
                raise
            out[name] = str(resp.state)
        return out

    def close(self) -> None:
        """Close every channel."""
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
