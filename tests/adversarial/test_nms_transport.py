"""Issue 12, item 4 (NMS): frames were authenticated but not encrypted, and the handshake had no
deadline or connection cap (50 connections held open past a 2 s timeout). Each test replays the
attack against a real NMS server on 127.0.0.1 and shows it now fails."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.workloads.nms.auth import AuthenticationFailed, HmacSession, SharedKeyAuth
from agents.workloads.nms.client import NmsClient, static_resolver
from agents.workloads.nms.protocol import ConnectionClosed
from agents.workloads.nms.server import BlockStore, Limits, NmsServer
from tests.nms_tls import NmsTls, issue_nms_cert

KEY = os.urandom(32)
DEADLINE = 2.0
# 4 KiB that cannot occur by chance in ciphertext or framing: a known block's contents
MARKER = (b"EDGEFERRY-NMS-PLAINTEXT-CANARY-" * 140)[:4096]


@pytest.fixture(scope="module")
def tls(lab_pki, tmp_path_factory: pytest.TempPathFactory) -> NmsTls:  # type: ignore[no-untyped-def]
    return issue_nms_cert(lab_pki.ca, tmp_path_factory.mktemp("nms-tls"))


def start(tmp_path: Path, tls: NmsTls, limits: Limits) -> NmsServer:
    return NmsServer(BlockStore(tmp_path / "data", 8192, max_blocks=64),
                     SharedKeyAuth(KEY, "server"), tls.server(), "127.0.0.1", 0, limits).start()


@pytest.fixture
def server(tmp_path: Path, tls: NmsTls) -> Iterator[NmsServer]:
    srv = start(tmp_path, tls, Limits(handshake_timeout=DEADLINE, max_connections=16,
                                      max_pending=8))
    yield srv
    srv.stop(0.5)


def client(port: int, tls: NmsTls, **kw: float) -> NmsClient:
    return NmsClient(static_resolver("127.0.0.1", port), SharedKeyAuth(KEY, "alice"),
                     tls.client(), **kw)


class Tap:
    """A TCP relay between a client and the server that records every byte, both ways."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.captured = {"c2s": bytearray(), "s2c": bytearray()}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            for src, dst, way in ((down, up, "c2s"), (up, down, "s2c")):
                threading.Thread(target=self._pump, args=(src, dst, way), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        try:
            while chunk := src.recv(65536):
                self.captured[way] += chunk
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or reset), None if still open after."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except OSError:  # reset: refused at once
        pass
    return time.monotonic() - started


def is_closed(sock: socket.socket) -> bool:
    """Has the server closed ``sock`` (EOF or reset)? Does not wait."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def test_finding_nms_plaintext_refused_and_frames_encrypted(server: NmsServer,
                                                            tls: NmsTls) -> None:
    # the detector works: a sealed frame of the old transport carries the block in clear
    assert MARKER in HmacSession(b"k" * 32, b"k" * 32, "x").seal(MARKER)

    # 1. a plaintext client (the old transport) gets no NMS conversation
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            pytest.raises((AuthenticationFailed, ConnectionClosed, OSError)):
        SharedKeyAuth(KEY, "mallory").client_handshake(raw)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"\x00\x00\x00\x1cNMS1\x07mallory" + bytes(16))  # an NMS1 hello
        reply = b""
        try:
            while chunk := raw.recv(4096):
                reply += chunk
        except OSError:
            pass
        # nothing, or a TLS alert record (content type 21): never an NMS challenge frame
        assert reply == b"" or reply[0] == 21, reply[:16]

    # 2. a real client through a tap: the block crosses the wire, never in clear
    tap = Tap(server.port)
    try:
        with client(tap.port, tls) as c:
            bid = c.allocate()
            c.write(bid, MARKER)
            assert c.read(bid)[: len(MARKER)] == MARKER
        c2s, s2c = bytes(tap.captured["c2s"]), bytes(tap.captured["s2c"])
    finally:
        tap.close()
    assert len(c2s) > 8192 and len(s2c) > 8192  # both block transfers went through the tap
    assert c2s[0] == 0x16 and s2c[0] == 0x16  # TLS handshake records, not NMS frames
    for way in (c2s, s2c):
        assert b"NMS1" not in way and b"alice" not in way  # not even the hello is visible
        for i in range(0, len(MARKER) - 32, 32):
            assert MARKER[i:i + 32] not in way


def test_finding_nms_handshake_deadline(server: NmsServer, tls: NmsTls) -> None:
    # idle: connects and sends nothing
    idle = socket.create_connection(("127.0.0.1", server.port))
    # slow: completes TLS, then trickles the NMS hello one byte every 0.3 s (each read well
    # inside any per-read timeout): the deadline is absolute, not per read
    slow = tls.client().wrap(socket.create_connection(("127.0.0.1", server.port), timeout=5))
    started = time.monotonic()
    hello = iter(b"\x00\x00\x00\x1aNMS1\x05alice" + bytes(16))
    closed_at: dict[str, float] = {}
    try:
        while len(closed_at) < 2 and time.monotonic() - started < DEADLINE + 1.5:
            for name, sock in (("idle", idle), ("slow", slow)):
                if name not in closed_at and is_closed(sock):
                    closed_at[name] = time.monotonic() - started
            if "slow" not in closed_at:
                slow.send(bytes([next(hello, 0)]))
            time.sleep(0.3)
        assert set(closed_at) == {"idle", "slow"}, f"still open after the deadline: {closed_at}"
        assert all(DEADLINE - 0.2 <= t <= DEADLINE + 0.5 for t in closed_at.values()), closed_at
        assert next(hello, None) is not None, "the whole hello got through"
        assert server.counters["handshake_timeouts"] == 2, (server.counters, closed_at)
        deadline = time.monotonic() + 1.0
        while server.open_connections() != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.open_connections() == (0, 0)
        with client(server.port, tls) as c:  # a real client is served as before
            c.ping()
    finally:
        idle.close()
        slow.close()


def test_finding_nms_connection_cap(tmp_path: Path, tls: NmsTls) -> None:
    limits = Limits(handshake_timeout=DEADLINE, max_connections=12, max_pending=8)
    srv = start(tmp_path, tls, limits)
    established = client(srv.port, tls)
    idle: list[socket.socket] = []
    try:
        established.ping()  # an authenticated client holds one connection
        started = time.monotonic()
        reset_at_connect = 0
        for _ in range(50):
            try:
                idle.append(socket.create_connection(("127.0.0.1", srv.port)))
            except ConnectionResetError:  # the reset can beat connect() on loopback
                reset_at_connect += 1
        time.sleep(0.3)  # the refusals are immediate; give the resets time to arrive
        refused = reset_at_connect + sum(is_closed(s) for s in idle)
        assert refused == 50 - limits.max_pending
        assert srv.open_connections() == (1 + limits.max_pending, limits.max_pending)
        assert srv.counters["refused"] == refused
        # the established client is unaffected while the 50 are held open
        established.ping()
        assert time.monotonic() - started < DEADLINE, "cap checks took the whole deadline"
        # the admitted idle ones are gone by the deadline; a new client gets in
        assert all(closed_within(s, DEADLINE + 1.0) is not None for s in idle)
        with client(srv.port, tls, retry_deadline=5.0) as c:
            c.ping()
        assert srv.open_connections()[1] == 0
        print(f"\nnms cap: 50 idle connections, {refused} refused at once, "
              f"{limits.max_pending} closed at the {DEADLINE:.0f} s deadline, "
              "established client served throughout")
    finally:
        for s in idle:
            s.close()
        established.close()
        srv.stop(0.5)
