"""Loading TLS material for gRPC mutual TLS (server and client side).

Private keys must be readable by their owner only (mode 0600 or stricter): an agent refuses
to start with a key that group or others can read, as ssh does.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

import grpc

from agents.common.config import TLSConfig
from agents.common.errors import AgentStartError

PemSource = Path | str | bytes


@dataclass(frozen=True)
class TLSMaterial:
    """PEM bytes of the CA bundle, the own certificate (chain) and the own private key."""

    ca_cert: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_config(cls, tls: TLSConfig) -> TLSMaterial:
        return cls.load(tls.ca_cert, tls.cert, tls.key)

    @classmethod
    def load(cls, ca_cert: PemSource, cert: PemSource, key: PemSource) -> TLSMaterial:
        """Read the three PEM inputs (paths or bytes); the key file must be 0600 or stricter."""
        return cls(
            ca_cert=_read_pem(ca_cert, "CA certificate", b"CERTIFICATE"),
            cert=_read_pem(cert, "certificate", b"CERTIFICATE"),
            key=_read_pem(key, "private key", b"PRIVATE KEY", private=True),
        )


def _read_pem(source: PemSource, what: str, marker: bytes, *, private: bool = False) -> bytes:
    if isinstance(source, bytes):
        data, where = source, f"the {what} bytes"
    else:
        path = Path(source)
        where = str(path)
        try:
            if private:
                check_private_key_mode(path)
            data = path.read_bytes()
        except FileNotFoundError:
            raise AgentStartError(f"{what} file {path} does not exist") from None
        except PermissionError:
            raise AgentStartError(f"cannot read {what} file {path}: permission denied") from None
    if b"-----BEGIN " not in data or marker not in data:
        raise AgentStartError(f"{where} is not a PEM {what}")
    return data


def check_private_key_mode(path: Path) -> None:
    """Raise AgentStartError when ``path`` is accessible by group or others."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AgentStartError(
            f"private key {path} has mode {mode:04o}; run `chmod 600 {path}` (group/others must "
            "have no access)"
        )


def server_credentials(material: TLSMaterial) -> grpc.ServerCredentials:
    """Server credentials that *require* a client certificate signed by the lab CA."""
    return grpc.ssl_server_credentials(
        [(material.key, material.cert)],
        root_certificates=material.ca_cert,
        require_client_auth=True,
    )


def channel_credentials(material: TLSMaterial) -> grpc.ChannelCredentials:
    """Client credentials: verify the server against the lab CA and present our certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca_cert,
        private_key=material.key,
        certificate_chain=material.cert,
    )


def certificate_cn(path: Path) -> str:
    """The subject CN of the PEM certificate at `path` (an agent's own identity)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as err:
        raise AgentStartError(f"certificate {path}: {err}") from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise AgentStartError(f"certificate {path} has no CN")
    return str(names[0].value)
