"""The TCFDL service manager's state and rules (seed 003 sections 2.3.1, 3.1, 3.2): the trusted
authority. No grpc: the servicer calls these with the caller's certificate CN.

* Admission: a node is a certificate CN admitted into one cluster (settings or AdmitNode).
* Function registry: a master registers the functions its cluster serves; anyone admitted may
  look up which cluster (and which proxy) serves a function.
* Emulated attestation (agents.security.tcfdl.attestation): a proxy reports its measurement; the
  manager signs a record when the measurement is an approved reference value.
* Keys: HSE hop keys (AES-128, derived per unordered pair of CNs from the manager's secret; one
  end must be a proxy and an attested one, the other end in the proxy's cluster or another
  proxy); EAE key pairs per (scheme, function, instance) and the re-encryption keys (only to the
  attested proxy of the instance's cluster).
Every table is bounded (`MAX_*`); a full table refuses (LIMIT_REACHED) rather than forget.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import attestation
from agents.security.tcfdl.names import CLUSTER_PATTERN
from agents.security.tcfdl.pre import (
    TO_FUNCTION,
    TO_PROCESSOR,
    FunctionKey,
    PartyKey,
    PreScheme,
    ReKey,
    scheme_names,
)
from agents.security.tcfdl.pre import scheme as pre_scheme
from agents.security.tcfdl.schemes import check_function

MAX_NODES = 4096
MAX_FUNCTIONS = 4096
MAX_ENROLLMENTS = 65_536
PROXY_ROLE = "tcfdl-proxy"
MASTER_ROLE = "tcfdl-master"
NODE_ROLES = frozenset({"tcfdl-master", "tcfdl-proxy", "tcfdl-worker", "tcfdl-client"})
_CLUSTER = re.compile(CLUSTER_PATTERN)


def role_of(cn: str) -> str:
    """The role part of a CN (``tcfdl-proxy.a`` -> ``tcfdl-proxy``)."""
    return cn.partition(".")[0]


@dataclass(frozen=True)
class Enrollment:
    """One instance's EAE keys for one function and its proxy's re-encryption key."""

    party: PartyKey
    function_public: bytes
    rekey: ReKey | None


class ManagerCore:
    """The trusted authority (thread-safe: the gRPC server calls it from its worker threads)."""

    def __init__(self, *, hop_secret: bytes, signer: Callable[[attestation.Record],
                 attestation.SignedRecord], references: Iterable[bytes],
                 attestation_ttl_s: float = 3600.0, nodes: dict[str, str] | None = None) -> None:
        if len(hop_secret) < 32:
            raise ValueError("the hop key secret must be at least 32 bytes")
        self._secret = hop_secret
        self._signer = signer
        self.references = frozenset(references)
        self.ttl_ns = int(attestation_ttl_s * 1e9)
        self._lock = threading.Lock()
        self.nodes: dict[str, str] = {}
        self.functions: dict[str, str] = {}
        self.attested: dict[str, attestation.SignedRecord] = {}
        self._expires: dict[str, int] = {}
        self._fkeys: dict[tuple[str, str], FunctionKey] = {}
        self._enrolled: dict[tuple[str, str, str, bool], Enrollment] = {}
        self._schemes: dict[str, PreScheme] = {n: pre_scheme(n) for n in scheme_names()}
        for cn, cluster in (nodes or {}).items():
            self.admit(cn, cluster)

    # -- admission and registry ----------------------------------------------------------------
    def admit(self, cn: str, cluster: str) -> None:
        """Admit node `cn` (a tcfdl role) into `cluster`; re-admitting moves it."""
        if role_of(cn) not in NODE_ROLES or "." not in cn or len(cn) > 160:
            raise ProtocolError(ErrorCode.MALFORMED, f"{cn!r} is not a TCFDL node CN "
                                f"({', '.join(sorted(NODE_ROLES))}.<host>)")
        if not _CLUSTER.match(cluster):
            raise ProtocolError(ErrorCode.MALFORMED, f"cluster name {cluster!r} is not valid")
        with self._lock:
            if cn not in self.nodes and len(self.nodes) >= MAX_NODES:
                raise ProtocolError(ErrorCode.LIMIT_REACHED, f"{MAX_NODES} nodes admitted")
            self.nodes[cn] = cluster

    def cluster_of(self, cn: str) -> str:
        """The cluster `cn` was admitted into (UNKNOWN_PRINCIPAL when it was not)."""
        try:
            return self.nodes[cn]
        except KeyError:
            raise ProtocolError(ErrorCode.UNKNOWN_PRINCIPAL,
                                f"{cn!r} is not admitted to any cluster") from None

    def proxy_of(self, cluster: str) -> str:
        """The attested-or-not proxy admitted into `cluster` (the first by name)."""
        proxies = sorted(cn for cn, c in self.nodes.items()
                         if c == cluster and role_of(cn) == PROXY_ROLE)
        if not proxies:
            raise ProtocolError(ErrorCode.UNKNOWN_PRINCIPAL, f"cluster {cluster!r} has no proxy")
        return proxies[0]

    def register_function(self, master: str, function: str) -> str:
        """A master registers `function` as served by its cluster; returns the cluster."""
        check_function(function)
        cluster = self.cluster_of(master)
        with self._lock:
            if function not in self.functions and len(self.functions) >= MAX_FUNCTIONS:
                raise ProtocolError(ErrorCode.LIMIT_REACHED, f"{MAX_FUNCTIONS} functions")
            self.functions[function] = cluster
        return cluster

    def lookup(self, caller: str, function: str) -> tuple[str, str]:
        """(cluster, proxy CN) serving `function`; LookupError when none registered it."""
        self.cluster_of(caller)
        check_function(function)
        cluster = self.functions.get(function)
        if cluster is None:
            raise LookupError(f"unknown function {function!r}: no cluster registered it")
        return cluster, self.proxy_of(cluster)

    # -- attestation ---------------------------------------------------------------------------
    def attest(self, proxy: str, measurement: bytes, now_ns: int | None = None
               ) -> attestation.SignedRecord:
        """Sign a record for `proxy` when `measurement` is approved; else drop its old record
        and refuse (KEY_MISMATCH)."""
        if role_of(proxy) != PROXY_ROLE:
            raise ProtocolError(ErrorCode.NOT_AUTHORISED, f"{proxy!r} is not a proxy")
        self.cluster_of(proxy)
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            if measurement not in self.references:
                self.attested.pop(proxy, None)
                raise ProtocolError(ErrorCode.KEY_MISMATCH,
                                    f"measurement {measurement.hex()[:16]}... of {proxy!r} is "
                                    "not an approved reference: its code or configuration "
                                    "differs")
            signed = self._signer(attestation.Record(proxy, measurement, now, now + self.ttl_ns))
            self.attested[proxy] = signed
            self._expires[proxy] = now + self.ttl_ns
        return signed

    def attestation_of(self, proxy: str) -> attestation.SignedRecord:
        """The proxy's current record (LookupError when it has none)."""
        signed = self.attested.get(proxy)
        if signed is None or self._expires.get(proxy, 0) < time.time_ns():
            raise LookupError(f"proxy {proxy!r} is not attested")
        return signed

    def _require_attested(self, proxy: str) -> None:
        try:
            self.attestation_of(proxy)
        except LookupError:
            raise ProtocolError(ErrorCode.NOT_AUTHORISED,
                                f"proxy {proxy!r} is not attested: no keys for it") from None

    # -- keys ----------------------------------------------------------------------------------
    def hop_key(self, caller: str, peer: str) -> bytes:
        """The AES-128 key of hop caller <-> peer: one end a proxy (attested), the other an
        instance of its cluster or another attested proxy."""
        if caller == peer:
            raise ProtocolError(ErrorCode.REFLECTED, "a hop has two different ends")
        a, b = self.cluster_of(caller), self.cluster_of(peer)
        proxies = [cn for cn in (caller, peer) if role_of(cn) == PROXY_ROLE]
        if not proxies:
            raise ProtocolError(ErrorCode.NOT_AUTHORISED,
                                "a hop key needs a proxy on one end (instances talk to proxies)")
        for p in proxies:
            self._require_attested(p)
        if len(proxies) == 1 and a != b:
            raise ProtocolError(ErrorCode.NOT_AUTHORISED,
                                f"{caller!r} and {peer!r} are in different clusters")
        lo, hi = sorted((caller, peer))
        return hmac.new(self._secret, f"tcfdl-hop\0{lo}\0{hi}".encode(),
                        hashlib.sha256).digest()[:16]

    def _scheme(self, name: str) -> PreScheme:
        try:
            return self._schemes[name]
        except KeyError:
            raise ProtocolError(ErrorCode.MALFORMED, f"unknown PRE scheme {name!r}; choose "
                                f"one of {', '.join(scheme_names())}") from None

    def enroll(self, caller: str, scheme: str, function: str, processor: bool) -> Enrollment:
        """KeyGen (2)/(3): the caller's key pair for `function` (made once, then returned
        again) and its proxy's re-encryption key."""
        check_function(function)
        self.cluster_of(caller)
        pre = self._scheme(scheme)
        key = (scheme, function, caller, processor)
        with self._lock:
            found = self._enrolled.get(key)
            if found is not None:
                return found
            if len(self._enrolled) >= MAX_ENROLLMENTS:
                raise ProtocolError(ErrorCode.LIMIT_REACHED, f"{MAX_ENROLLMENTS} enrollments")
            fkey = self._fkeys.get((scheme, function))
            if fkey is None:
                fkey = self._fkeys[(scheme, function)] = pre.function_key()
            party, rekey = (pre.enroll_processor(fkey) if processor
                            else pre.enroll_provider(fkey))
            found = self._enrolled[key] = Enrollment(party, fkey.public, rekey)
        return found

    def rekey(self, proxy: str, scheme: str, function: str, instance: str,
              stage: str) -> ReKey | None:
        """RK for `instance`'s stage, to the attested proxy of the instance's cluster (None:
        the scheme has no key for that stage)."""
        if stage not in (TO_FUNCTION, TO_PROCESSOR):
            raise ProtocolError(ErrorCode.MALFORMED, f"stage must be {TO_FUNCTION} or "
                                f"{TO_PROCESSOR}")
        self._require_attested(proxy)
        if self.cluster_of(instance) != self.cluster_of(proxy):
            raise ProtocolError(ErrorCode.NOT_AUTHORISED,
                                f"{instance!r} is not in {proxy!r}'s cluster")
        found = self._enrolled.get((scheme, check_function(function), instance,
                                    stage == TO_PROCESSOR))
        if found is None:
            raise LookupError(f"{instance!r} is not enrolled for {function!r} ({scheme})")
        return found.rekey
