"""Records signed with the key of a lab-CA certificate of one role: the signer certificate's
validity and role, and the signature (ECDSA P-256/SHA-256 or Ed25519). Used by the composer's
execution grants (`agents.security.grant`) and the TCFDL manager's attestation records
(`agents.security.tcfdl.attestation`); each passes its own `refuse`, which prefixes its errors."""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from agents.security.errors import ErrorCode, ProtocolError

Refuse = Callable[[ErrorCode, str], ProtocolError]


def check_signer(cert: x509.Certificate, now_ns: int, *, role: str, label: str,
                 refuse: Refuse) -> x509.Certificate:
    """``cert`` is valid at ``now_ns`` and its CN is ``<role>.<host>`` (EXPIRED /
    NOT_AUTHORISED otherwise; ``label`` names the signer in the messages)."""
    now_s = now_ns / 1e9
    if not cert.not_valid_before_utc.timestamp() <= now_s <= cert.not_valid_after_utc.timestamp():
        raise refuse(ErrorCode.EXPIRED, f"the {label} certificate is not valid now")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(names[0].value) if names else ""
    if cn.partition(".")[0] != role or "." not in cn:
        raise refuse(ErrorCode.NOT_AUTHORISED, f"signer {cn!r} is not a {role}")
    return cert


def check_signature(cert: x509.Certificate, payload: bytes, signature: bytes, *, label: str,
                    refuse: Refuse) -> None:
    """``signature`` over ``payload`` verifies with ``cert``'s key (BAD_SIGNATURE otherwise)."""
    public = cert.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, Ed25519PublicKey):
            public.verify(signature, payload)
        else:
            raise refuse(ErrorCode.BAD_SIGNATURE, f"unsupported {label} key type")
    except InvalidSignature:
        raise refuse(ErrorCode.BAD_SIGNATURE, "the signature does not verify") from None
