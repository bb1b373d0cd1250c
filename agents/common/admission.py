"""Abuse bounds for every agent server: concurrency cap with a bounded queue, a deadline on every
call, and per-method request size limits checked on the raw bytes before any decoding.

One server-wide interceptor (`AdmissionInterceptor`, installed by `AgentServer`) wraps each
method handler:

* **size**: the handler's request deserializer first compares the raw message length with the
  method's limit; an oversized message is never parsed and the call ends RESOURCE_EXHAUSTED.
  gRPC itself refuses anything above the server-wide ``grpc.max_receive_message_length`` (set
  to the largest per-method limit) before Python sees it.
* **concurrency**: at most ``max_concurrent`` ordinary calls run at once and at most
  ``max_queued`` more wait for a slot (each at most until its deadline); a call beyond both is
  refused RESOURCE_EXHAUSTED at once. The executor has ``reserved`` threads more than the two
  together, so health checks (exempt from admission) and refusals always find a thread.
* **deadline**: every admitted call gets ``min(client deadline, the method's server bound)``;
  a watchdog cancels a call still running at that point (the client sees CANCELLED, the
  handler sees ``context.is_active()`` turn False), and a queued call waits no longer.

A request-in / stream-out call (SmfService.MigrateServiceStream) holds its slot while its
response stream is drained; a stream-in call is admitted like a unary one.

Authorization is a separate interceptor (agents/common/authz.py); this one only bounds cost.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Continuation = Callable[[grpc.HandlerCallDetails], _Handler | None]

#: guard(context): a context manager holding one admitted call's slot (and its deadline)
_Guard = Callable[[grpc.ServicerContext], AbstractContextManager[None]]

KIB = 1024
MIB = 1024 * KIB
HEALTH_SERVICE = "grpc.health.v1.Health"

#: Methods that legitimately carry more than the default request size (full method names).
LARGE_REQUESTS: Mapping[str, int] = {
    "/edgeferry.ledger.v1.LedgerPeerService/DeliverBlocks": 16 * MIB,
    "/edgeferry.ledger.v1.LedgerService/SubmitConfirmations": 4 * MIB,
    # SSO: input bytes of one service execution, a file uploaded to the origin (8 MiB + framing)
    "/edgeferry.blockcache.v1.BlockCacheService/Execute": 8 * MIB + 64 * 1024,
    "/edgeferry.blockcache.v1.BlockCacheService/PutFile": 8 * MIB + 64 * 1024,
    # TCFDL: one task frame (at most 8 MiB + 4 KiB) handed by a master to its TEE proxy
    "/edgeferry.tcfdl.v1.TcfdlProxyService/Transform": 8 * MIB + 64 * 1024,
    # the direct order: one chunk of a diff layer (<= 1 MiB), a load with its <= 1 MiB config
    "/edgeferry.node.v1.NodeService/ImportDiff": MIB + 64 * 1024,
    "/edgeferry.node.v1.NodeService/LoadDiff": MIB + 64 * 1024,
}
#: Methods that run long (image transfers, a whole migration): they get the long deadline.
LONG_CALLS: frozenset[str] = frozenset({
    "/edgeferry.node.v1.NodeService/CommitContainer",
    "/edgeferry.node.v1.NodeService/PushImage",
    "/edgeferry.node.v1.NodeService/PullImage",
    "/edgeferry.node.v1.NodeService/PrePullImage",
    "/edgeferry.node.v1.NodeService/ExportDiff",
    "/edgeferry.node.v1.NodeService/LoadDiff",
    "/edgeferry.node.v1.NodeService/ImportDiff",
    "/edgeferry.node.v1.NodeService/RunWorkload",
    "/edgeferry.smf.v1.SmfService/MigrateService",
    "/edgeferry.smf.v1.SmfService/MigrateServiceStream",
})


@dataclass(frozen=True)
class CallLimits:
    """The bounds one server applies (see the module doc); built from `AgentConfig.limits`."""

    max_concurrent: int = 8
    max_queued: int = 16
    reserved: int = 4
    default_deadline_s: float = 60.0
    long_deadline_s: float = 900.0
    default_max_request_bytes: int = 256 * KIB
    method_max_request_bytes: Mapping[str, int] = field(default_factory=lambda: LARGE_REQUESTS)
    long_calls: frozenset[str] = LONG_CALLS
    exempt_services: frozenset[str] = frozenset({HEALTH_SERVICE})

    @property
    def pool_size(self) -> int:
        """Executor threads: every admitted call gets one, plus the reserve."""
        return self.max_concurrent + self.max_queued + self.reserved

    @property
    def largest_request(self) -> int:
        """The server-wide receive limit gRPC enforces before any per-method check."""
        return max(self.default_max_request_bytes, *self.method_max_request_bytes.values())

    def request_limit(self, method: str) -> int:
        """Largest request (bytes) accepted by ``method`` (full name ``/pkg.Svc/Method``)."""
        return self.method_max_request_bytes.get(method, self.default_max_request_bytes)

    def deadline(self, method: str) -> float:
        """The server's bound (seconds) on one call of ``method``."""
        return self.long_deadline_s if method in self.long_calls else self.default_deadline_s


class _Oversized:
    """What the size-checking deserializer yields instead of a parsed message."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class _Watchdog:
    """One thread that cancels calls still running past their deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, grpc.ServicerContext]] = []
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, context: grpc.ServicerContext, at: float) -> int:
        with self._cond:
            token = next(self._ids)
            heapq.heappush(self._heap, (at, token, context))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rpc-deadlines",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
            return token

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                at, _, context = self._heap[0]
                delay = at - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            if context.is_active():
                context.cancel()


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Size, concurrency and deadline bounds around every handler (see the module doc)."""

    def __init__(self, limits: CallLimits) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_concurrent)
        self._lock = threading.Lock()
        self._admitted = 0
        self._watchdog = _Watchdog()
        self.refused = 0  # calls refused for lack of room (for diagnostics)

    @property
    def admitted(self) -> int:
        """Calls now running or queued."""
        return self._admitted

    def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> _Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        exempt = method.lstrip("/").split("/", 1)[0] in self.limits.exempt_services
        return _rewrap(handler, self.limits.request_limit(method),
                       None if exempt else self._guard(method))

    def _guard(self, method: str) -> _Guard:
        bound = self.limits.deadline(method)

        @contextmanager
        def admitted(context: grpc.ServicerContext) -> Iterator[None]:
            with self._lock:
                room = self._admitted < self.limits.max_concurrent + self.limits.max_queued
                if room:
                    self._admitted += 1
                else:
                    self.refused += 1
            if not room:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              "agent busy: concurrent call limit and queue are full; retry later")
            try:
                budget = min(context.time_remaining(), bound)
                deadline = time.monotonic() + budget
                if not self._slots.acquire(timeout=budget):
                    context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                  "deadline passed while queued for a free worker")
                try:
                    self._watchdog.watch(context, deadline)
                    yield
                finally:
                    self._slots.release()
            finally:
                with self._lock:
                    self._admitted -= 1

        return admitted


def _rewrap(handler: _Handler, limit: int, guard: _Guard | None) -> _Handler:
    """``handler`` with a size-checking deserializer and its behaviour run under ``guard``."""
    decode = handler.request_deserializer

    def deserialize(raw: bytes) -> Any:
        if len(raw) > limit:
            return _Oversized(len(raw))
        return decode(raw) if decode is not None else raw

    def refuse(size: int, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"request of {size} bytes exceeds this method's limit of {limit} bytes")

    def checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for request in requests:
            if isinstance(request, _Oversized):
                refuse(request.size, context)
            yield request

    def unary_in(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, _Oversized):
                refuse(request.size, context)
            if guard is None:
                return behaviour(request, context)
            with guard(context):
                return behaviour(request, context)
        return run

    def unary_in_stream_out(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if isinstance(request, _Oversized):
                refuse(request.size, context)
            if guard is None:
                yield from behaviour(request, context)
                return
            with guard(context):  # held until the response stream ends
                yield from behaviour(request, context)
        return run

    def stream_in(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def run(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            if guard is None:
                return behaviour(checked(requests, context), context)
            with guard(context):
                return behaviour(checked(requests, context), context)
        return run

    encode = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary_in(handler.unary_unary), deserialize, encode)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            stream_in(handler.stream_unary), deserialize, encode)
    if handler.unary_stream is not None:  # health's Watch (exempt), MigrateServiceStream
        return grpc.unary_stream_rpc_method_handler(
            unary_in_stream_out(handler.unary_stream), deserialize, encode)
    # Bidirectional streams (only reflection): the size check applies, admission does not.
    guard = None
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(
        stream_in(handler.stream_stream), deserialize, encode)
