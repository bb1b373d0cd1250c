"""The TCFDL offloading client (seed 003 section 2.3.4, the data-providing instance i).

    client = OffloadClient(nc, manager, me="tcfdl-client.edge1", cluster="a",
                           proxy="tcfdl-proxy.edge1", ca_cert=ca)
    result = await client.offload("mlp", data, scheme="eae-p256")
    result.output, result.phases          # phases: encrypt, route, reencrypt, deliver, ...

Before it sends under a secure scheme, the client verifies its cluster proxy's (emulated)
attestation record from the manager against the measurements it expects; an unattested proxy
is refused (`OffloadRefused`). It then encrypts (HSE: the hop key shared with that proxy; EAE:
Enc with its provider key), sends a NATS request to its cluster's master and opens the reply
with the task's reply key. `submit` / `collect` use the acknowledged JetStream queue instead.
Errors: `OffloadRefused` (a hop refused the task: unknown function, tampered or replayed frame,
...), `OffloadUnavailable` (the NATS server or the manager cannot be reached), ProtocolError
LIMIT_REACHED for a task over the size bound (nothing is sent).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import nats.errors
import nats.js.errors
from cryptography import x509
from nats.aio.client import Client

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import attestation, eae, frame, hse, reply, schemes
from agents.security.tcfdl.pre import PartyKey, PreScheme
from agents.security.tcfdl.pre import scheme as pre_scheme
from agents.tcfdl_manager.client import ManagerClient
from agents.tcfdl_master.client import Subjects, stream_names, token, wire

#: the largest task data (the frame also carries the 16-byte reply key)
MAX_DATA = frame.MAX_TASK_SIZE - reply.REPLY_KEY_SIZE
MAX_PENDING_TASKS = 10_000


class OffloadRefused(Exception):
    """A hop refused the task (its message says which hop and why)."""


class OffloadUnavailable(Exception):
    """The NATS server (or the manager) could not be reached."""


@dataclass
class OffloadResult:
    """The output of one task and the ns of each phase (``hop.phase``, plus ``deliver``:
    the time in NATS and on the wire, i.e. the total minus every measured phase)."""

    output: bytes
    total_ns: int
    phases: dict[str, int] = field(default_factory=dict)


@dataclass
class _Pending:
    msg_id: bytes
    reply_key: bytes | None


class OffloadClient:
    """Offloads tasks to functions from one client instance (certificate CN `me`)."""

    def __init__(self, nc: Client, manager: ManagerClient, *, me: str, cluster: str,
                 proxy: str, ca_cert: Path,
                 expected_measurements: Iterable[bytes] | None = None) -> None:
        self.nc = nc
        self.manager = manager
        self.me = me
        self.cluster = cluster
        self.proxy = proxy
        self.ca = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
        self.expected = (list(expected_measurements) if expected_measurements is not None
                         else [attestation.reference_measurement()])
        self._verified_until = 0
        self._hop: bytes | None = None
        self._keys: dict[tuple[str, str], tuple[PartyKey, bytes]] = {}
        self._pre: dict[str, PreScheme] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()

    # -- keys and attestation (blocking gRPC, run on the executor) -----------------------------
    def _verify_proxy(self) -> None:
        now = time.time_ns()
        if now < self._verified_until:
            return
        try:
            signed = self.manager.attestation(self.proxy)
        except ProtocolError as err:
            raise OffloadRefused(f"refusing to send: proxy {self.proxy} has no valid "
                                 f"attestation ({err.message})") from None
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise OffloadRefused(f"refusing to send: proxy {self.proxy} is not attested "
                                     "by the manager") from None
            raise OffloadUnavailable(f"manager unreachable: {err.details()}") from None
        try:
            record = attestation.verify(signed, self.ca, proxy=self.proxy,
                                        expected=self.expected, now_ns=now)
        except ProtocolError as err:
            raise OffloadRefused(f"refusing to send: {err.message}") from None
        self._verified_until = min(record.expires_ns, now + 60_000_000_000)

    def _seal(self, scheme: str, function: str, msg_id: bytes, plain: bytes) -> bytes:
        now = int(time.time() * 1000)
        if scheme == schemes.HSE:
            if self._hop is None:
                self._hop = self.manager.hop_key(self.proxy)
            return hse.seal(self._hop, function=function, sender=self.me, receiver=self.proxy,
                            hop=0, msg_id=msg_id, sent_ms=now, payload=plain)
        name = schemes.pre_name(scheme)
        if (name, function) not in self._keys:
            self._keys[(name, function)] = self.manager.enroll(name, function, processor=False)
        party, fpub = self._keys[(name, function)]
        pre = self._pre.get(name) or self._pre.setdefault(name, pre_scheme(name))
        return eae.seal(pre, party, fpub, function=function, sender=self.me, msg_id=msg_id,
                        sent_ms=now, payload=plain)

    def prepare(self, scheme: str, function: str, data: bytes) -> tuple[bytes, _Pending, int]:
        """(frame, what opens its reply, encrypt ns) of one task; refuses before sending."""
        schemes.check(scheme)
        schemes.check_function(function)
        if len(data) > MAX_DATA:
            raise ProtocolError(ErrorCode.LIMIT_REACHED,
                                f"task of {len(data)} bytes exceeds the {MAX_DATA}-byte bound")
        msg_id = hse.new_msg_id()
        if scheme == schemes.NONE:
            return data, _Pending(msg_id, None), 0
        self._verify_proxy()
        key = os.urandom(reply.REPLY_KEY_SIZE)
        t0 = time.perf_counter_ns()
        sealed = self._seal(scheme, function, msg_id, reply.wrap_task(key, data))
        return sealed, _Pending(msg_id, key), time.perf_counter_ns() - t0

    @staticmethod
    def _open(pending: _Pending, body: bytes, headers: dict[str, str]) -> bytes:
        error = wire.header(headers, wire.ERROR)
        if error:
            raise OffloadRefused(error)
        if pending.reply_key is None:
            return body
        return reply.open_reply(pending.reply_key, pending.msg_id, body)

    # -- request / reply -----------------------------------------------------------------------
    async def offload(self, function: str, data: bytes, *, scheme: str = schemes.NONE,
                      timeout: float = 30.0) -> OffloadResult:
        """Offload one task and wait for its result (see the module doc for errors)."""
        loop = asyncio.get_running_loop()
        sealed, pending, enc_ns = await loop.run_in_executor(
            None, self.prepare, scheme, function, data)
        return await self.send(function, sealed, pending, scheme=scheme, enc_ns=enc_ns,
                               timeout=timeout)

    async def send(self, function: str, sealed: bytes, pending: _Pending, *, scheme: str,
                   enc_ns: int = 0, timeout: float = 30.0) -> OffloadResult:
        """Send a prepared frame (tests send tampered or replayed ones this way)."""
        t0 = time.perf_counter_ns()
        msg = await self._request(Subjects.ingress(self.cluster, function), sealed,
                                  {wire.SCHEME: scheme}, timeout,
                                  f"no master of cluster {self.cluster} is subscribed")
        total = time.perf_counter_ns() - t0
        headers = dict(msg.headers or {})
        t1 = time.perf_counter_ns()
        output = self._open(pending, msg.data, headers)
        dec_ns = time.perf_counter_ns() - t1
        phases = {"client.encrypt": enc_ns, "client.decrypt": dec_ns}
        counted = 0
        for hop, phase, ns in wire.parse_trace(wire.header(headers, wire.TRACE)):
            phases[f"{hop}.{phase}"] = phases.get(f"{hop}.{phase}", 0) + ns
            if phase != "reencrypt":  # inside proxy_rpc
                counted += ns
        phases["deliver"] = max(0, total - counted)
        return OffloadResult(output, total + enc_ns + dec_ns, phases)

    async def probe(self, instance: str, data: bytes, reply_size: int, *,
                    timeout: float = 30.0) -> int:
        """ns of a bare request/reply to `instance` (its certificate CN): `data` out,
        `reply_size` zero bytes back (at most len(data)), through the same NATS servers as a
        task but no master, no cryptography and no function: the baseline a task is compared
        to. OffloadUnavailable as `send`; ValueError for a short answer."""
        if len(data) > MAX_DATA:
            raise ProtocolError(ErrorCode.LIMIT_REACHED,
                                f"probe of {len(data)} bytes exceeds the {MAX_DATA}-byte bound")
        expected = min(reply_size, len(data))
        t0 = time.perf_counter_ns()
        msg = await self._request(Subjects.probe(instance), data,
                                  {wire.PROBE_REPLY: str(reply_size)}, timeout,
                                  f"instance {instance} does not answer probes")
        elapsed = time.perf_counter_ns() - t0
        if len(msg.data) != expected:
            raise ValueError(f"probe of {instance}: {len(msg.data)} bytes back, expected "
                             f"{expected}")
        return elapsed

    async def _request(self, subject: str, data: bytes, headers: dict[str, str],
                       timeout: float, no_responders: str) -> Any:
        try:
            return await self.nc.request(subject, data, timeout=timeout, headers=headers)
        except (nats.errors.ConnectionClosedError, nats.errors.NoServersError,
                nats.errors.OutboundBufferLimitError, nats.errors.StaleConnectionError) as err:
            raise OffloadUnavailable(f"NATS server of cluster {self.cluster} unreachable: "
                                     f"{type(err).__name__}") from None
        except nats.errors.NoRespondersError:
            raise OffloadUnavailable(no_responders) from None
        except nats.errors.TimeoutError:
            raise OffloadUnavailable(f"no answer within {timeout} s (cluster {self.cluster})"
                                     ) from None

    # -- the acknowledged queue ----------------------------------------------------------------
    def results_subject(self) -> str:
        """Where the master stores this client's queued results."""
        return Subjects.results(self.cluster, self.me)

    async def submit(self, function: str, data: bytes, *, scheme: str = schemes.NONE,
                     timeout: float = 5.0) -> str:
        """Queue one task; returns its id once the server stored it (PubAck)."""
        loop = asyncio.get_running_loop()
        sealed, pending, _ = await loop.run_in_executor(
            None, self.prepare, scheme, function, data)
        task_id = pending.msg_id.hex()
        js = self.nc.jetstream(domain=self.cluster)
        try:
            await js.publish(Subjects.queue(self.cluster, function), sealed, timeout=timeout,
                             headers={wire.SCHEME: scheme, wire.RESULTS: self.results_subject(),
                                      wire.TASK_ID: task_id})
        except Exception as err:
            raise OffloadUnavailable(f"task not queued (NATS server of cluster {self.cluster}: "
                                     f"{type(err).__name__}); nothing was acknowledged"
                                     ) from None
        if len(self._pending) >= MAX_PENDING_TASKS:
            self._pending.popitem(last=False)
        self._pending[task_id] = pending
        return task_id

    async def collect(self, count: int, *, timeout: float = 30.0) -> dict[str, bytes | str]:
        """Up to `count` queued results by task id (bytes, or the refusal text)."""
        js = self.nc.jetstream(domain=self.cluster)
        _, stream = stream_names(self.cluster)
        out: dict[str, bytes | str] = {}
        end = time.monotonic() + timeout
        sub: Any = None
        while len(out) < count and time.monotonic() < end:
            try:
                if sub is None:  # the server may be restarting: retry until `timeout`
                    sub = await js.pull_subscribe(self.results_subject(),
                                                  durable=f"client-{token(self.me)}",
                                                  stream=stream)
                msgs = await sub.fetch(count - len(out), timeout=min(1.0, timeout))
            except nats.errors.TimeoutError:
                continue
            except (TimeoutError, nats.errors.Error, nats.js.errors.Error):
                sub = None
                await asyncio.sleep(0.2)
                continue
            for m in msgs:
                headers = dict(m.headers or {})
                task_id = wire.header(headers, wire.TASK_ID)
                pending = self._pending.get(task_id)
                if pending is not None and task_id not in out:
                    try:
                        out[task_id] = self._open(pending, m.data, headers)
                    except (OffloadRefused, ProtocolError) as err:
                        out[task_id] = str(err)
                await m.ack()
        return out
