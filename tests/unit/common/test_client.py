"""peer_identity / require_peer against a fake ServicerContext; TLS material loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from agents.common.client import (
    peer_certificate,
    peer_identity,
    peer_sans,
    plaintext_loopback_channel,
    require_peer,
    secure_channel,
    secure_channel_from_config,
)
from agents.common.errors import AgentStartError, NoPeerIdentity
from agents.common.tls import TLSMaterial
from tests.conftest import LabPKI


class Aborted(Exception):
    pass


class FakeContext:
    """Only what the helpers use: auth_context() and abort()."""

    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self._auth = auth
        self.aborted: tuple[Any, str] | None = None

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted(details)


def ssl_ctx(cn: str | None = "smf", sans: tuple[str, ...] = ()) -> Any:
    auth = {"transport_security_type": [b"ssl"], "x509_subject_alternative_name": []}
    if cn is not None:
        auth["x509_common_name"] = [cn.encode()]
    auth["x509_subject_alternative_name"] = [s.encode() for s in sans]
    return FakeContext(auth)


def test_identity_is_common_name_then_first_san() -> None:
    assert peer_identity(ssl_ctx("smf", ("smf.lab",))) == "smf"
    assert peer_identity(ssl_ctx(None, ("edge1", "10.0.0.1"))) == "edge1"
    assert peer_sans(ssl_ctx("smf", ("edge1", "10.0.0.1"))) == ["edge1", "10.0.0.1"]


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"transport_security_type": [b"insecure"], "x509_common_name": [b"smf"]},
        {"transport_security_type": [b"ssl"]},
    ],
)
def test_no_identity_without_verified_certificate(auth: dict[str, list[bytes]]) -> None:
    with pytest.raises(NoPeerIdentity):
        peer_identity(FakeContext(auth))  # type: ignore[arg-type]


def test_require_peer_allows_listed_identity_only() -> None:
    assert require_peer(ssl_ctx("smf"), {"smf", "controller"}) == "smf"
    ctx = ssl_ctx("intruder")
    with pytest.raises(Aborted):
        require_peer(ctx, {"smf"})
    assert ctx.aborted[0] == grpc.StatusCode.PERMISSION_DENIED
    anon = FakeContext({})
    with pytest.raises(Aborted):
        require_peer(anon, {"smf"})  # type: ignore[arg-type]
    assert anon.aborted is not None and anon.aborted[0] == grpc.StatusCode.UNAUTHENTICATED


def test_peer_certificate_parses_pem(lab_pki: LabPKI) -> None:
    pem = lab_pki.client.cert_path.read_bytes()
    ctx = FakeContext({"x509_pem_cert": [pem]})
    cert = peer_certificate(ctx)  # type: ignore[arg-type]
    assert cert is not None and cert.serial_number == lab_pki.client.certificate.serial_number
    assert peer_certificate(FakeContext({})) is None  # type: ignore[arg-type]


def test_tls_material_checks_files(lab_pki: LabPKI, tmp_path: Path) -> None:
    good = TLSMaterial.load(lab_pki.ca.cert_path, lab_pki.client.cert_path, lab_pki.client.key_path)
    assert b"PRIVATE KEY" in good.key
    with pytest.raises(AgentStartError, match="does not exist"):
        TLSMaterial.load(tmp_path / "nope.crt", lab_pki.client.cert_path, lab_pki.client.key_path)
    with pytest.raises(AgentStartError, match="not a PEM certificate"):
        TLSMaterial.load(lab_pki.ca.cert_path, lab_pki.client.key_path, lab_pki.client.key_path)
    loose = tmp_path / "loose.key"
    loose.write_bytes(lab_pki.client.key_path.read_bytes())
    loose.chmod(0o640)
    with pytest.raises(AgentStartError, match="mode 0640"):
        TLSMaterial.load(lab_pki.ca.cert_path, lab_pki.client.cert_path, loose)
    # bytes are accepted as-is (no file mode to check)
    TLSMaterial.load(good.ca_cert, good.cert, good.key)


def test_channels(lab_pki: LabPKI) -> None:
    ch = secure_channel(
        "127.0.0.1:1",
        lab_pki.ca.cert_path,
        lab_pki.client.cert_path,
        lab_pki.client.key_path,
        server_name="localhost",
    )
    ch.close()
    secure_channel_from_config(lab_pki.tls_config(), "localhost:1").close()
    plaintext_loopback_channel("[::1]:1").close()
    with pytest.raises(AgentStartError, match="non-loopback"):
        plaintext_loopback_channel("10.0.0.1:50051")
