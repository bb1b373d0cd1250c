"""Periodic resource advertisements (seed 000 Algorithm 1) and Algorithm 2's choice. No grpc.

Shared by the advertising side (the node agent) and the receiving sides (the SMF, the
neighbouring node agents), so it lives with the protocol code; amounts are `Amounts` in node
units (millicores, bytes, bytes, bit/s, GPUs); `from_rasp` converts RASP's protocol units.

A cloud (an edge host's node agent) signs an `Advertisement` of its MAX and FREE with its host
identity (the RASP endpoint's key) every period and sends it to the servers that subscribe: the
SMF (which places services) and the neighbouring node agents (BloSM Algorithm 3 redirects
requests with it). The advertisement is a broadcast, not addressed to one receiver.

`AdvertTable` is the receiving side: it verifies the signature under the cloud's pinned key,
refuses a message outside the freshness window (EXPIRED) or whose sequence number is not above
the last one accepted from that cloud (REPLAY), keeps the latest advertisement per cloud (at
most ``max_clouds``) and reports its age; advertisements older than ``ttl_s`` are stale:
`fresh` leaves them out and `expire` drops them (their sequence floor stays, bounded too).

`choose_cloud` is Algorithm 2 over the fresh advertisements: a cloud qualifies when the
request is non-zero and fits in its advertised FREE on every resource (``<=``, as RASP's
"fits"); among them the nearest, then the lexicographically smallest name (deterministic).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

from agents.security import encoding
from agents.security.crypto import Identity, PublicIdentity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources as RaspResources

#: what a signature covers, so an advertisement's signature is valid for nothing else
SIGNING_CONTEXT = b"edgeferry/raa-advertisement/v1\x00"
MAX_ADVERT_BYTES = 4096
MAX_SIGNATURE_BYTES = 128
DEFAULT_WINDOW_S = 30.0
DEFAULT_TTL_S = 90.0
DEFAULT_MAX_CLOUDS = 256
MAX_PLACEMENT_DETAIL = 2000  # characters of `Placement.detail`
CLOUD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _err(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, message)


MIB = 1024 * 1024


@dataclass(frozen=True)
class Amounts:
    """Five resource amounts in node units: CPU millicores, memory bytes, storage bytes,
    network bit/s, GPUs."""

    WIRE_NAME = "RaaAmounts"

    cpu_millicores: int = 0
    memory_bytes: int = 0
    storage_bytes: int = 0
    network_bps: int = 0
    gpu: int = 0

    def values(self) -> tuple[int, ...]:
        """The five amounts in field order."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def any_positive(self) -> bool:
        """True when some amount is above zero."""
        return any(v > 0 for v in self.values())


def from_rasp(r: RaspResources) -> Amounts:
    """RASP units (millicores, MiB, MiB, Mbit/s) -> node units."""
    return Amounts(r.cpu, r.memory * MIB, r.storage * MIB, r.network * 1_000_000, 0)


def to_rasp(a: Amounts) -> RaspResources:
    """Node units -> RASP units, rounded down (a host never claims more than it has)."""
    return RaspResources(a.cpu_millicores, a.memory_bytes // MIB, a.storage_bytes // MIB,
                         a.network_bps // 1_000_000)


@dataclass(frozen=True)
class Advertisement:
    """Advc(CB, ResCB): a cloud's MAX and FREE (node units: millicores, bytes, bytes, bit/s,
    GPUs) and its measured use, numbered per cloud and stamped with the send time (ms)."""

    WIRE_NAME = "RaaAdvertisement"

    cloud: str
    seq: int
    issued_ms: int
    maximum: Amounts
    free: Amounts
    cpu_used_millicores: int = 0
    cpu_sample_age_ms: int = -1
    memory_used_bytes: int = 0
    gpu_memory_total_bytes: int = 0
    gpu_memory_used_bytes: int = 0
    gpu_utilisation_permille: int = -1  # -1: not measured / no GPU
    gpu_source: str = "none"

    def body(self) -> bytes:
        """The canonical encoding (what is signed and sent)."""
        return encoding.encode(self)


def sign_advertisement(identity: Identity, advert: Advertisement) -> tuple[bytes, bytes]:
    """(body, signature) of ``advert`` under ``identity``; its cloud must be the identity's."""
    if advert.cloud != identity.name:
        raise ValueError(f"advertisement names {advert.cloud!r}, the key is {identity.name!r}")
    body = advert.body()
    return body, identity.sign(SIGNING_CONTEXT + body)


def parse_advertisement(body: bytes) -> Advertisement:
    """Decode ``body`` strictly; MALFORMED / LIMIT_REACHED for anything out of bounds."""
    if len(body) > MAX_ADVERT_BYTES:
        raise _err(ErrorCode.LIMIT_REACHED, f"advertisement over {MAX_ADVERT_BYTES} bytes")
    try:
        advert = encoding.decode_as(Advertisement, bytes(body))
    except ProtocolError:
        raise
    except (ValueError, TypeError) as err:
        raise _err(ErrorCode.MALFORMED, f"advertisement does not decode: {err}") from None
    if not CLOUD_NAME_RE.match(advert.cloud):
        raise _err(ErrorCode.MALFORMED, "advertisement's cloud name is not a host name")
    if advert.seq < 1 or advert.issued_ms < 0:
        raise _err(ErrorCode.MALFORMED, "sequence must be >= 1 and the timestamp >= 0")
    for res in (advert.maximum, advert.free):
        if any(v < 0 for v in res.values()):
            raise _err(ErrorCode.MALFORMED, "negative resource in advertisement")
    return advert


@dataclass(frozen=True)
class Received:
    """An accepted advertisement and when it arrived (receiver's clock, seconds)."""

    advert: Advertisement
    received_at: float

    def age(self, now: float) -> float:
        """Seconds since it arrived."""
        return max(0.0, now - self.received_at)


KeyLookup = Callable[[str], PublicIdentity | None]


class AdvertTable:
    """The latest advertisement per cloud, verified and replay-checked (module docstring)."""

    def __init__(self, keys: KeyLookup, *, window_s: float = DEFAULT_WINDOW_S,
                 ttl_s: float = DEFAULT_TTL_S, max_clouds: int = DEFAULT_MAX_CLOUDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.window_s = window_s
        self.ttl_s = ttl_s
        self.max_clouds = max_clouds
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: OrderedDict[str, Received] = OrderedDict()
        self._seq: OrderedDict[str, int] = OrderedDict()

    def accept(self, body: bytes, signature: bytes) -> Advertisement:
        """Verify and keep ``body``; raise ProtocolError (nothing changes) when refused."""
        if len(signature) > MAX_SIGNATURE_BYTES:
            raise _err(ErrorCode.LIMIT_REACHED, "signature too long")
        advert = parse_advertisement(body)
        public = self.keys(advert.cloud)
        if public is None:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"no key known for cloud {advert.cloud!r}")
        public.verify(SIGNING_CONTEXT + bytes(body), bytes(signature))
        now = self._clock()
        skew = abs(now - advert.issued_ms / 1000.0)
        if skew > self.window_s:
            raise _err(ErrorCode.EXPIRED, f"advertisement stamped {skew:.1f} s from now "
                                          f"(window {self.window_s:g} s)")
        with self._lock:
            floor = self._seq.get(advert.cloud, 0)
            if advert.seq <= floor:
                raise _err(ErrorCode.REPLAY, f"sequence {advert.seq} <= {floor} already "
                                             f"accepted from {advert.cloud}")
            if advert.cloud not in self._seq and len(self._seq) >= self.max_clouds:
                self._evict(now)
            self._seq[advert.cloud] = advert.seq
            self._seq.move_to_end(advert.cloud)
            self._latest[advert.cloud] = Received(advert, now)
            self._latest.move_to_end(advert.cloud)
        return advert

    def _evict(self, now: float) -> None:
        """Make room for one cloud: stale entries first, else the least recently heard."""
        self._expire_locked(now)
        while len(self._seq) >= self.max_clouds:
            cloud, _ = self._seq.popitem(last=False)
            self._latest.pop(cloud, None)

    def _expire_locked(self, now: float) -> int:
        stale = [c for c, r in self._latest.items() if r.age(now) > self.ttl_s]
        for cloud in stale:
            del self._latest[cloud]
        return len(stale)

    def expire(self) -> int:
        """Drop the stale advertisements; return how many."""
        with self._lock:
            return self._expire_locked(self._clock())

    def get(self, cloud: str) -> tuple[Advertisement, float] | None:
        """``cloud``'s latest fresh advertisement and its age (s), or None."""
        now = self._clock()
        with self._lock:
            got = self._latest.get(cloud)
        if got is None or got.age(now) > self.ttl_s:
            return None
        return got.advert, got.age(now)

    def fresh(self) -> list[tuple[Advertisement, float]]:
        """Every fresh advertisement with its age, by cloud name."""
        now = self._clock()
        with self._lock:
            items = list(self._latest.values())
        return sorted(((r.advert, r.age(now)) for r in items if r.age(now) <= self.ttl_s),
                      key=lambda pair: pair[0].cloud)

    def __len__(self) -> int:
        with self._lock:
            return len(self._latest)


def fits(required: Amounts, free: Amounts) -> bool:
    """Algorithm 2, line 6: a non-zero request that fits in FREE on every resource (<=)."""
    return required.any_positive() and all(
        r <= f for r, f in zip(required.values(), free.values(), strict=True))


@dataclass(frozen=True)
class Placement:
    """Algorithm 2's outcome: the chosen cloud (None: every advertisement ignored) and why
    each other candidate was ignored."""

    chosen: str | None
    ignored: tuple[tuple[str, str], ...]

    def reason(self) -> str:
        """One line for the refusal (or the choice)."""
        why = "; ".join(f"{c}: {r}" for c, r in self.ignored) or "no fresh advertisement"
        return f"chose {self.chosen} ({why})" if self.chosen else f"no cloud fits ({why})"

    def detail(self, limit: int = MAX_PLACEMENT_DETAIL) -> str:
        """The outcome as a JSON object of at most ``limit`` characters: ``chosen``,
        ``refused`` (per ignored cloud: ``cloud`` and ``shortfall``, resource ->
        ``[required, free]`` in node units; the list cut short when too long, ``more``
        counting what was left out) and the one-line ``reason``."""
        refused = [{"cloud": c, "shortfall": {k: list(v) for k, v in
                                              parse_shortfall(r).items()}}
                   for c, r in self.ignored]
        doc: dict[str, object] = {"chosen": self.chosen, "refused": refused,
                                  "reason": self.reason()[:200]}
        text = json.dumps(doc, sort_keys=True)
        while len(text) > limit and refused:
            refused.pop()
            doc["more"] = len(self.ignored) - len(refused)
            text = json.dumps(doc, sort_keys=True)
        return text


def shortfall(required: Amounts, free: Amounts) -> str:
    """Which requested resources exceed FREE, e.g. ``memory_bytes 2147483648 > 1610612736``."""
    return ", ".join(f"{f.name} {r} > {v}" for f, r, v in
                     zip(fields(Amounts), required.values(), free.values(), strict=True)
                     if r > v) or "nothing requested"


_SHORT = re.compile(r"([a-z_]+) (\d+) > (\d+)")


def parse_shortfall(text: str) -> dict[str, tuple[int, int]]:
    """`shortfall`'s line back as resource -> (required, free); {} for "nothing requested"."""
    return {m.group(1): (int(m.group(2)), int(m.group(3))) for m in _SHORT.finditer(text)}


def choose_cloud(required: Amounts, adverts: Iterable[Advertisement], *,
                 exclude: Iterable[str] = (),
                 distance: Callable[[str], float] = lambda _name: 0.0) -> Placement:
    """Algorithm 2 over ``adverts`` (module docstring); ``exclude`` (e.g. the source) and
    clouds outside ``distance``'s knowledge are the caller's to filter."""
    skip = set(exclude)
    ignored: list[tuple[str, str]] = []
    fitting: list[Advertisement] = []
    for advert in adverts:
        if advert.cloud in skip:
            continue
        if fits(required, advert.free):
            fitting.append(advert)
        else:
            ignored.append((advert.cloud, shortfall(required, advert.free)))
    if not fitting:
        return Placement(None, tuple(ignored))
    best = min(fitting, key=lambda a: (distance(a.cloud), a.cloud))
    return Placement(best.cloud, tuple(ignored))
