"""Lab PKI: one EC P-256 certificate authority per lab and the agents' TLS certificates.

    ca = LabCA.create(Path(".edgeferry/pki"))                # refuses to overwrite an existing CA
    ca = LabCA.load(Path(".edgeferry/pki"))
    issued = ca.issue("ras.ctl01", out_dir, dns_names=["ras", "ctl01"], ip_addresses=["10.10.0.11"])
    issued.cert_path, issued.key_path, issued.ca_cert_path

Files: ``ca.crt`` (0644) and ``ca.key`` (0600) in the CA directory; ``<name>.crt`` (0644) and
``<name>.key`` (0600) for issued certificates. Keys are unencrypted PKCS#8 PEM because the agents'
gRPC servers read them unattended; protect them with file modes and directory permissions.

P-256 with ECDSA-SHA256 is used throughout: gRPC's BoringSSL supports it for both server and
client authentication. A certificate's subject CN is the principal's identity (what
``agents.common.client.peer_identity`` returns): ``<role>.<host>`` for agents and hosts
(``host.<hostname>``), ``controller`` for the controller's client, parsed into a role by
``agents.common.authz``; any other CN is allowed nothing but health checks. SANs carry the
DNS names and IP addresses it is reached at. Server certificates get the serverAuth EKU,
client certificates clientAuth; an agent that both serves and calls other agents gets both
(the default).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeferry.errors import ConfigError, OperationFailed

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
KEY_MODE = 0o600
CERT_MODE = 0o644
ORGANIZATION = "edgeferry lab"
_CLOCK_SKEW = dt.timedelta(minutes=5)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class IssuedCert:
    """A certificate issued by the lab CA and where its files are."""

    name: str
    cert_path: Path
    key_path: Path
    ca_cert_path: Path
    certificate: x509.Certificate


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` via a temp file created with ``mode`` (never briefly wider)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"certificate name {name!r} is invalid: use letters, digits, '.', '_' or '-' "
            "(at most 63 characters)"
        )


class LabCA:
    """A lab certificate authority stored in a directory."""

    def __init__(
        self, directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
    ) -> None:
        self.directory = Path(directory)
        self.cert = cert
        self.key = key

    @property
    def cert_path(self) -> Path:
        return self.directory / CA_CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.directory / CA_KEY_FILE

    @property
    def cert_pem(self) -> bytes:
        return _cert_pem(self.cert)

    # -- create / load ------------------------------------------------------------------------
    @classmethod
    def exists(cls, directory: Path) -> bool:
        return (directory / CA_CERT_FILE).exists() or (directory / CA_KEY_FILE).exists()

    @classmethod
    def create(
        cls,
        directory: Path,
        common_name: str = "edgeferry lab CA",
        *,
        valid_days: int = 365,
        overwrite: bool = False,
    ) -> LabCA:
        """Make a new CA key and self-signed certificate in ``directory``.

        Refuses (ConfigError) when a CA is already there unless ``overwrite`` is true: replacing
        a CA invalidates every certificate deployed in the lab.
        """
        directory = Path(directory)
        if cls.exists(directory) and not overwrite:
            raise ConfigError(
                f"a CA already exists in {directory}; reuse it, or pass overwrite to replace it "
                "(every issued certificate becomes invalid)"
            )
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        # key first: a directory with a certificate but no key is not a usable CA
        _write_atomic(directory / CA_KEY_FILE, _key_pem(key), KEY_MODE)
        _write_atomic(directory / CA_CERT_FILE, _cert_pem(cert), CERT_MODE)
        return cls(directory, cert, key)

    @classmethod
    def load(cls, directory: Path) -> LabCA:
        """Load ``ca.crt`` and ``ca.key`` from ``directory`` and check that they belong together."""
        directory = Path(directory)
        try:
            cert = x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())
            key_data = (directory / CA_KEY_FILE).read_bytes()
        except FileNotFoundError as err:
            raise ConfigError(
                f"no lab CA in {directory} ({Path(err.filename).name} missing); create one first"
            ) from None
        except ValueError:
            raise ConfigError(f"{directory / CA_CERT_FILE} is not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(key_data, password=None)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{directory / CA_KEY_FILE} is not an unencrypted PEM private key"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{directory / CA_KEY_FILE} is not an EC private key")
        if _spki(key.public_key()) != _spki(cert.public_key()):
            raise ConfigError(f"{directory}: ca.key does not match ca.crt")
        mode = (directory / CA_KEY_FILE).stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(f"{directory / CA_KEY_FILE} has mode {mode:04o}; run chmod 600 on it")
        return cls(directory, cert, key)

    @classmethod
    def load_or_create(cls, directory: Path, common_name: str = "edgeferry lab CA") -> LabCA:
        return cls.load(directory) if cls.exists(directory) else cls.create(directory, common_name)

    # -- issue --------------------------------------------------------------------------------
    def issue(
        self,
        name: str,
        out_dir: Path,
        *,
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[str] = (),
        server: bool = True,
        client: bool = True,
        valid_days: int = 30,
    ) -> IssuedCert:
        """Issue ``<name>.crt``/``<name>.key`` into ``out_dir`` (overwriting that pair).

        The subject CN is ``name``; SANs are ``dns_names`` (``name`` itself is added when it is
        a DNS label) plus ``ip_addresses``. ``server``/``client`` select the EKUs. A copy of
        the CA certificate is written as ``ca.crt`` in ``out_dir`` when it is another folder.
        """
        _check_name(name)
        if not (server or client):
            raise ConfigError(f"certificate {name}: choose server, client or both")
        dns = list(dict.fromkeys([*dns_names, *([name] if "." not in name else [])]))
        try:
            ips = [ipaddress.ip_address(ip) for ip in ip_addresses]
        except ValueError as err:
            raise ConfigError(f"certificate {name}: {err}") from None
        if server and not (dns or ips):
            raise ConfigError(f"server certificate {name} needs at least one DNS name or IP")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._build(name, key, dns, ips, server=server, client=client, days=valid_days)
        out_dir = Path(out_dir)
        out_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        key_path, cert_path = out_dir / f"{name}.key", out_dir / f"{name}.crt"
        _write_atomic(key_path, _key_pem(key), KEY_MODE)
        _write_atomic(cert_path, _cert_pem(cert), CERT_MODE)
        ca_copy = out_dir / CA_CERT_FILE
        if ca_copy.resolve() != self.cert_path.resolve():
            _write_atomic(ca_copy, self.cert_pem, CERT_MODE)
        return IssuedCert(name, cert_path, key_path, ca_copy, cert)

    def _build(
        self,
        name: str,
        key: ec.EllipticCurvePrivateKey,
        dns: list[str],
        ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
        *,
        server: bool,
        client: bool,
        days: int,
    ) -> x509.Certificate:
        now = _now()
        not_after = min(now + dt.timedelta(days=days), self.cert.not_valid_after_utc)
        ekus = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [
            ExtendedKeyUsageOID.CLIENT_AUTH
        ] * client
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ip) for ip in ips]
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                        x509.NameAttribute(NameOID.COMMON_NAME, name),
                    ]
                )
            )
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_server(
        self,
        name: str,
        out_dir: Path,
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[str] = (),
    ) -> IssuedCert:
        """A certificate for an agent: serverAuth + clientAuth (agents also call each other)."""
        return self.issue(name, out_dir, dns_names=dns_names, ip_addresses=ip_addresses)

    def issue_client(self, name: str, out_dir: Path) -> IssuedCert:
        """A clientAuth-only certificate (controller, CLI, test clients)."""
        return self.issue(name, out_dir, server=False, client=True)

    def verify(self, cert: x509.Certificate) -> None:
        """Raise OperationFailed unless ``cert`` was signed by this CA and is valid now."""
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            raise OperationFailed(f"{_cn(cert)} was not issued by this lab CA") from None
        now = _now()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise OperationFailed(f"certificate {_cn(cert)} is not valid now")


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else cert.subject.rfc4514_string()
    return value if isinstance(value, str) else value.decode()


def load_certificate(path: Path) -> x509.Certificate:
    """Read a PEM certificate file."""
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"certificate file {path} does not exist") from None
    except ValueError:
        raise ConfigError(f"{path} is not a PEM certificate") from None
