"""NMS client library and CLI; reconnects (re-resolving the server) after a migration.

    client = NmsClient(static_resolver("10.10.0.12", 7070), SharedKeyAuth(key, "alice"),
                       ClientTls.from_ca_file(Path("/etc/edgeferry/pki/ca.crt")))
    bid = client.allocate(); client.write(bid, data); client.read(bid); client.free(bid)

``resolver`` is any callable returning the server's current ``(host, port)``; the SMF
RequestService plugs in here (after a migration the SMF returns the new location). When a call
fails because the connection broke or the server is unreachable (stopped for migration), the
client closes the socket, calls the resolver again and retries with back-off until
``retry_deadline`` seconds have passed. Every operation is safe to repeat: WRITE/READ are
idempotent, ALLOC carries a token the server deduplicates, and a FREE that finds its block
already gone after a reconnect is treated as done. Each outage is recorded in `outages`
(seconds without service as the client saw it, and the old/new endpoint).

Every connection is TLS 1.3 to a server whose lab-CA certificate carries the NMS name
(`tls.SERVER_NAME`), then the session-key handshake (`auth`) inside it. A server whose
certificate does not verify is not the NMS: that raises `AuthenticationFailed` at once (like a
server that does not know the session key); it is not retried.

CLI (``python -m agents.workloads.nms.client --server HOST:PORT --key-file F --ca-file CA ...``)::

    alloc | write ID FILE|- | read ID [-o FILE] | free ID | stat | ping
    bench --blocks N    (allocate, write, read back and verify N blocks; prints ops/s)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .auth import AuthenticationFailed, Authenticator, Session, SharedKeyAuth
from .protocol import (
    ALLOC_TOKEN_BYTES,
    ConnectionClosed,
    Op,
    ProtocolError,
    Request,
    Response,
    StatInfo,
    Status,
    decode_response,
    encode_request,
    read_u64,
    recv_frame,
    send_frame,
    u64,
)
from .tls import SERVER_NAME, ClientTls

Resolver = Callable[[], tuple[str, int]]


class NmsError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status


class NmsUnavailable(Exception):
    """The server could not be reached before the retry deadline."""


def static_resolver(host: str, port: int) -> Resolver:
    return lambda: (host, port)


@dataclass(frozen=True)
class Outage:
    """One period without service as seen by the client."""

    seconds: float
    old_endpoint: tuple[str, int] | None
    new_endpoint: tuple[str, int]
    attempts: int


class NmsClient:
    def __init__(
        self,
        resolver: Resolver,
        auth: Authenticator,
        tls: ClientTls,
        *,
        connect_timeout: float = 2.0,
        io_timeout: float = 10.0,
        retry_deadline: float = 120.0,
        backoff: tuple[float, float] = (0.05, 1.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver
        self.auth = auth
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self.retry_deadline = retry_deadline
        self.backoff = backoff
        self.clock = clock
        self.outages: list[Outage] = []
        self.endpoint: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._session: Session | None = None
        self._ids = itertools.count(1)
        self._block_size: int | None = None

    # -- connection ---------------------------------------------------------------------------
    def _connect(self) -> None:
        endpoint = self.resolver()
        raw = socket.create_connection(endpoint, timeout=self.connect_timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock = self.tls.wrap(raw)  # the TLS handshake, under the connect timeout
            except ssl.SSLCertVerificationError as err:
                raise AuthenticationFailed(
                    f"the server at {endpoint[0]}:{endpoint[1]} is not the NMS: its "
                    f"certificate does not verify ({err.verify_message})") from None
        except BaseException:
            raw.close()
            raise
        try:
            sock.settimeout(self.io_timeout)
            session = self.auth.client_handshake(sock)
        except BaseException:
            sock.close()
            raise
        self._sock, self._session, self.endpoint = sock, session, endpoint

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = self._session = None

    def __enter__(self) -> NmsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _roundtrip(self, req: Request) -> Response:
        if self._sock is None or self._session is None:
            self._connect()
        assert self._sock is not None and self._session is not None
        send_frame(self._sock, self._session.seal(encode_request(req)))
        resp = decode_response(self._session.open(recv_frame(self._sock)))
        if resp.request_id != req.request_id:
            raise ProtocolError("response does not match the request")
        return resp

    def _call(self, op: Op, args: bytes = b"") -> tuple[Response, bool]:
        """Send one request, reconnecting on transport failure; (response, was_retried)."""
        req = Request(op, next(self._ids), args)
        started = None
        old = self.endpoint
        attempts = 0
        delay = self.backoff[0]
        while True:
            try:
                resp = self._roundtrip(req)
            except AuthenticationFailed:
                self.close()
                raise
            except (OSError, ConnectionClosed, ProtocolError) as err:
                self.close()
                now = self.clock()
                if started is None:
                    started = now
                elif now - started > self.retry_deadline:
                    raise NmsUnavailable(
                        f"NMS unreachable for {now - started:.1f} s (last error: {err})"
                    ) from None
                attempts += 1
                time.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            if started is not None and self.endpoint is not None:
                self.outages.append(
                    Outage(self.clock() - started, old, self.endpoint, attempts)
                )
            return resp, started is not None

    @staticmethod
    def _check(resp: Response) -> bytes:
        if resp.status is not Status.OK:
            raise NmsError(resp.status, resp.result.decode(errors="replace"))
        return resp.result

    # -- operations ---------------------------------------------------------------------------
    def ping(self) -> None:
        self._check(self._call(Op.PING)[0])

    def stat(self) -> StatInfo:
        info = StatInfo.decode(self._check(self._call(Op.STAT)[0]))
        self._block_size = info.block_size
        return info

    @property
    def block_size(self) -> int:
        if self._block_size is None:
            self.stat()
        assert self._block_size is not None
        return self._block_size

    def allocate(self) -> int:
        token = os.urandom(ALLOC_TOKEN_BYTES)
        return read_u64(self._check(self._call(Op.ALLOC, token)[0]))

    def write(self, block_id: int, data: bytes) -> None:
        """Write one whole block (shorter data is zero-padded)."""
        size = self.block_size
        if len(data) > size:
            raise ValueError(f"data is {len(data)} bytes; a block holds {size}")
        self._check(self._call(Op.WRITE, u64(block_id) + data.ljust(size, b"\0"))[0])

    def read(self, block_id: int) -> bytes:
        return self._check(self._call(Op.READ, u64(block_id))[0])

    def free(self, block_id: int) -> None:
        resp, retried = self._call(Op.FREE, u64(block_id))
        if retried and resp.status is Status.NOT_FOUND:
            return  # the first attempt freed it before the connection broke
        self._check(resp)


# -- CLI ----------------------------------------------------------------------------------------


def _endpoint(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agents.workloads.nms.client",
                                description="Network Memory Server client")
    p.add_argument("--server", type=_endpoint, required=True, metavar="HOST:PORT")
    p.add_argument("--key-file", type=Path, required=True, help="session key file (mode 0600)")
    p.add_argument("--ca-file", type=Path, default=os.environ.get("NMS_CA_FILE"),
                   help="the lab CA certificate the NMS certificate must chain to "
                        "(default: $NMS_CA_FILE)")
    p.add_argument("--server-name", default=SERVER_NAME,
                   help="the name the NMS certificate must carry (default: %(default)s)")
    p.add_argument("--client-id", default=os.environ.get("USER", "client"))
    p.add_argument("--retry-deadline", type=float, default=30.0)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("alloc")
    sub.add_parser("stat")
    sub.add_parser("ping")
    w = sub.add_parser("write")
    w.add_argument("block", type=lambda s: int(s, 16))
    w.add_argument("source", help="file to write, or - for stdin")
    r = sub.add_parser("read")
    r.add_argument("block", type=lambda s: int(s, 16))
    r.add_argument("-o", "--output", type=Path)
    f = sub.add_parser("free")
    f.add_argument("block", type=lambda s: int(s, 16))
    b = sub.add_parser("bench")
    b.add_argument("--blocks", type=int, default=100)
    return p


def run_cli(args: argparse.Namespace, client: NmsClient) -> int:
    out = sys.stdout
    if args.cmd == "alloc":
        print(f"{client.allocate():016x}", file=out)
    elif args.cmd == "stat":
        info = client.stat()
        print(f"block_size={info.block_size} used={info.blocks_used} "
              f"capacity={info.capacity_blocks}", file=out)
    elif args.cmd == "ping":
        started = time.monotonic()
        client.ping()
        print(f"pong {1000 * (time.monotonic() - started):.2f} ms", file=out)
    elif args.cmd == "write":
        data = sys.stdin.buffer.read() if args.source == "-" else Path(args.source).read_bytes()
        client.write(args.block, data)
    elif args.cmd == "read":
        data = client.read(args.block)
        if args.output:
            args.output.write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
    elif args.cmd == "free":
        client.free(args.block)
    elif args.cmd == "bench":
        started = time.monotonic()
        size = client.block_size
        blocks = {client.allocate(): os.urandom(size) for _ in range(args.blocks)}
        for bid, data in blocks.items():
            client.write(bid, data)
        bad = sum(client.read(bid) != data for bid, data in blocks.items())
        for bid in blocks:
            client.free(bid)
        elapsed = time.monotonic() - started
        ops = 4 * args.blocks
        print(f"{ops} ops on {size}-byte blocks in {elapsed:.3f} s "
              f"({ops / elapsed:.0f} ops/s), mismatches={bad}", file=out)
        return 1 if bad else 0
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if args.ca_file is None:
        parser.error("give --ca-file (the lab CA certificate) or set NMS_CA_FILE")
    try:
        auth = SharedKeyAuth.from_file(args.key_file, args.client_id)
    except (OSError, ValueError) as err:
        print(f"nms: cannot use key file {args.key_file}: {err}", file=sys.stderr)
        return 2
    try:
        tls = ClientTls.from_ca_file(Path(args.ca_file), args.server_name)
    except OSError as err:
        print(f"nms: cannot use CA file {args.ca_file}: {err}", file=sys.stderr)
        return 2
    client = NmsClient(static_resolver(*args.server), auth, tls,
                       retry_deadline=args.retry_deadline)
    try:
        with client:
            return run_cli(args, client)
    except (NmsError, NmsUnavailable, AuthenticationFailed, ValueError) as err:
        print(f"nms: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
