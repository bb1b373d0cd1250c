"""Execution grants of the secure SSO strategy (seed 004 section 7, issue 14).

The composer, having authorized a request against chi and the routing Pi, gives each edge a
grant for exactly one execution: this node, this service, this transition of this request,
over input bytes with this sha256 digest, valid from `issued_at_ns` to `expires_at_ns`, with a
random single-use `nonce`. The grant's canonical bytes (agents.security.encoding) are signed
with the composer's lab-CA certificate key (ECDSA P-256 as the pki role issues, or Ed25519),
and the certificate travels with the grant, so an edge needs no extra key distribution: it
checks the certificate was issued by its lab CA to a ``composer.<host>`` identity, the
signature, the binding and the expiry, and remembers the nonce until the grant expires
(`ReplayTable`, bounded) so the same grant never runs twice.

No grpc import: the blockcache and composer agents call this from their servicers.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import ClassVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from agents.security import encoding
from agents.security.certsign import check_signature, check_signer
from agents.security.errors import ErrorCode, ProtocolError

#: Largest canonical grant accepted (bytes) and longest validity (ns).
MAX_GRANT_BYTES = 4096
MAX_TTL_NS = 600 * 1_000_000_000
#: Accepted clock skew between composer and edge for `issued_at_ns` (ns).
MAX_SKEW_NS = 30 * 1_000_000_000
SIGNER_ROLE = "composer"
#: Signer certificates an edge remembers as CA-verified.
MAX_KNOWN_SIGNERS = 64


@dataclass(frozen=True)
class ExecutionGrant:
    """What one grant permits: one execution of `service` on `node` over `input_digest`."""

    WIRE_NAME: ClassVar[str] = "sso-execution-grant-v1"

    node: str
    service: str
    input_digest: str
    request_id: str
    transition: str
    issued_at_ns: int
    expires_at_ns: int
    nonce: bytes


@dataclass(frozen=True)
class SignedGrant:
    """A grant's canonical bytes, the signature over them and the signer's certificate PEM."""

    payload: bytes
    signature: bytes
    certificate: bytes


def input_digest(data: bytes) -> str:
    """sha256 hex of execution input bytes (what a grant binds)."""
    return hashlib.sha256(data).hexdigest()


def _sign(key: PrivateKeyTypes, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, Ed25519PrivateKey):
        return key.sign(data)
    raise ValueError(f"grant signing needs an EC or Ed25519 key, not {type(key).__name__}")


def issue_grant(key: PrivateKeyTypes, certificate_pem: bytes, *, node: str, service: str,
                data_digest: str, request_id: str, transition: str, ttl_s: float,
                now_ns: int | None = None) -> tuple[ExecutionGrant, SignedGrant]:
    """Issue and sign a grant valid for `ttl_s` seconds from now (a fresh 16-byte nonce)."""
    now = time.time_ns() if now_ns is None else now_ns
    grant = ExecutionGrant(node=node, service=service, input_digest=data_digest,
                           request_id=request_id, transition=transition, issued_at_ns=now,
                           expires_at_ns=now + int(ttl_s * 1e9), nonce=secrets.token_bytes(16))
    payload = encoding.encode(grant)
    return grant, SignedGrant(payload, _sign(key, payload), certificate_pem)


def _refuse(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, f"execution grant refused: {message}")


def _issued_by(pem: bytes, ca: x509.Certificate) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise _refuse(ErrorCode.MALFORMED, "the signer certificate is not PEM") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise _refuse(ErrorCode.UNKNOWN_PRINCIPAL,
                      "the signer certificate is not issued by the lab CA") from None
    return cert


def _check_certificate(cert: x509.Certificate, now_ns: int) -> x509.Certificate:
    return check_signer(cert, now_ns, role=SIGNER_ROLE, label="signer", refuse=_refuse)


def _check_signature(cert: x509.Certificate, payload: bytes, signature: bytes) -> None:
    check_signature(cert, payload, signature, label="signer", refuse=_refuse)


class ReplayTable:
    """Nonces of grants already used, each kept until its grant expires; at most `capacity`
    live entries (a new grant beyond that is refused LIMIT_REACHED, never an old one
    forgotten early)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._seen: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def consume(self, nonce: bytes, expires_at_ns: int, now_ns: int) -> None:
        """Record `nonce` as used; raises REPLAY when it was used before."""
        with self._lock:
            if nonce in self._seen:
                raise _refuse(ErrorCode.REPLAY, "this grant was already used")
            if len(self._seen) >= self.capacity:
                self._seen = {n: e for n, e in self._seen.items() if e >= now_ns}
            if len(self._seen) >= self.capacity:
                raise _refuse(ErrorCode.LIMIT_REACHED, "too many live grants; retry later")
            self._seen[nonce] = expires_at_ns


@dataclass
class GrantVerifier:
    """An edge's check of grants: its own node name, the lab CA and a replay table.

    Certificates found issued by the CA are remembered (at most `MAX_KNOWN_SIGNERS`, by their
    PEM bytes) so the CA signature is checked once per signer; validity dates and the signer's
    role are checked on every grant."""

    node: str
    ca: x509.Certificate
    replay: ReplayTable
    _known: dict[bytes, x509.Certificate] = field(default_factory=dict, repr=False)

    def _signer(self, pem: bytes) -> x509.Certificate:
        cert = self._known.get(pem)
        if cert is None:
            cert = _issued_by(pem, self.ca)
            if len(self._known) >= MAX_KNOWN_SIGNERS:
                self._known.clear()
            self._known[pem] = cert
        return cert

    def verify(self, signed: SignedGrant, *, service: str, data: bytes,
               now_ns: int | None = None) -> ExecutionGrant:
        """The grant if it permits executing `service` over `data` on this node now (and
        marks it used); raises ProtocolError naming what is wrong otherwise."""
        now = time.time_ns() if now_ns is None else now_ns
        if len(signed.payload) > MAX_GRANT_BYTES:
            raise _refuse(ErrorCode.LIMIT_REACHED, f"grant over {MAX_GRANT_BYTES} bytes")
        cert = _check_certificate(self._signer(signed.certificate), now)
        _check_signature(cert, signed.payload, signed.signature)
        grant = encoding.decode_as(ExecutionGrant, signed.payload)
        if grant.node != self.node:
            raise _refuse(ErrorCode.WRONG_RECIPIENT,
                          f"grant is for node {grant.node!r}, this is {self.node!r}")
        if grant.service != service:
            raise _refuse(ErrorCode.NOT_AUTHORISED,
                          f"grant is for service {grant.service!r}, not {service!r}")
        if grant.input_digest != input_digest(data):
            raise _refuse(ErrorCode.NOT_AUTHORISED, "grant is for other input bytes")
        if len(grant.nonce) != 16:
            raise _refuse(ErrorCode.MALFORMED, "grant nonce is not 16 bytes")
        if grant.expires_at_ns - grant.issued_at_ns > MAX_TTL_NS or (
                grant.expires_at_ns <= grant.issued_at_ns):
            raise _refuse(ErrorCode.MALFORMED, "grant validity window is out of bounds")
        if grant.issued_at_ns > now + MAX_SKEW_NS:
            raise _refuse(ErrorCode.EXPIRED, "grant is issued in the future")
        if now > grant.expires_at_ns:
            raise _refuse(ErrorCode.EXPIRED, "grant has expired")
        self.replay.consume(grant.nonce, grant.expires_at_ns, now)
        return grant
