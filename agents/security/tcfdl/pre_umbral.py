"""Umbral proxy re-encryption (umbral-pre, secp256k1) behind the TCFDL PRE interface.

Umbral re-encrypts a capsule once (a capsule fragment cannot be re-encrypted again), so the path
is: the provider encapsulates the AES key to the function's public key PK_f (no provider-side
re-encryption); the TA, holding SK_f, issues a 1-of-1 key fragment f -> j signed by the
function's signing key for processor j's proxy; that proxy verifies the fragment when it loads
it and re-encrypts; the processor verifies the capsule fragment against the capsule, the TA's
verifying key, PK_f and its own PK_j before it decrypts.

The function's public part is the canonical encoding of {PK_f, the TA's verifying key}.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import umbral_pre as u

from agents.security import encoding
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import frame
from agents.security.tcfdl.pre import TO_PROCESSOR, FunctionKey, PartyKey, PreScheme, ReKey

#: umbral-pre raises it when a key or capsule fragment does not verify (absent from its stubs)
_VerificationError: type[Exception] = u.VerificationError  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _FunctionPublic:
    WIRE_NAME = "tcfdl.umbral.function.v1"
    delegating: bytes
    verifying: bytes


@dataclass(frozen=True)
class _FunctionSecret:
    WIRE_NAME = "tcfdl.umbral.function-secret.v1"
    delegating: bytes
    signing: bytes


@dataclass(frozen=True)
class _KFrag:
    WIRE_NAME = "tcfdl.umbral.kfrag.v1"
    kfrag: bytes
    verifying: bytes
    delegating: bytes
    receiving: bytes


@dataclass(frozen=True)
class _Capsule:
    WIRE_NAME = "tcfdl.umbral.capsule.v1"
    capsule: bytes
    ciphertext: bytes
    cfrag: bytes


def _bad(what: str) -> ProtocolError:
    return ProtocolError(ErrorCode.MALFORMED, f"umbral: {what} does not decode")


def _public(data: bytes) -> u.PublicKey:
    try:
        return u.PublicKey.from_compressed_bytes(data)
    except (ValueError, TypeError):
        raise _bad("public key") from None


def _function_public(data: bytes) -> tuple[u.PublicKey, u.PublicKey]:
    fp = encoding.decode_as(_FunctionPublic, data)
    return _public(fp.delegating), _public(fp.verifying)


def _parse_capsule(capsule: bytes) -> tuple[_Capsule, u.Capsule]:
    PreScheme.check_capsule(capsule)
    c = encoding.decode_as(_Capsule, capsule)
    try:
        return c, u.Capsule.from_bytes(c.capsule)
    except (ValueError, TypeError):
        raise _bad("capsule") from None


@lru_cache(maxsize=256)
def _verified_kfrag(material: bytes) -> u.VerifiedKeyFrag:
    """A proxy's key fragment, verified once against the TA's key, PK_f and PK_j (bounded
    cache: a proxy holds a few fragments and re-uses them for every task)."""
    k = encoding.decode_as(_KFrag, material)
    try:
        return u.KeyFrag.from_bytes(k.kfrag).verify(
            _public(k.verifying), _public(k.delegating), _public(k.receiving))
    except (ValueError, TypeError, _VerificationError):
        raise ProtocolError(ErrorCode.BAD_SIGNATURE,
                            "umbral key fragment does not verify under the TA's key") from None


class Umbral(PreScheme):
    """Umbral on secp256k1, threshold 1 of 1 (one re-encryption on a path: f -> j)."""

    name = "umbral"
    curve = "secp256k1"

    def function_key(self) -> FunctionKey:
        """TA: a delegating key pair for the function and a signing key for its key fragments."""
        sk, signer = u.SecretKey.random(), u.SecretKey.random()
        secret = _FunctionSecret(sk.to_be_bytes(), signer.to_be_bytes())
        public = _FunctionPublic(sk.public_key().to_compressed_bytes(),
                                 signer.public_key().to_compressed_bytes())
        return FunctionKey(self.name, encoding.encode(secret), encoding.encode(public))

    def _party(self) -> tuple[u.SecretKey, PartyKey]:
        sk = u.SecretKey.random()
        return sk, PartyKey(self.name, sk.to_be_bytes(), sk.public_key().to_compressed_bytes())

    def enroll_provider(self, fn: FunctionKey) -> tuple[PartyKey, ReKey | None]:
        """TA: a provider key pair; Umbral has no provider-side re-encryption (None)."""
        self.check(fn)
        return self._party()[1], None

    def enroll_processor(self, fn: FunctionKey) -> tuple[PartyKey, ReKey]:
        """TA: a processor key pair and a signed 1-of-1 key fragment f -> j for its proxy."""
        self.check(fn)
        secret = encoding.decode_as(_FunctionSecret, fn.secret)
        sk_f = u.SecretKey.from_be_bytes(secret.delegating)
        signer = u.Signer(u.SecretKey.from_be_bytes(secret.signing))
        sk_j, party = self._party()
        (kfrag,) = u.generate_kfrags(sk_f, sk_j.public_key(), signer, 1, 1, True, True)
        material = _KFrag(bytes(kfrag), signer.verifying_key().to_compressed_bytes(),
                          sk_f.public_key().to_compressed_bytes(), party.public)
        return party, ReKey(self.name, TO_PROCESSOR, encoding.encode(material))

    def encapsulate(self, key: bytes, provider: PartyKey, function_public: bytes) -> bytes:
        """Enc: Umbral-encrypt the AES key to PK_f."""
        self.check(provider)
        if len(key) != frame.AES_KEY_SIZE:
            raise ProtocolError(ErrorCode.MALFORMED, "the payload key must be 16 bytes")
        delegating, _ = _function_public(function_public)
        capsule, ciphertext = u.encrypt(delegating, key)
        return encoding.encode(_Capsule(bytes(capsule), ciphertext, b""))

    def reencrypt(self, rekey: ReKey, capsule: bytes) -> bytes:
        """ReEnc: verify the TA's key fragment, re-encrypt the capsule into a capsule fragment
        (the key's ciphertext passes through untouched)."""
        self.check(rekey)
        c, cap = _parse_capsule(capsule)
        if c.cfrag:
            raise ProtocolError(ErrorCode.WRONG_STEP, "umbral capsule was already re-encrypted")
        kfrag = _verified_kfrag(rekey.material)
        cfrag = u.reencrypt(cap, kfrag)
        return encoding.encode(_Capsule(c.capsule, c.ciphertext, bytes(cfrag)))

    def invariant(self, capsule: bytes) -> bytes:
        """The Umbral capsule and the key's ciphertext (re-encryption only adds a fragment)."""
        c, _ = _parse_capsule(capsule)
        return encoding.encode([c.capsule, c.ciphertext])

    def decapsulate(self, processor: PartyKey, function_public: bytes, capsule: bytes) -> bytes:
        """Dec: verify the capsule fragment, then decrypt the AES key with SK_j."""
        self.check(processor)
        delegating, verifying = _function_public(function_public)
        c, cap = _parse_capsule(capsule)
        if not c.cfrag:
            raise ProtocolError(ErrorCode.WRONG_STEP, "umbral capsule was not re-encrypted")
        try:
            sk_j = u.SecretKey.from_be_bytes(processor.secret)
            verified = u.CapsuleFrag.from_bytes(c.cfrag).verify(
                cap, verifying, delegating, sk_j.public_key())
            key = u.decrypt_reencrypted(sk_j, delegating, cap, [verified], c.ciphertext)
        except (ValueError, TypeError, _VerificationError):
            raise ProtocolError(ErrorCode.DECRYPT_FAILED,
                                "umbral capsule fragment does not verify or decrypt for this "
                                "processor") from None
        if key is None or len(key) != frame.AES_KEY_SIZE:
            raise ProtocolError(ErrorCode.DECRYPT_FAILED, "umbral key does not decrypt")
        return bytes(key)
