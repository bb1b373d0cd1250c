"""The NMS transport pieces: TLS contexts, what the client accepts as the NMS, server limits."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from agents.workloads.nms.auth import AuthenticationFailed, SharedKeyAuth
from agents.workloads.nms.client import NmsClient, static_resolver
from agents.workloads.nms.server import BlockStore, Limits, NmsServer
from agents.workloads.nms.tls import SERVER_NAME, ClientTls, server_context
from tests.nms_tls import NmsTls, issue_nms_cert

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def tls(lab_pki, tmp_path_factory: pytest.TempPathFactory) -> NmsTls:  # type: ignore[no-untyped-def]
    return issue_nms_cert(lab_pki.ca, tmp_path_factory.mktemp("nms-tls"))


def serve(tmp_path: Path, ctx: ssl.SSLContext, limits: Limits | None = None) -> NmsServer:
    return NmsServer(BlockStore(tmp_path / "data", 64), SharedKeyAuth(KEY, "server"), ctx,
                     "127.0.0.1", 0, limits).start()


@pytest.fixture
def server(tmp_path: Path, tls: NmsTls) -> Iterator[NmsServer]:
    srv = serve(tmp_path, tls.server())
    yield srv
    srv.stop(0.2)


def ping(port: int, client_tls: ClientTls, retry_deadline: float = 5.0) -> float:
    """Seconds one ping took (connect + TLS + NMS handshake + PING)."""
    started = time.monotonic()
    with NmsClient(static_resolver("127.0.0.1", port), SharedKeyAuth(KEY, "alice"), client_tls,
                   retry_deadline=retry_deadline) as c:
        c.ping()
        assert c._sock is not None and c._sock.version() == "TLSv1.3"  # type: ignore[attr-defined]
    return time.monotonic() - started


def test_the_nms_certificate_verifies_by_name_at_any_address(server: NmsServer,
                                                             tls: NmsTls) -> None:
    # the certificate names the service, not a host: 127.0.0.1 is in no SAN of it
    sans = tls.issued.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert [str(n.value) for n in sans] == [SERVER_NAME]
    assert ping(server.port, tls.client()) < 5.0


@pytest.mark.parametrize("who", ["agent certificate (no NMS name)", "foreign CA", "other name"])
def test_the_client_refuses_a_server_that_is_not_the_nms_at_once(tmp_path: Path, tls: NmsTls,
                                                                  lab_pki, who: str  # type: ignore[no-untyped-def]
                                                                  ) -> None:
    client_tls = tls.client()
    if who == "agent certificate (no NMS name)":  # a lab cert, serverAuth, for localhost only
        ctx = server_context(lab_pki.server.cert_path, lab_pki.server.key_path)
    elif who == "foreign CA":  # the NMS name, but not from the lab CA
        foreign = issue_nms_cert(lab_pki.foreign_ca, tmp_path / "foreign")
        ctx = foreign.server()
    else:
        ctx = tls.server()
        client_tls = tls.client("nms.other.internal")
    srv = serve(tmp_path, ctx)
    try:
        started = time.monotonic()
        with pytest.raises(AuthenticationFailed, match="certificate does not verify"):
            ping(srv.port, client_tls, retry_deadline=30.0)
        assert time.monotonic() - started < 2.0  # failed closed, not retried for 30 s
    finally:
        srv.stop(0.2)


def test_tls_1_2_is_refused(server: NmsServer, tls: NmsTls) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(tls.ca_cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw, server_hostname=SERVER_NAME)
    # the client sees the alert before the server's loop has counted the failure
    deadline = time.monotonic() + 5
    while server.counters["handshake_failures"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.counters["handshake_failures"] == 1


def test_the_server_key_must_be_private(tmp_path: Path, tls: NmsTls) -> None:
    key = tmp_path / "nms-tls.key"
    key.write_bytes(tls.issued.key_path.read_bytes())
    key.chmod(0o640)
    with pytest.raises(PermissionError, match="chmod 600"):
        server_context(tls.issued.cert_path, key)
    key.chmod(0o400)
    assert server_context(tls.issued.cert_path, key).minimum_version is ssl.TLSVersion.TLSv1_3


def test_the_client_trusts_the_lab_ca_only(tls: NmsTls) -> None:
    ctx = tls.client().context
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
    trusted = [dict(x[0] for x in c["subject"])["commonName"] for c in ctx.get_ca_certs()]
    assert trusted == ["edgeferry lab CA"]  # the lab CA, and no system roots


@pytest.mark.parametrize("bad", [(0.0, 4, 2), (1.0, 4, 0), (1.0, 4, 5)])
def test_limits_are_validated(bad: tuple[float, int, int]) -> None:
    with pytest.raises(ValueError):
        Limits(*bad)


def refused(port: int) -> bool:
    """Does the server close a new connection without a word (EOF or reset, which on loopback
    can already reach connect())?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_closed_handshake_slot_is_free_again(tmp_path: Path, tls: NmsTls) -> None:
    srv = serve(tmp_path, tls.server(), Limits(handshake_timeout=0.5, max_connections=2,
                                                max_pending=1))
    try:
        with socket.create_connection(("127.0.0.1", srv.port)):  # takes the one slot
            time.sleep(0.1)
            assert refused(srv.port)
            assert srv.counters["refused"] == 1
            assert ping(srv.port, tls.client()) < 3.0  # the 0.5 s deadline freed the slot
        assert srv.counters["handshake_timeouts"] == 1
    finally:
        srv.stop(0.2)


def test_limits_and_tls_files_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.workloads.nms.server import build_arg_parser

    defaults = build_arg_parser().parse_args([])
    assert (defaults.handshake_timeout, defaults.max_connections, defaults.max_pending) == (
        2.0, 64, 16)
    assert (str(defaults.cert_file), str(defaults.tls_key_file)) == (
        "/run/secrets/nms.crt", "/run/secrets/nms-tls.key")
    monkeypatch.setenv("NMS_HANDSHAKE_TIMEOUT", "0.5")
    monkeypatch.setenv("NMS_MAX_CONNECTIONS", "8")
    args = build_arg_parser().parse_args(["--max-pending", "3"])
    assert (args.handshake_timeout, args.max_connections, args.max_pending) == (0.5, 8, 3)


def test_the_server_will_not_start_without_its_certificate(tmp_path: Path, tls: NmsTls,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    from agents.workloads.nms.server import main

    key = tmp_path / "nms.key"
    key.write_text(KEY.hex())
    key.chmod(0o600)
    base = ["--listen", "127.0.0.1:0", "--data", str(tmp_path / "d"), "--key-file", str(key)]
    assert main([*base, "--cert-file", str(tmp_path / "missing.crt"),
                 "--tls-key-file", str(tls.issued.key_path)]) == 2
    assert "cannot set up TLS" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before serving anything
