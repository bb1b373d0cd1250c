"""Proxy re-encryption behind one interface, so the TCFDL agents pick a scheme by name.

Roles (paper section 3.2): the trusted authority (the service manager) makes a function key and
enrolls instances; a data provider i encapsulates the payload's AES key; the TEE proxies transform
the capsule with re-encryption keys the TA gave them, never learning the key; the processing
instance j decapsulates. A scheme tells how many re-encryptions a path has: the paper's scheme
re-encrypts twice (i -> f at the provider's proxy, f -> j at the processor's), Umbral once
(the provider encapsulates to the function key, f -> j at the processor's proxy), since an Umbral
capsule fragment cannot be re-encrypted again.

Keys and capsules are opaque bytes to the agents (they travel in protobuf / NATS messages).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from agents.security.errors import ErrorCode, ProtocolError

#: the largest capsule any scheme produces (bounds what a proxy accepts)
MAX_CAPSULE_SIZE = 1024


@dataclass(frozen=True)
class FunctionKey:
    """The TA's key of one function: `secret` stays with the TA, `public` is given to parties."""

    scheme: str
    secret: bytes
    public: bytes


@dataclass(frozen=True)
class PartyKey:
    """An instance's key pair (provider i or processor j), issued by the TA."""

    scheme: str
    secret: bytes
    public: bytes


@dataclass(frozen=True)
class ReKey:
    """A re-encryption key held by a TEE proxy: `stage` is "to-function" (RK_i->f, the
    provider's proxy) or "to-processor" (RK_f->j, the processor's proxy)."""

    scheme: str
    stage: str
    material: bytes


TO_FUNCTION = "to-function"
TO_PROCESSOR = "to-processor"


class PreScheme(ABC):
    """One proxy re-encryption scheme moving a 16-byte AES key from provider to processor."""

    #: the name agents select the scheme by
    name: str = ""
    #: the curve, for reports
    curve: str = ""

    @abstractmethod
    def function_key(self) -> FunctionKey:
        """TA: Setup and KeyGen (1), a fresh function key SK_f."""

    @abstractmethod
    def enroll_provider(self, fn: FunctionKey) -> tuple[PartyKey, ReKey | None]:
        """TA: KeyGen (2), a provider's key pair and its proxy's RK_i->f (None where the scheme
        has no provider-side re-encryption)."""

    @abstractmethod
    def enroll_processor(self, fn: FunctionKey) -> tuple[PartyKey, ReKey]:
        """TA: KeyGen (3), a processor's key pair and its proxy's RK_f->j."""

    @abstractmethod
    def encapsulate(self, key: bytes, provider: PartyKey, function_public: bytes) -> bytes:
        """Provider: Enc of the AES key; returns the capsule."""

    @abstractmethod
    def reencrypt(self, rekey: ReKey, capsule: bytes) -> bytes:
        """Proxy: ReEnc of a capsule under its re-encryption key (sees no key, no plaintext)."""

    @abstractmethod
    def decapsulate(self, processor: PartyKey, function_public: bytes, capsule: bytes) -> bytes:
        """Processor: Dec of a fully re-encrypted capsule back to the AES key. A wrong key gives
        an error or a different key (the payload's GCM tag then refuses it)."""

    @abstractmethod
    def invariant(self, capsule: bytes) -> bytes:
        """The part of a capsule that re-encryption leaves unchanged (bound into the payload's
        associated data, so tampering with it is refused even where the scheme cannot tell)."""

    def check(self, obj: FunctionKey | PartyKey | ReKey) -> None:
        """Refuse a key made by another scheme (ProtocolError KEY_MISMATCH)."""
        if obj.scheme != self.name:
            raise ProtocolError(ErrorCode.KEY_MISMATCH,
                                f"{type(obj).__name__} is for scheme {obj.scheme!r}, "
                                f"not {self.name!r}")

    @staticmethod
    def check_capsule(capsule: bytes) -> None:
        """Refuse an oversize capsule before parsing it (ProtocolError LIMIT_REACHED)."""
        if len(capsule) > MAX_CAPSULE_SIZE:
            raise ProtocolError(ErrorCode.LIMIT_REACHED,
                                f"capsule of {len(capsule)} bytes exceeds {MAX_CAPSULE_SIZE}")


def scheme_names() -> tuple[str, ...]:
    """The names `scheme` accepts."""
    return ("p256-paper", "umbral")


def scheme(name: str) -> PreScheme:
    """The PRE scheme called `name` ("p256-paper" or "umbral"); ProtocolError MALFORMED names
    the known ones for any other."""
    if name == "p256-paper":
        from agents.security.tcfdl.pre_p256 import PaperP256
        return PaperP256()
    if name == "umbral":
        from agents.security.tcfdl.pre_umbral import Umbral
        return Umbral()
    raise ProtocolError(ErrorCode.MALFORMED,
                        f"unknown PRE scheme {name!r}; choose one of {', '.join(scheme_names())}")
