"""BCSL capabilities (seed 000, section 5): the paper's 128-bit format, the paper's plain scheme,
and our sealed scheme that keeps the wire format but adds a keyed tag and revocation state.

128-bit layout, most significant bit first (big-endian bytes):

    type 8 | SYS 4 (P S M C) | property 12 | object id 72 (EUI-64 64 + netadmin 8) |
    random 16 | hash 16 = first 16 bits of SHA-1 over the preceding 112 bits

Byte offsets: 0 type, 1 SYS<<4 | property>>8, 2 property low byte, 3..10 EUI-64, 11 netadmin,
12..13 random, 14..15 hash. The text form is eight groups of four hex digits separated by ':'
(it reads like an IPv6 address, matching the paper's Location/ID idea), e.g.
``0118:0010:0000:0000:0001:0102:1a2b:c3d4``.

Why the plain scheme is weak (and what `SealedCapabilityAuthority` changes):
- the 16-bit hash is unkeyed, so anybody can change the type, SYS bits (e.g. set M or C) or the
  property and recompute it;
- the random field has 16 bits, so even a verifier that remembers the current random of each
  object is found in at most 2**16 guesses.
The sealed scheme keeps the 16 bytes unchanged (old parsers still read them) and carries beside
them a tag HMAC-SHA256(issuer key, 16 bytes | issuer id | expiry | holder binding | parent |
holder key | owner) truncated to >= 128 bits, compared in constant time, plus server-side
revocation state.

Bindings (a capability is no bearer token):
- `holder_key`: SHA-256 fingerprint of the public identity of the application that holds the
  capability (`PublicIdentity.fingerprint`, the full 32 bytes). A verifier accepts it only with
  proof of possession of that key (SSP step 3 is signed with it: `require_holder`).
- `owner`: for a DEVICE capability, the object id (9 bytes) of the USER that owns the device;
  SSP step 3 refuses a user capability presented with another user's device (`require_owner`).
- `holder` (private capabilities): SHA-256 over the complete sealed subject capabilities (tags,
  bindings and expiry included), not only their 16 public bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag

from agents.security import encoding
from agents.security.crypto import constant_time_equal
from agents.security.errors import CapabilityError, ErrorCode
from agents.security.stores import RevocationStore

CAPABILITY_SIZE = 16
BODY_SIZE = 14  # the 112 bits the hash covers
MIN_TAG_SIZE = 16  # 128 bits
DEFAULT_TAG_SIZE = 16
_TAG_LABEL = b"edgeferry/capability-tag/v2"
_HOLDER_LABEL = b"edgeferry/capability-holder/v2"
HOLDER_SIZE = 32  # SHA-256
OBJECT_ID_SIZE = 9
_TEXT_PREFIX = "efcap1."


class CapType(IntEnum):
    """Values of the 8-bit type field (the paper names the types but not their numbers)."""

    USER = 0x01
    DEVICE = 0x02
    SERVICE = 0x03
    SERVER = 0x04
    SESSION = 0x05


class SysFlags(IntFlag):
    """The 4-bit SYS field, most significant bit first: P S M C."""

    NONE = 0
    CHANGE = 0x1  # C: proxies may be derived from this (master) capability
    MASTER = 0x2  # M: made by a CA when the object was made; unset = proxy
    SYSTEM = 0x4  # S: object created by the system, users may not modify/delete it
    PRIVATE = 0x8  # P: the subject's capability must be presented too


@dataclass(frozen=True)
class ObjectId:
    """72-bit object id: EUI-64 identifier plus an 8-bit netadmin field."""

    eui64: int
    netadmin: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.eui64 < 2**64:
            raise ValueError("EUI-64 must fit in 64 bits")
        if not 0 <= self.netadmin < 2**8:
            raise ValueError("netadmin must fit in 8 bits")

    @classmethod
    def from_name(cls, name: str, netadmin: int = 0) -> ObjectId:
        """Derive a stable EUI-64 from a name (for objects without a hardware EUI-64)."""
        digest = hashlib.sha256(b"edgeferry/object-id/v1" + name.encode("utf-8")).digest()
        return cls(int.from_bytes(digest[:8], "big"), netadmin)

    def to_bytes(self) -> bytes:
        """The 72 bits as 9 bytes (EUI-64 big-endian, then netadmin)."""
        return self.eui64.to_bytes(8, "big") + bytes([self.netadmin])


def paper_hash16(body: bytes) -> int:
    """First 16 bits of SHA-1 over the 112-bit body (the paper's tamper check)."""
    if len(body) != BODY_SIZE:
        raise ValueError("capability body must be 14 bytes")
    return int.from_bytes(hashlib.sha1(body, usedforsecurity=False).digest()[:2], "big")


@dataclass(frozen=True)
class Capability:
    """One 128-bit capability, field by field. `hash16` is whatever the bytes carry."""

    cap_type: int
    sys: SysFlags
    prop: int
    object_id: ObjectId
    random: int
    hash16: int

    def __post_init__(self) -> None:
        if not 0 <= self.cap_type < 2**8:
            raise ValueError("type must fit in 8 bits")
        if not 0 <= int(self.sys) < 2**4:
            raise ValueError("SYS must fit in 4 bits")
        if not 0 <= self.prop < 2**12:
            raise ValueError("property must fit in 12 bits")
        if not 0 <= self.random < 2**16:
            raise ValueError("random must fit in 16 bits")
        if not 0 <= self.hash16 < 2**16:
            raise ValueError("hash must fit in 16 bits")

    @classmethod
    def build(
        cls, cap_type: int, sys: SysFlags, prop: int, object_id: ObjectId, random: int
    ) -> Capability:
        """A capability whose hash field is computed the paper's way."""
        unhashed = cls(cap_type, SysFlags(sys), prop, object_id, random, 0)
        return replace(unhashed, hash16=paper_hash16(unhashed.body()))

    def body(self) -> bytes:
        """The first 112 bits (everything but the hash)."""
        return (
            bytes([self.cap_type, (int(self.sys) << 4) | (self.prop >> 8)])
            + bytes([self.prop & 0xFF])
            + self.object_id.eui64.to_bytes(8, "big")
            + bytes([self.object_id.netadmin])
            + self.random.to_bytes(2, "big")
        )

    def to_bytes(self) -> bytes:
        return self.body() + self.hash16.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Capability:
        if len(data) != CAPABILITY_SIZE:
            raise CapabilityError(ErrorCode.MALFORMED, "a capability is exactly 16 bytes")
        return cls(
            cap_type=data[0],
            sys=SysFlags(data[1] >> 4),
            prop=((data[1] & 0x0F) << 8) | data[2],
            object_id=ObjectId(int.from_bytes(data[3:11], "big"), data[11]),
            random=int.from_bytes(data[12:14], "big"),
            hash16=int.from_bytes(data[14:16], "big"),
        )

    def text(self) -> str:
        raw = self.to_bytes().hex()
        return ":".join(raw[i : i + 4] for i in range(0, 32, 4))

    @classmethod
    def parse(cls, text: str) -> Capability:
        groups = text.strip().split(":")
        if len(groups) != 8 or any(len(g) != 4 for g in groups):
            raise CapabilityError(ErrorCode.MALFORMED, "expected 8 groups of 4 hex digits")
        try:
            return cls.from_bytes(bytes.fromhex("".join(groups)))
        except ValueError as exc:
            raise CapabilityError(ErrorCode.MALFORMED, "capability text is not hex") from exc

    def hash_ok(self) -> bool:
        return self.hash16 == paper_hash16(self.body())

    @property
    def is_master(self) -> bool:
        return SysFlags.MASTER in self.sys

    @property
    def can_change(self) -> bool:
        return SysFlags.CHANGE in self.sys

    @property
    def is_private(self) -> bool:
        return SysFlags.PRIVATE in self.sys


def holder_binding(subjects: Sequence[SealedCapability]) -> bytes:
    """SHA-256 binding a private capability to its subjects' complete sealed capabilities (in
    order, e.g. [USER CAP, DEV CAP]): tag, expiry and bindings included, not only the 16 bytes."""
    if not subjects:
        raise ValueError("a holder binding needs at least one subject capability")
    if not all(isinstance(s, SealedCapability) for s in subjects):
        raise CapabilityError(ErrorCode.MALFORMED, "subjects must be sealed capabilities")
    material = encoding.encode([s.to_bytes() for s in subjects])
    return hashlib.sha256(_HOLDER_LABEL + material).digest()


def require_holder(sealed: SealedCapability, fingerprint: bytes) -> None:
    """NOT_AUTHORISED unless `sealed` is bound to the key whose fingerprint is given (the
    caller has checked the holder's proof of possession of that key)."""
    if sealed.holder_key is None or not constant_time_equal(sealed.holder_key, fingerprint):
        raise CapabilityError(ErrorCode.NOT_AUTHORISED,
                              "capability is bound to another application key")


def require_owner(device: SealedCapability, user: Capability) -> None:
    """NOT_AUTHORISED unless the DEVICE capability names `user`'s object as its owner."""
    if device.owner is None or not constant_time_equal(device.owner, user.object_id.to_bytes()):
        raise CapabilityError(ErrorCode.NOT_AUTHORISED, "the device belongs to another user")


class PaperCapabilityScheme:
    """The plain scheme of the paper: verification recomputes the unkeyed 16-bit hash.

    Kept to demonstrate its weakness in tests and to read capabilities made by the paper's
    BCSL. `verify_current` additionally checks the random field against the one this scheme
    last issued for the object (the paper's revocation: change the random, recompute the hash).
    """

    def __init__(self, randbits: Callable[[int], int] = secrets.randbits) -> None:
        self._randbits = randbits
        self._current: dict[tuple[int, ObjectId], int] = {}

    def issue(self, cap_type: int, sys: SysFlags, prop: int, object_id: ObjectId) -> Capability:
        cap = Capability.build(cap_type, sys, prop, object_id, self._randbits(16))
        self._current[(cap_type, object_id)] = cap.random
        return cap

    def verify(self, cap: Capability) -> Capability:
        if not cap.hash_ok():
            raise CapabilityError(ErrorCode.BAD_TAG, "16-bit hash does not match")
        return cap

    def verify_current(self, cap: Capability) -> Capability:
        self.verify(cap)
        if self._current.get((cap.cap_type, cap.object_id)) != cap.random:
            raise CapabilityError(ErrorCode.REVOKED, "random field is not the current one")
        return cap

    def revoke(self, cap: Capability) -> Capability:
        """New random field and recomputed hash; the old version stops verifying (current)."""
        new = Capability.build(cap.cap_type, cap.sys, cap.prop, cap.object_id, self._randbits(16))
        self._current[(cap.cap_type, cap.object_id)] = new.random
        return new

    def derive_proxy(self, master: Capability, prop: int) -> Capability:
        self.verify(master)
        if not master.is_master:
            raise CapabilityError(ErrorCode.NOT_AUTHORISED, "proxies derive only from masters")
        if not master.can_change:
            raise CapabilityError(ErrorCode.NOT_AUTHORISED, "master has no C bit")
        sys = master.sys & ~(SysFlags.MASTER | SysFlags.CHANGE)
        return Capability.build(master.cap_type, sys, prop, master.object_id, self._randbits(16))


@dataclass(frozen=True)
class SealedCapability:
    """The 16 paper bytes plus issuer, expiry, holder binding, parent and the keyed tag."""

    WIRE_NAME = "SealedCapability"

    raw: bytes  # the 128-bit capability, paper format
    issuer: str
    expires_at_ms: int | None  # absolute, Unix epoch milliseconds; None = no expiry
    holder: bytes | None  # holder_binding(subjects) for private capabilities
    parent: bytes | None  # 14-byte body of the master a proxy was derived from
    holder_key: bytes | None  # SHA-256 fingerprint of the holder's public identity
    owner: bytes | None  # DEVICE: the owning USER's 9-byte object id
    tag: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != CAPABILITY_SIZE:
            raise ValueError("raw capability must be 16 bytes")
        if not MIN_TAG_SIZE <= len(self.tag) <= 32:
            raise ValueError("tag must be 16..32 bytes")
        if self.holder is not None and len(self.holder) != HOLDER_SIZE:
            raise ValueError("holder binding must be 32 bytes")
        if self.holder_key is not None and len(self.holder_key) != HOLDER_SIZE:
            raise ValueError("holder key fingerprint must be 32 bytes")
        if self.owner is not None and len(self.owner) != OBJECT_ID_SIZE:
            raise ValueError("owner must be a 9-byte object id")
        if self.parent is not None and len(self.parent) != BODY_SIZE:
            raise ValueError("parent must be a 14-byte capability body")

    @property
    def cap(self) -> Capability:
        return Capability.from_bytes(self.raw)

    def to_bytes(self) -> bytes:
        return encoding.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedCapability:
        return encoding.decode_as(cls, data)

    def to_text(self) -> str:
        return _TEXT_PREFIX + base64.urlsafe_b64encode(self.to_bytes()).decode().rstrip("=")

    @classmethod
    def parse(cls, text: str) -> SealedCapability:
        if not text.startswith(_TEXT_PREFIX):
            raise CapabilityError(ErrorCode.MALFORMED, f"expected text starting {_TEXT_PREFIX}")
        body = text[len(_TEXT_PREFIX) :]
        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError as exc:
            raise CapabilityError(ErrorCode.MALFORMED, "sealed capability is not base64") from exc
        return cls.from_bytes(data)

    def tag_input(self) -> bytes:
        return _TAG_LABEL + encoding.encode(
            [self.raw, self.issuer, self.expires_at_ms, self.holder, self.parent,
             self.holder_key, self.owner]
        )


def decode_capability(data: bytes, what: str) -> SealedCapability:
    """A sealed capability from its bytes; MALFORMED (naming `what`) when there are none."""
    if not data:
        raise CapabilityError(ErrorCode.MALFORMED, f"{what} is missing")
    return SealedCapability.from_bytes(bytes(data))


def _tag(key: bytes, sealed: SealedCapability, size: int) -> bytes:
    return hmac.new(key, sealed.tag_input(), hashlib.sha256).digest()[:size]


class SealedCapabilityAuthority:
    """Issues and verifies sealed capabilities for one issuer.

    - `master_types`: the capability types this authority is the CA for. Masters of any other
      type are refused (an authority with no master types is not a CA at all).
    - `trusted`: tag keys of other issuers whose capabilities we verify (HMAC is symmetric:
      share a key only inside one trust domain, e.g. one SMF and the servers of its services).
    - Revocation state lives in `store` (RevocationStore); revoking a master also revokes every
      proxy derived from it (proxies carry their parent's body under the tag).
    - `clock` returns seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        issuer_id: str,
        key: bytes,
        *,
        store: RevocationStore,
        master_types: Iterable[int] = (),
        trusted: Mapping[str, bytes] | None = None,
        clock: Callable[[], float] = time.time,
        tag_size: int = DEFAULT_TAG_SIZE,
        randbits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        if len(key) < 32:
            raise ValueError("capability tag key must be at least 32 bytes")
        if not MIN_TAG_SIZE <= tag_size <= 32:
            raise ValueError("tag size must be 16..32 bytes")
        self.issuer_id = issuer_id
        self._keys = dict(trusted or {})
        self._keys[issuer_id] = key
        self._store = store
        self._master_types = frozenset(int(t) for t in master_types)
        self._clock = clock
        self._tag_size = tag_size
        self._randbits = randbits

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- issuing ---------------------------------------------------------------------------

    def issue_master(
        self,
        cap_type: int,
        object_id: ObjectId,
        prop: int,
        *,
        change: bool = False,
        system: bool = False,
        ttl_s: float | None = None,
        subjects: Sequence[SealedCapability] | None = None,
        holder_key: bytes | None = None,
        owner: ObjectId | None = None,
    ) -> SealedCapability:
        """A master capability (M set). Only for types this authority is the CA for.
        `holder_key`: fingerprint of the key the holder must prove possession of; `owner`: the
        USER object owning a DEVICE."""
        if int(cap_type) not in self._master_types:
            raise CapabilityError(
                ErrorCode.NOT_AUTHORISED,
                f"{self.issuer_id!r} is not the CA for capability type {int(cap_type)}",
            )
        sys = SysFlags.MASTER
        if change:
            sys |= SysFlags.CHANGE
        if system:
            sys |= SysFlags.SYSTEM
        holder = None
        if subjects:
            sys |= SysFlags.PRIVATE
            holder = holder_binding(subjects)
        expires = None if ttl_s is None else self.now_ms() + round(ttl_s * 1000)
        return self._mint(cap_type, sys, prop, object_id, expires, holder, None,
                          holder_key, None if owner is None else owner.to_bytes())

    def derive_proxy(
        self,
        master: SealedCapability,
        *,
        prop: int | None = None,
        ttl_s: float | None = None,
        subjects: Sequence[SealedCapability] | None = None,
        master_subjects: Sequence[SealedCapability] | None = None,
        master_authenticated: bool = False,
    ) -> SealedCapability:
        """A proxy (M and C cleared) from a master with C set; never from another proxy.

        The proxy's property must be a subset of the master's. With `subjects` the proxy is
        private (P set) and bound to them. The master is checked with `verify` unless the
        caller received it over an authenticated channel from its issuer and says so with
        `master_authenticated=True` (then only structure and expiry are checked).
        """
        if master_authenticated:
            cap = master.cap
            if not cap.hash_ok():
                raise CapabilityError(ErrorCode.BAD_TAG, "master's 16-bit hash does not match")
            self._check_expiry(master, self.now_ms())
        else:
            cap = self.verify(master, subjects=master_subjects)
        if not cap.is_master:
            raise CapabilityError(
                ErrorCode.NOT_AUTHORISED, "proxies derive only from masters, not from proxies"
            )
        if not cap.can_change:
            raise CapabilityError(ErrorCode.NOT_AUTHORISED, "master has no C bit: no proxies")
        new_prop = cap.prop if prop is None else prop
        if new_prop & ~cap.prop:
            raise CapabilityError(
                ErrorCode.NOT_AUTHORISED, "a proxy cannot have properties its master lacks"
            )
        sys = cap.sys & SysFlags.SYSTEM
        holder = None
        if subjects:
            sys |= SysFlags.PRIVATE
            holder = holder_binding(subjects)
        expires = master.expires_at_ms
        if ttl_s is not None:
            mine = self.now_ms() + round(ttl_s * 1000)
            expires = mine if expires is None else min(expires, mine)
        return self._mint(cap.cap_type, sys, new_prop, cap.object_id, expires, holder, cap.body(),
                          master.holder_key, master.owner)

    def _mint(
        self,
        cap_type: int,
        sys: SysFlags,
        prop: int,
        object_id: ObjectId,
        expires_at_ms: int | None,
        holder: bytes | None,
        parent: bytes | None,
        holder_key: bytes | None = None,
        owner: bytes | None = None,
    ) -> SealedCapability:
        for _ in range(64):
            cap = Capability.build(cap_type, sys, prop, object_id, self._randbits(16))
            if not self._store.is_revoked(cap.body()):
                break
        else:  # pragma: no cover - needs ~all 65536 randoms of one object revoked
            raise CapabilityError(ErrorCode.REVOKED, "no unrevoked random field left")
        unsigned = SealedCapability(cap.to_bytes(), self.issuer_id, expires_at_ms, holder, parent,
                                    holder_key, owner, b"\0" * self._tag_size)
        return replace(unsigned, tag=_tag(self._keys[self.issuer_id], unsigned, self._tag_size))

    # -- verifying -------------------------------------------------------------------------

    def verify(
        self,
        sealed: SealedCapability,
        *,
        subjects: Sequence[SealedCapability] | None = None,
        now_ms: int | None = None,
    ) -> Capability:
        """Return the capability if it is authentic, unexpired, unrevoked and (for private
        capabilities) presented with the subjects it is bound to; else raise CapabilityError."""
        key = self._keys.get(sealed.issuer)
        if key is None:
            raise CapabilityError(
                ErrorCode.UNKNOWN_PRINCIPAL, f"no tag key for issuer {sealed.issuer!r}"
            )
        if len(sealed.tag) != self._tag_size or not constant_time_equal(
            _tag(key, sealed, self._tag_size), sealed.tag
        ):
            raise CapabilityError(ErrorCode.BAD_TAG, "capability tag does not verify")
        cap = sealed.cap
        if not cap.hash_ok():  # unreachable unless the issuer itself minted it wrong
            raise CapabilityError(ErrorCode.BAD_TAG, "16-bit hash does not match")
        if cap.is_master == (sealed.parent is not None):
            raise CapabilityError(ErrorCode.MALFORMED, "masters have no parent, proxies have one")
        self._check_expiry(sealed, self.now_ms() if now_ms is None else now_ms)
        if sealed.issuer == self.issuer_id and (
            self._store.is_revoked(cap.body())
            or (sealed.parent is not None and self._store.is_revoked(sealed.parent))
        ):
            raise CapabilityError(ErrorCode.REVOKED, "capability has been revoked")
        if cap.is_private:
            if not subjects or sealed.holder is None:
                raise CapabilityError(
                    ErrorCode.NOT_AUTHORISED, "private capability needs the subject's capability"
                )
            if not constant_time_equal(holder_binding(subjects), sealed.holder):
                raise CapabilityError(
                    ErrorCode.NOT_AUTHORISED, "capability is bound to other subjects"
                )
        return cap

    @staticmethod
    def _check_expiry(sealed: SealedCapability, now_ms: int) -> None:
        if sealed.expires_at_ms is not None and now_ms >= sealed.expires_at_ms:
            raise CapabilityError(ErrorCode.EXPIRED, "capability has expired")

    # -- revoking --------------------------------------------------------------------------

    def is_revoked(self, sealed: SealedCapability) -> bool:
        """Whether this capability version (of this issuer) is revoked."""
        return self._store.is_revoked(sealed.cap.body())

    def revoke(self, sealed: SealedCapability) -> None:
        """Refuse this capability version (and proxies of it) from now on."""
        if sealed.issuer != self.issuer_id:
            raise CapabilityError(
                ErrorCode.NOT_AUTHORISED, "only the issuer can revoke a capability"
            )
        self._store.revoke(sealed.cap.body(), sealed.expires_at_ms)

    def reissue(self, sealed: SealedCapability) -> SealedCapability:
        """The paper's revocation: the same capability with a new random field; the old
        version (and every proxy derived from it) is refused from now on."""
        if sealed.issuer != self.issuer_id:
            raise CapabilityError(
                ErrorCode.NOT_AUTHORISED, "only the issuer can reissue a capability"
            )
        if len(sealed.tag) != self._tag_size or not constant_time_equal(
            _tag(self._keys[self.issuer_id], sealed, self._tag_size), sealed.tag
        ):
            raise CapabilityError(ErrorCode.BAD_TAG, "capability tag does not verify")
        cap = sealed.cap
        if self._store.is_revoked(cap.body()):
            raise CapabilityError(ErrorCode.REVOKED, "capability has been revoked")
        self.revoke(sealed)
        return self._mint(
            cap.cap_type,
            cap.sys,
            cap.prop,
            cap.object_id,
            sealed.expires_at_ms,
            sealed.holder,
            sealed.parent,
            sealed.holder_key,
            sealed.owner,
        )

    def purge(self) -> int:
        """Drop revocation entries of capabilities that have expired anyway."""
        return self._store.purge(self.now_ms())
