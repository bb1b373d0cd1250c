"""A function instance's work on one task (seed 003 section 2.3.3, the processing instance j).
No I/O: the NATS side hands it the frame and sends back what it returns.

The instance opens the frame (``hse``: the last hop's key, shared with its cluster's proxy;
``eae-*``: its own processor key, Dec), runs the function on the data and seals the output
under the client's reply key (agents.security.tcfdl.reply). Replayed, stale, tampered or
misaddressed frames are refused before the function runs (ProtocolError). The sealed answers
are kept (bounded) so that a queued task delivered again after a NATS failure (its master marks
queued tasks) gets the same answer without the function running twice (`kept_answer`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import eae, hse, reply, schemes
from agents.security.tcfdl.pre import PartyKey, PreScheme
from agents.security.tcfdl.pre import scheme as pre_scheme
from agents.security.tcfdl.replay import ReplayCache

Function = Callable[[bytes], bytes]
#: answers kept for redelivered queued tasks: entries and total bytes
MAX_KEPT = 1024
MAX_KEPT_BYTES = 64 * 1024 * 1024


class InstanceCore:
    """One instance (a worker process, certificate CN `me`) serving some functions."""

    def __init__(self, me: str, proxy: str, functions: dict[str, Function], *,
                 hop_key: Callable[[str], bytes],
                 enrolled: Callable[[str, str], tuple[PartyKey, bytes]],
                 replay_window_ms: int = 60_000) -> None:
        self.me = me
        self.proxy = proxy
        self.functions = functions
        self.hop_key = hop_key
        self.enrolled = enrolled
        self.replay = ReplayCache(window_ms=replay_window_ms)
        self.processed = 0
        self._pre: dict[str, PreScheme] = {}
        self._hop: bytes | None = None
        self._kept: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._kept_bytes = 0

    def _keep(self, key: tuple[str, bytes], sealed: bytes) -> None:
        self._kept[key] = sealed
        self._kept_bytes += len(sealed)
        while len(self._kept) > MAX_KEPT or self._kept_bytes > MAX_KEPT_BYTES:
            self._kept_bytes -= len(self._kept.popitem(last=False)[1])

    def kept_answer(self, scheme: str, data: bytes) -> bytes | None:
        """The sealed answer already given to this frame (a queued task delivered again after a
        NATS failure), None when there is none. Never runs the function again; what it returns
        is ciphertext under the client's reply key."""
        try:
            if scheme == schemes.HSE:
                h = hse.read_header(data)
                return self._kept.get((h.sender, h.msg_id))
            if schemes.is_eae(scheme):
                env, _ = eae.read_envelope(data, self._scheme(schemes.pre_name(scheme)))
                return self._kept.get((env.header.sender, env.header.msg_id))
        except ProtocolError:
            return None
        return None

    def _scheme(self, name: str) -> PreScheme:
        if name not in self._pre:
            self._pre[name] = pre_scheme(name)
        return self._pre[name]

    def _function(self, name: str) -> Function:
        fn = self.functions.get(name)
        if fn is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SERVICE,
                                f"instance {self.me} does not serve {name!r}")
        return fn

    def handle(self, scheme: str, function: str, data: bytes,
               now_ms: int | None = None) -> tuple[bytes, dict[str, int]]:
        """The reply to one task and the ns of its phases (decrypt, process, encrypt)."""
        schemes.check(scheme)
        fn = self._function(function)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        t0 = time.perf_counter_ns()
        if scheme == schemes.NONE:
            out = fn(data)
            self.processed += 1
            return out, {"process": time.perf_counter_ns() - t0}
        if scheme == schemes.HSE:
            if self._hop is None:
                self._hop = self.hop_key(self.proxy)
            h = hse.read_header(data)
            msg = hse.open_frame(self._hop, data, me=self.me, expect_sender=self.proxy,
                                 expect_hop=h.hop, replay=self.replay, now_ms=now,
                                 expect_function=function)
            plain, msg_id, sender = msg.payload, h.msg_id, h.sender
        else:
            name = schemes.pre_name(scheme)
            party, fpub = self.enrolled(name, function)
            em = eae.open_frame(self._scheme(name), party, fpub, data, replay=self.replay,
                                now_ms=now, expect_function=function)
            plain, msg_id, sender = em.payload, em.header.msg_id, em.header.sender
        key, task = reply.unwrap_task(plain)
        t1 = time.perf_counter_ns()
        out = fn(task)
        t2 = time.perf_counter_ns()
        sealed = reply.seal_reply(key, msg_id, out)
        self._keep((sender, msg_id), sealed)
        self.processed += 1
        return sealed, {"decrypt": t1 - t0, "process": t2 - t1,
                        "encrypt": time.perf_counter_ns() - t2}
