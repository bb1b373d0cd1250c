"""Canonical bytes, hashes and Ed25519 keys: what every signed ledger object is built from.

Every hash and signature in the ledger covers `canonical(tag, *fields)`: a domain-separation tag
and typed, length-prefixed fields, so two different objects never encode to the same bytes and a
signature over one kind of object can never be replayed as another kind.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HASH_LEN = 32
NONCE_LEN = 16
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64
ZERO_HASH = b"\x00" * HASH_LEN


def canonical_field(value: str | int | bytes) -> bytes:
    """One typed, length-prefixed field: the encoding of a tuple of fields is injective."""
    if isinstance(value, bool):  # bool is an int subclass; never silently accept it
        raise TypeError("booleans are not canonical fields")
    if isinstance(value, int):
        return b"i" + struct.pack(">q", value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return b"s" + struct.pack(">I", len(raw)) + raw
    if isinstance(value, bytes):
        return b"b" + struct.pack(">I", len(value)) + value
    raise TypeError(f"unsupported canonical field type {type(value).__name__}")


def canonical(tag: bytes, *fields: str | int | bytes) -> bytes:
    """Domain-separated canonical encoding used for every hash and signature in the ledger."""
    encoded = b"".join(canonical_field(f) for f in fields)
    return canonical_field(tag) + struct.pack(">I", len(fields)) + encoded


def sha256(data: bytes) -> bytes:
    """SHA-256 digest (32 bytes) of `data`."""
    return hashlib.sha256(data).digest()


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Raw 32-byte Ed25519 public key."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its raw 32 bytes (ValueError for another length)."""
    if len(raw) != PUBLIC_KEY_LEN:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_LEN} bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_signature(
    public_key: bytes | Ed25519PublicKey, signature: bytes, message: bytes
) -> bool:
    """True if `signature` is `public_key`'s Ed25519 signature of `message` (a raw key of the
    wrong length, like a bad signature, is False)."""
    try:
        key = load_public_key(public_key) if isinstance(public_key, bytes) else public_key
        key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def same_digest(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of hashes and tags."""
    return hmac.compare_digest(a, b)
