"""NMS server + client over real loopback TLS: blocks, auth, framing, reconnect, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.workloads.nms import client as cli
from agents.workloads.nms.auth import AuthenticationFailed, HmacSession, SharedKeyAuth
from agents.workloads.nms.client import NmsClient, NmsError, NmsUnavailable, static_resolver
from agents.workloads.nms.protocol import Op, Request, Status, encode_request, send_frame
from agents.workloads.nms.server import BlockStore, NmsServer
from tests.nms_tls import NmsTls, issue_nms_cert
from tests.signal_elsewhere import run_signalled_from_another_thread

KEY = bytes(range(32))
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tls(lab_pki, tmp_path_factory: pytest.TempPathFactory) -> NmsTls:  # type: ignore[no-untyped-def]
    return issue_nms_cert(lab_pki.ca, tmp_path_factory.mktemp("nms-tls"))


@pytest.fixture
def server(tmp_path: Path, tls: NmsTls) -> Iterator[NmsServer]:
    srv = NmsServer(BlockStore(tmp_path / "data", 8192, max_blocks=8),
                    SharedKeyAuth(KEY, "server"), tls.server(), "127.0.0.1", 0).start()
    yield srv
    srv.stop(0.5)


def client_for(port: int, tls: NmsTls, key: bytes = KEY, **kw: object) -> NmsClient:
    return NmsClient(static_resolver("127.0.0.1", port), SharedKeyAuth(key, "alice"),
                     tls.client(), **kw)  # type: ignore[arg-type]


def test_allocate_write_read_free(server: NmsServer, tls: NmsTls) -> None:
    with client_for(server.port, tls) as c:
        assert c.stat().block_size == 8192
        bid = c.allocate()
        assert c.read(bid) == bytes(8192)
        data = os.urandom(8192)
        c.write(bid, data)
        assert c.read(bid) == data
        c.write(bid, b"short")
        assert c.read(bid) == b"short".ljust(8192, b"\0")
        assert c.stat().blocks_used == 1
        c.free(bid)
        with pytest.raises(NmsError) as info:
            c.read(bid)
        assert info.value.status is Status.NOT_FOUND
        with pytest.raises(ValueError):
            c.write(bid, bytes(8193))


def test_capacity_limit(server: NmsServer, tls: NmsTls) -> None:
    with client_for(server.port, tls) as c:
        for _ in range(8):
            c.allocate()
        with pytest.raises(NmsError) as info:
            c.allocate()
        assert info.value.status is Status.NO_SPACE


def test_alloc_token_makes_alloc_idempotent(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, 64)
    token = os.urandom(16)
    assert store.allocate(token) == store.allocate(token)
    assert store.count() == 1
    other = store.allocate(os.urandom(16))
    store.free(other)
    assert store.count() == 1


def test_wrong_key_is_refused_both_ways(server: NmsServer, tls: NmsTls) -> None:
    with pytest.raises(AuthenticationFailed), client_for(server.port, tls, key=b"x" * 32) as c:
        c.ping()


def test_client_refuses_a_server_without_the_key(tmp_path: Path, tls: NmsTls) -> None:
    impostor = NmsServer(BlockStore(tmp_path, 64), SharedKeyAuth(b"y" * 32), tls.server(),
                        "127.0.0.1", 0)
    impostor.start()
    try:
        with pytest.raises(AuthenticationFailed), client_for(impostor.port, tls) as c:
            c.ping()
    finally:
        impostor.stop(0.2)


def test_sealed_frames_reject_tampering_replay_and_reordering() -> None:
    a = HmacSession(b"k1" * 16, b"k2" * 16, "b")
    b = HmacSession(b"k2" * 16, b"k1" * 16, "a")
    f0, f1 = a.seal(b"zero"), a.seal(b"one")
    tampered = bytearray(f0)
    tampered[9] ^= 1
    with pytest.raises(AuthenticationFailed):
        b.open(bytes(tampered))
    with pytest.raises(AuthenticationFailed):
        b.open(f1)  # out of order
    assert b.open(f0) == b"zero"
    with pytest.raises(AuthenticationFailed):
        b.open(f0)  # replay
    assert b.open(f1) == b"one"


def test_unauthenticated_requests_get_no_answer(server: NmsServer, tls: NmsTls) -> None:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=2)
    with tls.client().wrap(raw) as sock:  # TLS is fine, but no NMS1 hello inside it
        send_frame(sock, encode_request(Request(Op.READ, 1, bytes(8))))
        assert sock.recv(100) == b""  # the server hangs up


def test_client_reconnects_to_the_new_location_without_losing_blocks(tmp_path: Path,
                                                                     tls: NmsTls) -> None:
    data_dir = tmp_path / "blocks"
    first = NmsServer(BlockStore(data_dir, 8192), SharedKeyAuth(KEY), tls.server(),
                      "127.0.0.1", 0).start()
    location = {"port": first.port}
    c = NmsClient(lambda: ("127.0.0.1", location["port"]), SharedKeyAuth(KEY, "alice"),
                  tls.client(), retry_deadline=10)
    blocks = {c.allocate(): os.urandom(8192) for _ in range(20)}
    for bid, data in blocks.items():
        c.write(bid, data)
    first.stop(0.5)  # "stop" phase; the data directory moves with the container
    second = NmsServer(BlockStore(data_dir, 8192), SharedKeyAuth(KEY), tls.server(),
                       "127.0.0.1", 0)
    location["port"] = second.port  # the SMF now resolves to the new location
    second.start()
    try:
        assert all(c.read(bid) == data for bid, data in blocks.items())
        assert len(c.outages) == 1
        assert c.outages[0].new_endpoint == ("127.0.0.1", second.port)
        assert c.outages[0].old_endpoint == ("127.0.0.1", first.port)
    finally:
        c.close()
        second.stop(0.5)


def test_client_gives_up_after_the_deadline(tls: NmsTls) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = client_for(port, tls, retry_deadline=0.3, connect_timeout=0.1)
    with pytest.raises(NmsUnavailable):
        c.ping()


def test_key_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text(KEY.hex())
    path.chmod(0o644)
    with pytest.raises(PermissionError):
        SharedKeyAuth.from_file(path)
    path.chmod(0o600)
    assert SharedKeyAuth.from_file(path, "c").client_id == "c"


def test_server_process_exits_promptly_on_sigterm_and_cli_works(tmp_path: Path, tls: NmsTls,
                                                                capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    key = tmp_path / "nms.key"
    key.write_text(KEY.hex())
    key.chmod(0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agents.workloads.nms.server", "--listen", f"127.0.0.1:{port}",
         "--data", str(tmp_path / "d"), "--key-file", str(key),
         "--cert-file", str(tls.issued.cert_path), "--tls-key-file", str(tls.issued.key_path)],
        cwd=REPO)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        base = ["--server", f"127.0.0.1:{port}", "--key-file", str(key),
                "--ca-file", str(tls.ca_cert)]
        assert cli.main([*base, "alloc"]) == 0
        bid = capsys.readouterr().out.strip()
        src = tmp_path / "in"
        src.write_bytes(b"hello nms")
        assert cli.main([*base, "write", bid, str(src)]) == 0
        out = tmp_path / "out"
        assert cli.main([*base, "read", bid, "-o", str(out)]) == 0
        assert out.read_bytes().rstrip(b"\0") == b"hello nms"
        assert cli.main([*base, "bench", "--blocks", "5"]) == 0
        assert "mismatches=0" in capsys.readouterr().out
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 2.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_server_stops_when_sigterm_reaches_a_thread_other_than_main(tmp_path: Path,
                                                                     tls: NmsTls) -> None:
    key = tmp_path / "nms.key"
    key.write_text(KEY.hex())
    key.chmod(0o600)
    code, stderr = run_signalled_from_another_thread(
        "from agents.workloads.nms import server\nsys.exit(server.main(sys.argv[1:]))",
        ["--listen", "127.0.0.1:0", "--data", str(tmp_path / "d"), "--key-file", str(key),
         "--cert-file", str(tls.issued.cert_path), "--tls-key-file", str(tls.issued.key_path)],
        "the NMS server")
    assert code == 0, stderr
    assert stderr.rstrip().endswith("stopped"), stderr
