"""The paper's single-proxy re-encryption scheme (section 3.2) on NIST P-256, as written.

    KeyGen  SK_f = f; SK_i = x_i, PK_i = x_i P; RK_i->f = f / x_i; RK_f->j = x_j / f  (mod q)
    Enc     EK_1 = (Key || Padding) XOR rP;   EK_2 = r x_i P
    ReEnc   EK_1 unchanged;                   EK_2' = RK * EK_2
    Dec     Key || Padding = EK_1 XOR (SK_j^-1 * EK_2)

"rP" as a bit string is its 32-byte x coordinate (Key: 16 bytes, Padding: 16 random bytes).

Library: `cryptography` (OpenSSL). Every operation of the scheme is a scalar multiplication
(no point additions), and the x coordinate of k*Q depends only on the x coordinate of Q (Q and
-Q give k*Q and -(k*Q)), so a point is carried as its x coordinate and k*Q is OpenSSL's ECDH
(constant time, the peer point validated on the curve); k*P is OpenSSL's public-key derivation.
The unit tests check the algebra against fastecdsa's independent full-point arithmetic.

What the scheme, as written, does not give (say it wherever it is compared): re-encryption keys
are bidirectional, and a proxy colluding with a party can recover f / x; the capsule has no
integrity of its own (a tampered EK_1 or EK_2 yields another key, which the payload's AES-GCM tag
then refuses); the XOR mask is the raw x coordinate rather than a hash of it.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import frame
from agents.security.tcfdl.pre import (
    TO_FUNCTION,
    TO_PROCESSOR,
    FunctionKey,
    PartyKey,
    PreScheme,
    ReKey,
)

#: order of the P-256 base point
Q = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
COORD = 32
_VERSION = 0x01
CAPSULE_SIZE = 1 + 2 * COORD
_CURVE = ec.SECP256R1()


def _scalar(data: bytes) -> int:
    k = int.from_bytes(data, "big")
    if len(data) != COORD or not 0 < k < Q:
        raise ProtocolError(ErrorCode.MALFORMED, "P-256 scalar out of range")
    return k


def _bytes(k: int) -> bytes:
    return k.to_bytes(COORD, "big")


def random_scalar() -> int:
    """A uniformly random scalar in Z_q^*."""
    return secrets.randbelow(Q - 1) + 1


@lru_cache(maxsize=256)
def _private(k: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(k, _CURVE)


def mul_base(k: int) -> bytes:
    """x coordinate of k*P (32 bytes)."""
    return _bytes(ec.derive_private_key(k, _CURVE).public_key().public_numbers().x)


def mul(k: int, x: bytes) -> bytes:
    """x coordinate of k*Q for the P-256 point Q with x coordinate `x` (32 bytes); a value that
    is no point's x coordinate is refused (ProtocolError MALFORMED)."""
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, b"\x02" + x)
    except ValueError:
        raise ProtocolError(ErrorCode.MALFORMED, "capsule point is not on P-256") from None
    return _private(k).exchange(ec.ECDH(), peer)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def encapsulate_with(key: bytes, x_i: int, r: int, padding: bytes) -> bytes:
    """Enc with given randomness (r, Padding): {EK_1, EK_2} as one capsule. For tests; use
    `PaperP256.encapsulate`."""
    if len(key) != frame.AES_KEY_SIZE or len(key) + len(padding) != COORD:
        raise ProtocolError(ErrorCode.MALFORMED, "key and padding must fill one coordinate")
    ek1 = _xor(key + padding, mul_base(r))
    ek2 = mul_base(r * x_i % Q)
    return bytes([_VERSION]) + ek1 + ek2


def split_capsule(capsule: bytes) -> tuple[bytes, bytes]:
    """(EK_1, EK_2) of a capsule; refuses another length or version (MALFORMED)."""
    PreScheme.check_capsule(capsule)
    if len(capsule) != CAPSULE_SIZE or capsule[0] != _VERSION:
        raise ProtocolError(ErrorCode.MALFORMED, "not a p256-paper capsule")
    return capsule[1:1 + COORD], capsule[1 + COORD:]


class PaperP256(PreScheme):
    """Section 3.2's scheme on NIST P-256 (two re-encryptions on a path: i -> f -> j)."""

    name = "p256-paper"
    curve = "NIST P-256"

    def function_key(self) -> FunctionKey:
        """TA: SK_f = f, random in Z_q^*; the public part is fP."""
        f = random_scalar()
        return FunctionKey(self.name, _bytes(f), mul_base(f))

    def _party(self) -> tuple[int, PartyKey]:
        x = random_scalar()
        return x, PartyKey(self.name, _bytes(x), mul_base(x))

    def enroll_provider(self, fn: FunctionKey) -> tuple[PartyKey, ReKey | None]:
        """TA: SK_i = x_i, PK_i = x_i P, and RK_i->f = f / x_i for the provider's proxy."""
        self.check(fn)
        x, party = self._party()
        rk = _scalar(fn.secret) * pow(x, -1, Q) % Q
        return party, ReKey(self.name, TO_FUNCTION, _bytes(rk))

    def enroll_processor(self, fn: FunctionKey) -> tuple[PartyKey, ReKey]:
        """TA: SK_j = x_j, PK_j = x_j P, and RK_f->j = x_j / f for the processor's proxy."""
        self.check(fn)
        x, party = self._party()
        rk = x * pow(_scalar(fn.secret), -1, Q) % Q
        return party, ReKey(self.name, TO_PROCESSOR, _bytes(rk))

    def encapsulate(self, key: bytes, provider: PartyKey, function_public: bytes) -> bytes:
        """Enc: EK_1 = (Key || Padding) XOR rP, EK_2 = r x_i P, fresh r and Padding."""
        self.check(provider)
        return encapsulate_with(key, _scalar(provider.secret), random_scalar(),
                                os.urandom(COORD - frame.AES_KEY_SIZE))

    def reencrypt(self, rekey: ReKey, capsule: bytes) -> bytes:
        """ReEnc: EK_2' = RK * EK_2, EK_1 unchanged."""
        self.check(rekey)
        ek1, ek2 = split_capsule(capsule)
        return bytes([_VERSION]) + ek1 + mul(_scalar(rekey.material), ek2)

    def invariant(self, capsule: bytes) -> bytes:
        """EK_1 (ReEnc copies it), so a changed Padding half is refused too."""
        return split_capsule(capsule)[0]

    def decapsulate(self, processor: PartyKey, function_public: bytes, capsule: bytes) -> bytes:
        """Dec: Key || Padding = EK_1 XOR (SK_j^-1 * EK_2); returns Key."""
        self.check(processor)
        ek1, ek2 = split_capsule(capsule)
        inv = pow(_scalar(processor.secret), -1, Q)
        return _xor(ek1, mul(inv, ek2))[:frame.AES_KEY_SIZE]
