"""Traffic metering of the ledger's RPCs, as gRPC interceptors (so no servicer counts bytes).

A `TrafficMeter` holds, per RPC name, the protobuf payload bytes (request + response, without
HTTP/2 and TLS framing) and the number of calls, so the benchmark and the ledger-decision
scenario can compare the bandwidth of the ledger with its baselines.  What is counted:

* on a server, every *answered* unary call of a metered service (registered with
  ``AgentServer.add(..., interceptors=(MeteringInterceptor(meter),))``): a call the servicer
  refuses (aborts) is not counted, nor is ``GetStatus`` (a read about the node, not metadata
  traffic);
* on the validator's side of the block pushes, every answered ``DeliverBlocks``
  (`metered_channels` puts `MeteringClientInterceptor` on the channels the propagator dials),
  counted before the confirmation it carries is recorded.

The server interceptor is attached per service (`agents.common.server.AgentServer.add`), not
per server: only the ledger services are metered (not health or reflection).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

from agents.common.server import split_method

#: Methods never counted: status reads report on a node and carry no metadata.
UNMETERED = frozenset({"GetStatus"})


class TrafficMeter:
    """Thread-safe byte and call counters keyed by RPC name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, *messages: Any) -> None:
        """Count one call of `name` carrying `messages` (their serialized sizes)."""
        size = sum(m.ByteSize() for m in messages)
        with self._lock:
            self.bytes[name] = self.bytes.get(name, 0) + size
            self.calls[name] = self.calls.get(name, 0) + 1

    def total(self) -> int:
        """Bytes counted so far, all RPCs together."""
        with self._lock:
            return sum(self.bytes.values())

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self.bytes.clear()
            self.calls.clear()


def _rpc_name(method: str | bytes) -> str:
    """``/edgeferry.ledger.v1.LedgerService/GetBlocks`` -> ``GetBlocks``."""
    return split_method(method)[1]


class MeteringInterceptor(grpc.ServerInterceptor):
    """Counts request + response of every unary call its handler answers (not an abort)."""

    def __init__(self, meter: TrafficMeter, unmetered: frozenset[str] = UNMETERED) -> None:
        self.meter = meter
        self._unmetered = unmetered

    def intercept_service(self, continuation: Callable[[Any], Any],
                          handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        name = _rpc_name(handler_call_details.method)
        if handler is None or handler.unary_unary is None or name in self._unmetered:
            return handler
        behaviour = handler.unary_unary
        meter = self.meter

        def metered_call(request: Any, context: grpc.ServicerContext) -> Any:
            response = behaviour(request, context)  # an abort raises: nothing is counted
            meter.add(name, request, response)
            return response

        return grpc.unary_unary_rpc_method_handler(
            metered_call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class MeteringClientInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Counts request + response of every unary call this side made that was answered.

    Works for blocking calls and futures alike: the count is taken in a done-callback that
    is added before the caller's own callbacks, so it runs first.
    """

    def __init__(self, meter: TrafficMeter, unmetered: frozenset[str] = UNMETERED) -> None:
        self.meter = meter
        self._unmetered = unmetered

    def intercept_unary_unary(self, continuation: Callable[[Any, Any], Any],
                              client_call_details: Any, request: Any) -> Any:
        call = continuation(client_call_details, request)
        name = _rpc_name(client_call_details.method)
        if name in self._unmetered:
            return call
        meter = self.meter

        def count(done: Any) -> None:
            try:
                response = done.result()
            except Exception:  # failed or cancelled: nothing was answered
                return
            meter.add(name, request, response)

        call.add_done_callback(count)
        return call


def metered_channels(channel_for: Callable[[str], grpc.Channel], meter: TrafficMeter
                     ) -> Callable[[str], grpc.Channel]:
    """`channel_for` whose channels count their answered unary calls in `meter`."""
    interceptor = MeteringClientInterceptor(meter)
    return lambda address: grpc.intercept_channel(channel_for(address), interceptor)
