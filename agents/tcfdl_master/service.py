"""A master's NATS side: the overlay that routes tasks by function identity (seed 003 §4).

Request/reply path (no acknowledgement, as the paper's NATS request/reply):
    client --tcfdl.in.<A>.<fn>--> master A --proxy A--> tcfdl.x.<B>.<fn> --> master B
           --proxy B--> tcfdl.inst.<instance> --> instance --reply--> client
Every master forwards the client's reply subject, so the instance answers the client directly
and no master holds a task after forwarding it. A refusal (unknown function, a frame the proxy
refuses, a proxy that is down) is answered to the reply subject with an empty body and the
``Tcfdl-Error`` header, so the client gets a clear error, never a timeout.

Acknowledged path (JetStream, as the paper's NATS Streaming publish/subscribe): a client
publishes to ``tcfdl.q.<A>.<fn>`` and gets a PubAck once the server stored the task; the master
pulls it (durable consumer), routes it as above as a request, stores the instance's answer in
the result stream (``Tcfdl-Results`` subject) and only then acks the task. A task whose server
died before that is redelivered (after the consumer's ack wait) and answered from the reply the
master kept, or, when the answer never reached the master, by the instance from the answers it
keeps (queued tasks are marked ``Tcfdl-Queued``; the function does not run twice): nothing
acknowledged is lost. A task in flight when the server died waits `rpc_timeout_s` before its
redelivery.

`Witness` records every byte string the master handled (frames in and out), when configured:
the evidence that under EAE a master never holds plaintext.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, StorageType, StreamConfig

from agents.common.logging import get_logger
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import frame as tframe
from agents.security.tcfdl import schemes
from agents.tcfdl_master import wire
from agents.tcfdl_master.natsconf import Subjects, stream_names
from agents.tcfdl_master.routing import LocalRoute, RemoteRoute, Router

#: (scheme, frame, function, next_hop, first, instance) -> (frame, crypto ns), blocking
Transform = Callable[[str, bytes, str, str, bool, str], tuple[bytes, int]]
QUEUE_MAX_BYTES = 512 * 1024 * 1024
#: answers kept until their task is acked (a redelivered task is answered from here, not run
#: again: the instance would refuse it as a replay)
MAX_KEPT_REPLIES = 1024


class Witness:
    """Appends what the master handled to a file (bounded by `max_bytes`; then stops)."""

    def __init__(self, path: Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.written = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        path.chmod(0o600)

    def record(self, data: bytes) -> None:
        """Append `data` (and a separator) while under the bound."""
        if self.written + len(data) > self.max_bytes:
            return
        with self.path.open("ab") as f:
            f.write(data + b"\n--\n")
        self.written += len(data)


class MasterService:
    """Subscriptions and the task queue of one cluster's master (runs on one asyncio loop)."""

    def __init__(self, nc: Client, *, cluster: str, router: Router, transform: Transform,
                 witness: Witness | None = None, rpc_timeout_s: float = 30.0,
                 queue_ack_wait_s: float = 30.0) -> None:
        self.nc = nc
        self.cluster = cluster
        self.router = router
        self.transform = transform
        self.witness = witness
        self.timeout = rpc_timeout_s
        self.ack_wait_s = queue_ack_wait_s
        self._replies: OrderedDict[str, tuple[bytes, dict[str, str]]] = OrderedDict()
        self.name = f"master-{cluster}"
        self.log = get_logger(f"tcfdl_master.{cluster}")
        self.handled = 0
        self.refused = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, *, queue: bool = True) -> None:
        """Subscribe to ingress and transit subjects; with `queue`, create the JetStream
        streams and start consuming the task queue."""
        await self.nc.subscribe(f"tcfdl.in.{self.cluster}.*", cb=self._ingress)
        await self.nc.subscribe(f"tcfdl.x.{self.cluster}.*", cb=self._transit)
        if queue:
            await self._streams()
            self._tasks.append(asyncio.create_task(self._consume()))
        await self.nc.flush()

    async def stop(self) -> None:
        """Stop consuming and close the connection."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not self.nc.is_closed:
            await self.nc.close()

    # -- routing -------------------------------------------------------------------------------
    async def _forward(self, msg: Msg, *, transit: bool) -> tuple[str, bytes, dict[str, str]]:
        """(subject, frame, headers) of the task's next hop; raises the refusal."""
        t0 = time.perf_counter_ns()
        function = msg.subject.rsplit(".", 1)[-1]
        headers = dict(msg.headers or {})
        scheme = schemes.check(wire.header(headers, wire.SCHEME))
        if len(msg.data) > tframe.MAX_FRAME_SIZE:
            raise ProtocolError(ErrorCode.LIMIT_REACHED, "frame exceeds its bound")
        if self.witness is not None:
            self.witness.record(msg.data)
        route = self.router.route(function, transit=transit)
        if isinstance(route, LocalRoute):
            subject, nxt, instance = Subjects.instance(route.instance), route.instance, \
                route.instance
        else:
            assert isinstance(route, RemoteRoute)
            subject, nxt, instance = Subjects.transit(route.cluster, function), route.proxy, ""
        trace = wire.add_trace(wire.header(headers, wire.TRACE), self.name, "route",
                               time.perf_counter_ns() - t0)
        out, crypto_ns = msg.data, 0
        if scheme != schemes.NONE:
            loop = asyncio.get_running_loop()
            t1 = time.perf_counter_ns()
            out, crypto_ns = await loop.run_in_executor(
                None, self.transform, scheme, msg.data, function, nxt, not transit, instance)
            trace = wire.add_trace(trace, self.name, "proxy_rpc", time.perf_counter_ns() - t1)
            trace = wire.add_trace(trace, self.name, "reencrypt", crypto_ns)
        if self.witness is not None:
            self.witness.record(out)
        headers[wire.TRACE] = trace
        headers[wire.FUNCTION] = function
        return subject, out, headers

    async def _handle(self, msg: Msg, *, transit: bool) -> None:
        try:
            subject, out, headers = await self._forward(msg, transit=transit)
        except (ProtocolError, LookupError, ValueError, OSError) as err:
            await self._refuse(msg, str(err))
            return
        except Exception as err:  # a proxy call failing (grpc.RpcError) and the like
            await self._refuse(msg, f"proxy unavailable: {type(err).__name__}: {err}")
            return
        self.handled += 1
        t0 = time.perf_counter_ns()
        headers[wire.TRACE] = wire.add_trace(headers[wire.TRACE], self.name, "publish", 0)
        await self.nc.publish(subject, out, reply=msg.reply, headers=headers)
        self.log.debug("forwarded", subject=subject, ns=time.perf_counter_ns() - t0)

    async def _refuse(self, msg: Msg, reason: str) -> None:
        self.refused += 1
        self.log.warning("task_refused", subject=msg.subject, reason=reason)
        if msg.reply:
            await self.nc.publish(msg.reply, b"", headers=wire.error_headers(
                self.name, reason, wire.header(msg.headers, wire.TRACE)))

    async def _ingress(self, msg: Msg) -> None:
        await self._handle(msg, transit=False)

    async def _transit(self, msg: Msg) -> None:
        await self._handle(msg, transit=True)

    # -- the acknowledged task queue -------------------------------------------------------------
    async def _streams(self) -> None:
        js = self.nc.jetstream(domain=self.cluster)
        tasks, results = stream_names(self.cluster)
        for name, subject in ((tasks, f"tcfdl.q.{self.cluster}.>"),
                              (results, f"tcfdl.r.{self.cluster}.>")):
            try:  # kept from an earlier start: re-adding it would count its storage twice
                await js.stream_info(name)  # (nats-server refuses at its max_file_store)
                continue
            except nats.js.errors.NotFoundError:
                pass
            await js.add_stream(StreamConfig(
                name=name, subjects=[subject], storage=StorageType.FILE,
                max_bytes=QUEUE_MAX_BYTES, max_msg_size=tframe.MAX_FRAME_SIZE + 4096))

    async def _consume(self) -> None:
        js = self.nc.jetstream(domain=self.cluster)
        tasks, _ = stream_names(self.cluster)
        sub: Any = None
        while True:
            try:
                if sub is None:
                    sub = await js.pull_subscribe(
                        f"tcfdl.q.{self.cluster}.>", durable="master", stream=tasks,
                        config=ConsumerConfig(ack_wait=self.ack_wait_s))
                for msg in await sub.fetch(1, timeout=1.0):
                    await self._queued(msg)
            except asyncio.CancelledError:
                raise
            except nats.errors.TimeoutError:
                continue
            except Exception as err:  # server gone or restarting: retry after a pause
                self.log.warning("queue_unavailable", error=f"{type(err).__name__}: {err}")
                sub = None
                await asyncio.sleep(0.3)

    async def _queued(self, msg: Msg) -> None:
        """One queued task: forward as a request, store the answer, then ack."""
        results = wire.header(msg.headers, wire.RESULTS)
        js = self.nc.jetstream(domain=self.cluster)
        if not results.startswith(f"tcfdl.r.{self.cluster}.") or results.count(".") != 3:
            await msg.term()
            self.log.warning("queued_task_dropped", reason="no valid Tcfdl-Results subject")
            return
        task_id = wire.header(msg.headers, wire.TASK_ID)[:64]
        kept = self._replies.get(task_id)
        if kept is None:
            function = msg.subject.rsplit(".", 1)[-1]
            fake = _Forwardable(f"tcfdl.in.{self.cluster}.{function}", msg)
            try:
                subject, out, headers = await self._forward(
                    fake, transit=False)  # type: ignore[arg-type]
                headers[wire.QUEUED] = "1"
                reply = await self.nc.request(subject, out, timeout=self.timeout,
                                              headers=headers)
                kept = (reply.data, dict(reply.headers or {}))
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError,
                    nats.errors.ConnectionClosedError) as err:
                self.log.warning("queued_task_retry", error=type(err).__name__)
                await _quietly(msg.nak())
                return
            except Exception as err:
                kept = (b"", wire.error_headers(self.name, str(err)))
            if len(self._replies) >= MAX_KEPT_REPLIES:
                self._replies.popitem(last=False)
            self._replies[task_id] = kept
        body, rh = kept[0], {**kept[1], wire.TASK_ID: task_id}
        await js.publish(results, body, headers=rh, timeout=5)
        await msg.ack()
        self._replies.pop(task_id, None)
        self.handled += 1


class _Forwardable:
    """A queued JetStream message seen as an ingress message (subject by function)."""

    def __init__(self, subject: str, msg: Msg) -> None:
        self.subject = subject
        self.data = msg.data
        self.headers = msg.headers
        self.reply = ""


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:  # the server is gone: the task is redelivered anyway
        return
