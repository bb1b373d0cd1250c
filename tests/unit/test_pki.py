"""edgeferry.pki: lab CA creation/loading, issued certificates, file modes."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeferry.errors import ConfigError, OperationFailed
from edgeferry.pki import LabCA, load_certificate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_writes_private_key_and_ca_certificate(tmp_path: Path) -> None:
    ca = LabCA.create(tmp_path / "ca", "test CA")
    assert mode(ca.key_path) == 0o600 and mode(ca.cert_path) == 0o644
    assert mode(ca.directory) == 0o700
    cert = load_certificate(ca.cert_path)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test CA"
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert not list(ca.directory.glob(".*tmp*"))


def test_create_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    first = LabCA.create(tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        LabCA.create(tmp_path)
    assert LabCA.load(tmp_path).cert == first.cert
    second = LabCA.create(tmp_path, overwrite=True)
    assert second.cert != first.cert
    assert LabCA.load_or_create(tmp_path).cert == second.cert


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no lab CA"):
        LabCA.load(tmp_path)
    ca = LabCA.create(tmp_path / "a")
    other = LabCA.create(tmp_path / "b")
    (ca.directory / "ca.key").write_bytes(other.key_path.read_bytes())
    with pytest.raises(ConfigError, match="does not match"):
        LabCA.load(ca.directory)
    (other.directory / "ca.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        LabCA.load(other.directory)


def test_issue_server_certificate_has_sans_and_ekus(tmp_path: Path) -> None:
    ca = LabCA.create(tmp_path / "ca")
    issued = ca.issue_server("ras", tmp_path / "out", ["edge1.lab"], ["10.10.0.11", "::1"])
    assert mode(issued.key_path) == 0o600 and mode(issued.cert_path) == 0o644
    assert issued.ca_cert_path.read_bytes() == ca.cert_path.read_bytes()
    cert = load_certificate(issued.cert_path)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ras"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["edge1.lab", "ras"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.10.0.11"),
        ipaddress.ip_address("::1"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc <= ca.cert.not_valid_after_utc
    ca.verify(cert)


def test_issue_client_certificate(tmp_path: Path) -> None:
    ca = LabCA.create(tmp_path / "ca")
    cert = ca.issue_client("controller", tmp_path / "out").certificate
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_issue_rejects_bad_input(tmp_path: Path) -> None:
    ca = LabCA.create(tmp_path / "ca")
    with pytest.raises(ConfigError, match="invalid"):
        ca.issue("../evil", tmp_path)
    with pytest.raises(ConfigError, match=r"10\.0\.0\.300"):
        ca.issue("ras", tmp_path, ip_addresses=["10.0.0.300"])
    with pytest.raises(ConfigError, match="server, client or both"):
        ca.issue("ras", tmp_path, server=False, client=False)


def test_verify_rejects_foreign_certificate(tmp_path: Path) -> None:
    ca = LabCA.create(tmp_path / "ca")
    foreign = LabCA.create(tmp_path / "foreign")
    cert = foreign.issue_client("controller", tmp_path / "f").certificate
    with pytest.raises(OperationFailed, match="not issued by this lab CA"):
        ca.verify(cert)
