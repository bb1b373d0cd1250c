"""BloSM transactions (seed 001, section 4.1, Figure 3): container metadata signed by its
submitter.

A **transaction** is container metadata {source_ip, container_id, total_size, gpu_usage,
cpu_usage, type}, signed (Ed25519) by the submitting node over a canonical, length-prefixed
encoding that also binds the submitter id, a fresh 16-byte nonce and a timestamp (so a captured
transaction cannot be submitted twice: the validator refuses a known id or a stale timestamp).

Units (integers, so the canonical encoding is exact): total_size in bytes, cpu_usage in
millicores (1000 = one core), gpu_usage in milli-GPU (1000 = one whole GPU).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.ledger.errors import AdmissionRefused, InvalidMetadata
from agents.ledger.signing import (
    NONCE_LEN,
    PUBLIC_KEY_LEN,
    SIGNATURE_LEN,
    canonical,
    canonical_field,
    public_key_bytes,
    sha256,
    verify_signature,
)

MAX_TEXT = 256  # longest id / ip / type string accepted

_TAG_TX = b"edgeferry.ledger.v1.tx"


def check_text(name: str, value: str, *, allow_empty: bool = False) -> None:
    """Raise InvalidMetadata unless `value` is text of at most MAX_TEXT characters without
    control characters (and not empty unless `allow_empty`)."""
    if not isinstance(value, str):
        raise InvalidMetadata(f"{name} must be text")
    if not value and not allow_empty:
        raise InvalidMetadata(f"{name} must not be empty")
    if len(value) > MAX_TEXT:
        raise InvalidMetadata(f"{name} is longer than {MAX_TEXT} characters")
    if any(ord(c) < 0x20 for c in value):
        raise InvalidMetadata(f"{name} contains control characters")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMetadata(f"{name} must be an integer")
    if not 0 <= value < 2**63:
        raise InvalidMetadata(f"{name} must be between 0 and 2^63-1, got {value}")


@dataclass(frozen=True)
class ContainerMetadata:
    """One BloSM transaction payload (Figure 3 plus Algorithm 1's `type`)."""

    source_ip: str
    container_id: str
    total_size: int  # bytes
    gpu_usage: int  # milli-GPU, 1000 = one GPU
    cpu_usage: int  # millicores, 1000 = one core
    type: str  # application type, compared by Algorithm 2

    def validate(self) -> None:
        """Raise InvalidMetadata for a field outside the accepted ranges."""
        check_text("source_ip", self.source_ip)
        try:
            ipaddress.ip_address(self.source_ip)
        except ValueError as exc:
            raise InvalidMetadata(f"source_ip {self.source_ip!r} is not an IP address") from exc
        check_text("container_id", self.container_id)
        check_text("type", self.type)
        _check_count("total_size", self.total_size)
        _check_count("gpu_usage", self.gpu_usage)
        _check_count("cpu_usage", self.cpu_usage)

    def fields(self) -> tuple[str | int, ...]:
        """The fields in their canonical (signed) order."""
        return (
            self.source_ip,
            self.container_id,
            self.total_size,
            self.gpu_usage,
            self.cpu_usage,
            self.type,
        )


# -------------------------------------------------------------------------------- transactions


@dataclass(frozen=True)
class Transaction:
    """Container metadata signed by the node that submits it."""

    metadata: ContainerMetadata
    submitter_id: str
    submitter_key: bytes  # raw Ed25519 public key
    nonce: bytes  # 16 random bytes
    timestamp_ms: int
    signature: bytes

    def signing_bytes(self) -> bytes:
        """What the submitter signs: metadata, submitter id and key, nonce, timestamp."""
        return canonical(
            _TAG_TX,
            *self.metadata.fields(),
            self.submitter_id,
            self.submitter_key,
            self.nonce,
            self.timestamp_ms,
        )

    @property
    def tx_id(self) -> str:
        """Hex SHA-256 of the signed content (independent of the signature bytes)."""
        return sha256(self.signing_bytes()).hex()

    def leaf_bytes(self) -> bytes:
        """What the Merkle tree commits to: the signed content and the signature."""
        return self.signing_bytes() + canonical_field(self.signature)

    def check(self) -> None:
        """Raise InvalidMetadata / AdmissionRefused unless well formed and correctly signed."""
        self.metadata.validate()
        check_text("submitter_id", self.submitter_id)
        if len(self.submitter_key) != PUBLIC_KEY_LEN:
            raise AdmissionRefused("submitter key is not a raw Ed25519 public key")
        if len(self.nonce) != NONCE_LEN:
            raise AdmissionRefused(f"transaction nonce must be {NONCE_LEN} bytes")
        if len(self.signature) != SIGNATURE_LEN:
            raise AdmissionRefused("transaction signature has the wrong length")
        if not verify_signature(self.submitter_key, self.signature, self.signing_bytes()):
            raise AdmissionRefused(f"transaction {self.tx_id[:16]} signature does not verify")


def sign_transaction(
    metadata: ContainerMetadata,
    submitter_id: str,
    key: Ed25519PrivateKey,
    now_ms: int,
    nonce: bytes | None = None,
) -> Transaction:
    """Build and sign a transaction (Algorithm 1, lines 9-15: meta + source node identity)."""
    metadata.validate()
    unsigned = Transaction(
        metadata=metadata,
        submitter_id=submitter_id,
        submitter_key=public_key_bytes(key),
        nonce=nonce if nonce is not None else os.urandom(NONCE_LEN),
        timestamp_ms=now_ms,
        signature=b"",
    )
    return replace(unsigned, signature=key.sign(unsigned.signing_bytes()))
