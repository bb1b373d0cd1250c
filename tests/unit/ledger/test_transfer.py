"""The container stream of Figure 11's paths (agents.ledger.transfer) over real mutual TLS on
loopback, file to file: bytes and SHA-256 arrive intact; a wrong sender, a wrong token, a
foreign CA and an over-long stream are refused before the sink gets anything."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from agents.ledger.transfer import Receiver, Tls, TransferError, send


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tls(lab_pki: Any, cn: str) -> Tls:
    issued = lab_pki.issue(cn)
    return Tls(str(lab_pki.ca.cert_path), str(issued.cert_path), str(issued.key_path))


def _receiver(lab_pki: Any, sink: Path, *, token: str = "t" * 32, max_bytes: int = 10 << 20,
              senders: tuple[str, ...] = ("smf.edge1",)) -> Receiver:
    return Receiver("127.0.0.1", _free_port(), _tls(lab_pki, "smf.localhost"), token, senders,
                    max_bytes, sink_file=str(sink), accept_timeout_s=20).start()


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "image.tar"
    path.write_bytes(os.urandom(3 * (1 << 20) + 12345))  # several chunks and a remainder
    return path


def test_a_stream_arrives_whole_with_its_digest(lab_pki: Any, tmp_path: Path,
                                                payload: Path) -> None:
    sink = tmp_path / "stored.tar"
    rx = _receiver(lab_pki, sink)
    out = send("127.0.0.1", rx.port, _tls(lab_pki, "smf.edge1"), "t" * 32, path=str(payload))
    data = payload.read_bytes()
    assert out["bytes"] == out["sent_bytes"] == len(data)
    assert out["sha256"] == hashlib.sha256(data).hexdigest()
    assert sink.read_bytes() == data
    assert sink.stat().st_mode & 0o777 == 0o600
    assert rx.wait(10)["sender"] == "smf.edge1"


def test_a_sender_of_the_wrong_host_is_refused(lab_pki: Any, tmp_path: Path,
                                               payload: Path) -> None:
    sink = tmp_path / "stored.tar"
    rx = _receiver(lab_pki, sink)
    with pytest.raises((TransferError, OSError)):
        send("127.0.0.1", rx.port, _tls(lab_pki, "smf.edge3"), "t" * 32, path=str(payload))
    with pytest.raises(TransferError, match=r"refused sender 'smf\.edge3'"):
        rx.wait(10)
    assert not sink.exists()


def test_a_wrong_token_is_refused_and_the_receiver_is_single_use(
        lab_pki: Any, tmp_path: Path, payload: Path) -> None:
    sink = tmp_path / "stored.tar"
    rx = _receiver(lab_pki, sink)
    with pytest.raises((TransferError, OSError)):
        send("127.0.0.1", rx.port, _tls(lab_pki, "smf.edge1"), "x" * 32, path=str(payload))
    with pytest.raises(TransferError, match="wrong token"):
        rx.wait(10)
    assert not sink.exists()
    # the right token afterwards finds nobody listening: one connection per receiver
    with pytest.raises(OSError):
        send("127.0.0.1", rx.port, _tls(lab_pki, "smf.edge1"), "t" * 32, path=str(payload),
             timeout_s=5)


def test_a_client_of_a_foreign_ca_never_gets_in(lab_pki: Any, tmp_path: Path,
                                                payload: Path) -> None:
    sink = tmp_path / "stored.tar"
    rx = _receiver(lab_pki, sink)
    foreign = lab_pki.foreign_client
    tls = Tls(str(lab_pki.ca.cert_path), str(foreign.cert_path), str(foreign.key_path))
    with pytest.raises((TransferError, OSError)):
        send("127.0.0.1", rx.port, tls, "t" * 32, path=str(payload))
    with pytest.raises(TransferError):
        rx.wait(10)
    assert not sink.exists()


def test_a_stream_over_the_limit_is_cut(lab_pki: Any, tmp_path: Path, payload: Path) -> None:
    rx = _receiver(lab_pki, tmp_path / "stored.tar", max_bytes=1 << 20)
    with pytest.raises((TransferError, OSError)):
        send("127.0.0.1", rx.port, _tls(lab_pki, "smf.edge1"), "t" * 32, path=str(payload))
    with pytest.raises(TransferError, match="over its limit"):
        rx.wait(10)


def test_a_short_token_is_refused_before_listening(lab_pki: Any, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="one-time token"):
        _receiver(lab_pki, tmp_path / "s", token="short")
