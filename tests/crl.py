"""Certificate revocation lists for tests, signed by a test CA (edgeferry.pki.LabCA)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from edgeferry.pki import LabCA


def write_crl(ca: LabCA, serials: Iterable[int], path: Path) -> Path:
    """Write a PEM CRL listing `serials`, signed by `ca`."""
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.cert.subject)
               .last_update(now - dt.timedelta(minutes=1))
               .next_update(now + dt.timedelta(days=1)))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(now - dt.timedelta(minutes=1)).build())
    crl = builder.sign(ca.key, hashes.SHA256())
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path
