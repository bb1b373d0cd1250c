"""The downtime prober against real local servers that stop and start (real sockets)."""

from __future__ import annotations

import math
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgeferry.experiments.prober import (
    DowntimeProber,
    Endpoint,
    first_answer,
    fixed,
    http_probe,
    tls_probe,
)
from tests.nms_tls import NmsTls, issue_nms_cert


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n" if self.path == "/health" else b"no"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server:
    """A /health HTTP server on 127.0.0.1 that the test stops and starts."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Health)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> Endpoint:
        return ("127.0.0.1", self.httpd.server_address[1])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class AcceptOnly:
    """What docker-proxy does before the container listens: accept, then close."""

    def __init__(self, hold: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.hold = hold
        self.kept: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> Endpoint:
        return ("127.0.0.1", self.sock.getsockname()[1])

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.hold:
                self.kept.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for c in self.kept:
            c.close()


@pytest.fixture
def accept_only() -> Iterator[AcceptOnly]:
    s = AcceptOnly()
    yield s
    s.close()


@pytest.mark.serial  # its bounds are a probe or two: run alone (README)
def test_downtime_is_last_source_answer_to_first_destination_answer() -> None:
    src = Server()
    dst: list[Server] = []
    prober = DowntimeProber(http_probe(), fixed(src.endpoint),
                            lambda: dst[0].endpoint if dst else None,
                            interval_s=0.02, resolve_interval_s=0.02)
    with prober:
        time.sleep(0.3)
        t_stop_called = time.monotonic()
        src.stop()
        t_stopped = time.monotonic()
        time.sleep(0.5)
        t_start_called = time.monotonic()
        dst.append(Server())
        t_started = time.monotonic()
        time.sleep(0.3)
    try:
        rec = prober.record
        assert rec.source.last_ok is not None and rec.destination.first_ok is not None
        # the source answered until the stop, and not after it had stopped (an answer read
        # just before the shutdown is time-stamped when its thread runs again: 50 ms slack)
        assert t_stop_called - 0.1 <= rec.source.last_ok <= t_stopped + 0.05
        # the destination's first answer came after it started, within a probe or two
        assert t_start_called <= rec.destination.first_ok <= t_started + 0.15
        low, high = t_start_called - t_stopped, t_started - t_stop_called + 0.25
        assert low <= rec.downtime_s <= high, (low, rec.downtime_s, high)
        assert rec.overlap_s == 0.0
        # ~50 probes a second at the source for 0.8 s (not fewer than half the rate)
        assert rec.source.probes >= 20
        assert rec.source.answers < rec.source.probes
    finally:
        dst[0].stop()


def test_tcp_accept_is_not_an_answer(accept_only: AcceptOnly) -> None:
    assert not http_probe()(accept_only.endpoint, 0.3)
    holding = AcceptOnly(hold=True)
    try:
        t0 = time.monotonic()
        assert not http_probe()(holding.endpoint, 0.2)
        assert time.monotonic() - t0 < 1.0  # the timeout bounds a silent accept
    finally:
        holding.close()
    srv = Server()
    try:
        assert http_probe()(srv.endpoint, 0.5)
        assert not http_probe("/missing")(srv.endpoint, 0.5)  # 404 is no answer
    finally:
        srv.stop()
    assert not http_probe()(srv.endpoint, 0.3)  # closed port: refused


def test_a_server_that_only_accepts_shows_no_answer_until_the_app_listens(
        accept_only: AcceptOnly) -> None:
    src = Server()
    real: list[Server] = []
    # destination = accept-only first (docker-proxy before the app), then the real server
    where: list[Endpoint] = [accept_only.endpoint]
    prober = DowntimeProber(http_probe(), fixed(src.endpoint), lambda: where[-1],
                            interval_s=0.02, resolve_interval_s=0.02)
    with prober:
        time.sleep(0.15)
        src.stop()
        time.sleep(0.3)
        t_app = time.monotonic()
        real.append(Server())
        where.append(real[0].endpoint)
    try:
        # the prober resolved the accept-only endpoint once and kept probing it: no answer
        assert prober.record.destination.first_ok is None
        assert prober.record.destination.probes >= 5
        assert math.isnan(prober.record.downtime_s)
        assert prober.record.source.last_ok is not None
        assert prober.record.source.last_ok < t_app
    finally:
        real[0].stop()


@pytest.mark.serial  # its bounds are a probe or two: run alone (README)
def test_a_stale_endpoint_is_resolved_again_until_it_answers() -> None:
    src, dst = Server(), Server()
    gone = Server()
    gone.stop()  # where the destination was first published (a container created again)
    where = [gone.endpoint]
    prober = DowntimeProber(http_probe(), fixed(src.endpoint), lambda: where[-1],
                            interval_s=0.02, resolve_interval_s=0.02, reresolve_s=0.2)
    with prober:
        time.sleep(0.3)
        t_moved = time.monotonic()
        where.append(dst.endpoint)
        time.sleep(0.5)
    src.stop()
    dst.stop()
    rec = prober.record.destination
    assert rec.endpoint == dst.endpoint
    # found within one re-resolution period (+ a probe) of the move
    assert rec.first_ok is not None and t_moved <= rec.first_ok <= t_moved + 0.3


def test_destination_answers_count_only_after_the_source_answered() -> None:
    dst = Server()
    closed = Server()
    closed.stop()  # a source that never answers
    prober = DowntimeProber(http_probe(), fixed(closed.endpoint), fixed(dst.endpoint),
                            interval_s=0.02)
    with prober:
        time.sleep(0.2)
    dst.stop()
    assert prober.record.destination.probes >= 3
    assert prober.record.destination.first_ok is None
    assert math.isnan(prober.record.downtime_s)


@pytest.fixture(scope="module")
def nms_tls(lab_pki, tmp_path_factory: pytest.TempPathFactory) -> NmsTls:  # type: ignore[no-untyped-def]
    return issue_nms_cert(lab_pki.ca, tmp_path_factory.mktemp("prober-tls"))


def _tls_server(ctx: ssl.SSLContext) -> tuple[socket.socket, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def run() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return sock, th


def test_tls_probe_needs_a_completed_verified_handshake(nms_tls: NmsTls,
                                                       accept_only: AcceptOnly) -> None:
    client = nms_tls.client()
    sock, _ = _tls_server(nms_tls.server())
    endpoint = ("127.0.0.1", sock.getsockname()[1])
    try:
        assert tls_probe(client.context, client.server_name)(endpoint, 1.0)
        # the certificate is not for this name: the handshake does not verify
        assert not tls_probe(client.context, "other.edgeferry.internal")(endpoint, 1.0)
    finally:
        sock.shutdown(socket.SHUT_RDWR)  # wakes the accept, so the port is closed
        sock.close()
    assert not tls_probe(client.context, client.server_name)(accept_only.endpoint, 0.3)
    assert not tls_probe(client.context, client.server_name)(endpoint, 0.3)  # closed


def test_first_answer_times_a_start(tmp_path: Path) -> None:
    box: list[Server] = []

    def start_later() -> None:
        time.sleep(0.3)
        box.append(Server())

    th = threading.Thread(target=start_later)
    t0 = time.monotonic()
    th.start()
    try:
        took = first_answer(http_probe(), lambda: box[0].endpoint if box else None, since=t0,
                            deadline_s=5.0, resolve_interval_s=0.02)
        assert 0.3 <= took <= 0.6
        with pytest.raises(TimeoutError):
            first_answer(http_probe("/missing"), fixed(box[0].endpoint),
                         since=time.monotonic(), deadline_s=0.2)
    finally:
        th.join()
        box[0].stop()
