"""EMULATED attestation of a TCFDL TEE proxy (no SGX / TrustZone on these machines).

A real enclave would produce a hardware-signed quote of its code identity. Here the proxy is an
ordinary process under its own Unix user, so:

* the proxy's *measurement* is SHA-256 over its code files (`proxy_code_files`: the proxy's
  package and the TCFDL crypto it runs) and its measured configuration (canonical bytes);
* the service manager (trusted authority) compares it with its approved reference values and,
  when it matches, signs a `Record` {proxy, measurement, issued, expires} with its lab-CA
  certificate key;
* a peer (client, worker, another proxy's issuer) verifies before it sends: the certificate
  chains to the lab CA and names a ``tcfdl-manager.<host>``, the signature verifies, the record
  names the expected proxy, has not expired, and carries the measurement the peer expects.

This proves only what the proxy reported about itself to a manager reachable over mTLS; it is not
isolation from the host's root. The record's format lets a real quote replace `measurement`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from agents.security import encoding
from agents.security.certsign import check_signature, check_signer
from agents.security.errors import ErrorCode, ProtocolError

SIGNER_ROLE = "tcfdl-manager"
MAX_RECORD_BYTES = 2048
_AGENTS = Path(__file__).resolve().parents[2]


def proxy_code_files(root: Path = _AGENTS) -> list[Path]:
    """The files a proxy's measurement covers: agents/tcfdl_proxy/*.py and
    agents/security/tcfdl/*.py under `root` (the `agents` folder), sorted."""
    files = [*(root / "tcfdl_proxy").glob("*.py"), *(root / "security" / "tcfdl").glob("*.py")]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def measure(files: Iterable[Path], config: Mapping[str, Any], root: Path = _AGENTS) -> bytes:
    """SHA-256 over (relative path, SHA-256 of content) of each file, then the canonical
    encoding of `config` (the proxy's measured settings)."""
    h = hashlib.sha256(b"tcfdl-proxy-measurement-v1\0")
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(encoding.encode(dict(config)))
    return h.digest()


@dataclass(frozen=True)
class Record:
    """What the manager vouches for: `proxy` reported `measurement`, valid until `expires_ns`."""

    WIRE_NAME: ClassVar[str] = "tcfdl-attestation-v1"

    proxy: str
    measurement: bytes
    issued_ns: int
    expires_ns: int


@dataclass(frozen=True)
class SignedRecord:
    """A record's canonical bytes, the manager's signature and its certificate (PEM)."""

    record: bytes
    signature: bytes
    certificate: bytes


def sign(key: PrivateKeyTypes, certificate_pem: bytes, record: Record) -> SignedRecord:
    """The manager: sign `record` with its certificate key (EC P-256 or Ed25519)."""
    payload = encoding.encode(record)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, Ed25519PrivateKey):
        signature = key.sign(payload)
    else:
        raise ValueError(f"attestation signing needs an EC or Ed25519 key, not "
                         f"{type(key).__name__}")
    return SignedRecord(payload, signature, certificate_pem)


def _refuse(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, f"proxy attestation refused: {message}")


def _signer(pem: bytes, ca: x509.Certificate, now_ns: int) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise _refuse(ErrorCode.UNKNOWN_PRINCIPAL,
                      "the manager certificate is not issued by the lab CA") from None
    return check_signer(cert, now_ns, role=SIGNER_ROLE, label="manager", refuse=_refuse)


def _check_signature(cert: x509.Certificate, payload: bytes, signature: bytes) -> None:
    check_signature(cert, payload, signature, label="manager", refuse=_refuse)


def verify(signed: SignedRecord, ca: x509.Certificate, *, proxy: str,
           expected: Iterable[bytes], now_ns: int) -> Record:
    """A peer's check before it sends to `proxy`: signer, signature, proxy name, expiry and a
    measurement among `expected`; ProtocolError says which failed."""
    if len(signed.record) > MAX_RECORD_BYTES:
        raise _refuse(ErrorCode.LIMIT_REACHED, "record too large")
    _check_signature(_signer(signed.certificate, ca, now_ns), signed.record, signed.signature)
    record = encoding.decode_as(Record, signed.record)
    if record.proxy != proxy:
        raise _refuse(ErrorCode.WRONG_RECIPIENT, f"record is for {record.proxy!r}, not {proxy!r}")
    if not record.issued_ns <= now_ns + 5_000_000_000 or now_ns > record.expires_ns:
        raise _refuse(ErrorCode.EXPIRED, f"record of {proxy!r} is not valid now")
    if record.measurement not in set(expected):
        raise _refuse(ErrorCode.KEY_MISMATCH,
                      f"{proxy!r} runs code or configuration with measurement "
                      f"{record.measurement.hex()[:16]}..., not an approved one")
    return record


#: the proxy configuration the approved reference covers (the proxy's `measured` settings)
DEFAULT_PROXY_CONFIG: Mapping[str, Any] = {"debug_dump": False, "replay_window_ms": 60_000}


def reference_measurement(config: Mapping[str, Any] | None = None) -> bytes:
    """The measurement of this checkout's proxy code with `config` (default: the approved
    `DEFAULT_PROXY_CONFIG`): what the manager approves and a peer expects by default."""
    return measure(proxy_code_files(), DEFAULT_PROXY_CONFIG if config is None else config)
