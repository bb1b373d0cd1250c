"""The TEE proxy's work on one frame (seed 003 section 2.4.6 / 3), without TEE hardware.

The proxy is its own process (on hosts its own Unix user) and the only holder of the hop keys
and re-encryption keys; its master hands it frames and publishes what it returns, so the master
never holds a key and, under EAE, never plaintext. `ProxyCore.transform`:

* ``none``: returns the frame unchanged;
* ``hse``: opens the frame with the key of the hop it came over (sender in its header; replay
  cache, freshness and authentication checked) and seals the same task for `next` (hse.forward);
* ``eae-*``: re-encrypts the key capsule only: at the first proxy of a path with RK_i->f of the
  frame's sender (p256-paper; Umbral has no provider-side stage), at the last proxy with
  RK_f->j of the chosen instance. The payload ciphertext passes through untouched; with
  `envelope_only` the master sends the frame's envelope alone (`frame.split`) and keeps the
  ciphertext, so a 4 MB task costs the proxy call a few hundred bytes each way.

Keys come from the manager (`KeySource`) and are cached, bounded. A real enclave can replace
this class behind the same TcfdlProxyService.Transform interface.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import eae, hse, schemes
from agents.security.tcfdl import frame as tframe
from agents.security.tcfdl.pre import TO_FUNCTION, TO_PROCESSOR, PreScheme, ReKey
from agents.security.tcfdl.pre import scheme as pre_scheme
from agents.security.tcfdl.replay import ReplayCache

MAX_CACHED_KEYS = 4096


class KeySource(Protocol):
    """Where the proxy's keys come from (the manager's client)."""

    def hop_key(self, peer: str) -> bytes:
        """The AES-128 key of the hop between this proxy and `peer`."""

    def rekey(self, scheme: str, function: str, instance: str, stage: str) -> bytes:
        """A re-encryption key's material (empty when the scheme has none)."""


class _Bounded(OrderedDict[tuple[str, ...], bytes]):
    def remember(self, key: tuple[str, ...], fetch: Callable[[], bytes]) -> bytes:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = fetch()
        if len(self) > MAX_CACHED_KEYS:
            self.popitem(last=False)
        return value


class ProxyCore:
    """One proxy's transformations (thread-safe enough for gRPC's pool: the caches only grow
    by idempotent fetches, the replay cache is consulted under the GIL's dict operations)."""

    def __init__(self, me: str, keys: KeySource, *, replay_window_ms: int = 60_000,
                 debug_dump: Callable[[bytes], None] | None = None) -> None:
        self.me = me
        self.keys = keys
        self.replay = ReplayCache(window_ms=replay_window_ms)
        self.debug_dump = debug_dump
        self._keys = _Bounded()
        self._pre: dict[str, PreScheme] = {}

    def _hop_key(self, peer: str) -> bytes:
        return self._keys.remember(("hop", peer), lambda: self.keys.hop_key(peer))

    def _rekey(self, pre: str, function: str, instance: str, stage: str) -> bytes:
        return self._keys.remember(("rk", pre, function, instance, stage),
                                   lambda: self.keys.rekey(pre, function, instance, stage))

    def transform(self, scheme: str, frame: bytes, *, function: str, next_hop: str = "",
                  first: bool = False, instance: str = "", envelope_only: bool = False,
                  now_ms: int | None = None) -> tuple[bytes, int]:
        """The frame for the next hop and the ns spent on cryptography (see the module doc);
        with `envelope_only` (EAE only) `frame` and the result are envelopes alone."""
        schemes.check(scheme)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if envelope_only and not schemes.is_eae(scheme):
            raise ProtocolError(ErrorCode.MALFORMED, f"a {scheme} frame cannot be transformed "
                                "as its envelope alone (only EAE leaves the body unchanged)")
        if scheme == schemes.NONE:
            return frame, 0
        if scheme == schemes.HSE:
            return self._hse(frame, function, next_hop, now)
        if envelope_only:
            return self._eae(scheme, frame, function, first, instance)
        return tframe.on_envelope(frame, lambda e: self._eae(scheme, e, function, first, instance))

    def _hse(self, frame: bytes, function: str, next_hop: str, now: int) -> tuple[bytes, int]:
        if not next_hop:
            raise ProtocolError(ErrorCode.MALFORMED, "HSE transform needs the next hop")
        h = hse.read_header(frame)
        if h.function != function:
            raise ProtocolError(ErrorCode.WRONG_STEP,
                                f"frame is for {h.function!r}, routed as {function!r}")
        in_key, out_key = self._hop_key(h.sender), self._hop_key(next_hop)
        t0 = time.perf_counter_ns()
        msg = hse.open_frame(in_key, frame, me=self.me, expect_sender=h.sender,
                             expect_hop=h.hop, replay=self.replay, now_ms=now)
        if self.debug_dump is not None:
            self.debug_dump(msg.payload)
        out = hse.seal(out_key, function=function, sender=self.me, receiver=next_hop,
                       hop=h.hop + 1, msg_id=h.msg_id, sent_ms=now, payload=msg.payload)
        return out, time.perf_counter_ns() - t0

    def _scheme(self, name: str) -> PreScheme:
        if name not in self._pre:
            self._pre[name] = pre_scheme(name)
        return self._pre[name]

    def _eae(self, scheme: str, envelope: bytes, function: str, first: bool,
             instance: str) -> tuple[bytes, int]:
        pre = self._scheme(schemes.pre_name(scheme))
        env = eae.read_envelope_only(envelope, pre)
        if env.header.function != function:
            raise ProtocolError(ErrorCode.WRONG_STEP,
                                f"frame is for {env.header.function!r}, routed as {function!r}")
        steps: list[tuple[str, bytes]] = []
        if first:
            steps.append((TO_FUNCTION, self._rekey(pre.name, function, env.header.sender,
                                                   TO_FUNCTION)))
        if instance:
            steps.append((TO_PROCESSOR, self._rekey(pre.name, function, instance, TO_PROCESSOR)))
        t0 = time.perf_counter_ns()
        for stage, material in steps:
            if material:
                envelope = eae.reencrypt_envelope(pre, ReKey(pre.name, stage, material),
                                                  envelope)
        return envelope, time.perf_counter_ns() - t0
