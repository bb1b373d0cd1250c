"""The NMS block server. Standard library only (runs inside the NMS image as ``nms.server``).

    python -m agents.workloads.nms.server --listen 0.0.0.0:7070 --data /var/lib/nms \
        --key-file /run/secrets/nms.key --cert-file /run/secrets/nms.crt \
        --tls-key-file /run/secrets/nms-tls.key [--block-size 8192] [--max-blocks 65536] [--sync]
        [--handshake-timeout 2] [--max-connections 64] [--max-pending 16] [--compact]

Transport: TLS 1.3 with the lab-CA certificate in ``--cert-file`` (see `tls`), then the
session-key handshake of `auth` inside the tunnel. A connection that has not finished both
within ``--handshake-timeout`` seconds is closed; beyond ``--max-connections`` open connections,
or ``--max-pending`` still handshaking, a new connection is closed at once (`Limits`).

Blocks live in append-only 4 MiB segment files ``<data>/segments/*.seg`` of checksummed
records (`store`, `segments`; ``--sync`` fsyncs each before the reply), so what the server
acknowledged is in the container's filesystem and ``docker commit`` carries it in a few files.
``--compact`` (``NMS_COMPACT=1``) reclaims superseded records on start; the store also does so by
itself once they outweigh the live blocks and 64 MiB.

SIGTERM / SIGINT: stop accepting, let each connection finish the request it is executing, close
every connection, fsync the block log and exit 0 -- well inside Docker's 10 s stop grace period.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from .auth import AuthenticationFailed, Authenticator, Session, SharedKeyAuth
from .protocol import (
    DEFAULT_BLOCK_SIZE,
    ProtocolError,
    decode_request,
    encode_response,
    recv_frame,
    send_frame,
)
from .store import BlockError, BlockStore, LogDamaged
from .tls import server_context

__all__ = ["BlockError", "BlockStore", "Limits", "NmsServer", "main"]

log = logging.getLogger("nms.server")


@dataclass(frozen=True)
class Limits:
    """Connection bounds of the server (all configurable; see the CLI)."""

    #: seconds a new connection has to finish TLS + the NMS handshake before it is closed
    handshake_timeout: float = 2.0
    #: connections at once (handshaking or authenticated); more are closed at once
    max_connections: int = 64
    #: connections still handshaking at once; more are closed at once, so idle unauthenticated
    #: sockets can never take the places of authenticated clients
    max_pending: int = 16

    def __post_init__(self) -> None:
        if self.handshake_timeout <= 0:
            raise ValueError("the handshake timeout must be positive")
        if not 0 < self.max_pending <= self.max_connections:
            raise ValueError("need 0 < max_pending <= max_connections")


class NmsServer:
    """Threaded TLS server: one thread per admitted connection, at most ``max_connections``.

    A connection is admitted only while fewer than ``limits.max_connections`` are open and
    fewer than ``limits.max_pending`` are handshaking; otherwise it is closed at once. An
    admitted connection that has not finished TLS and the NMS handshake within
    ``limits.handshake_timeout`` seconds (absolute, however slowly the peer trickles bytes) is
    closed by the reaper thread. ``counters`` counts refused, timed-out and failed handshakes.
    """

    def __init__(self, store: BlockStore, auth: Authenticator, tls: ssl.SSLContext,
                 host: str = "0.0.0.0", port: int = 7070, limits: Limits | None = None) -> None:
        self.store = store
        self.auth = auth
        self.tls = tls
        self.limits = limits or Limits()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=64)
        self.port = int(self._sock.getsockname()[1])
        self._stopping = threading.Event()
        self._conns: set[ssl.SSLSocket] = set()
        self._pending: dict[ssl.SSLSocket, float] = {}  # handshaking -> deadline (monotonic)
        self._busy: set[ssl.SSLSocket] = set()
        self._lock = threading.Condition()
        self.counters = {"refused": 0, "handshake_timeouts": 0, "handshake_failures": 0}
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, addr = self._sock.accept()
            except OSError:
                break
            if self._stopping.is_set():
                raw.close()
                break
            with self._lock:
                full = (len(self._conns) >= self.limits.max_connections
                        or len(self._pending) >= self.limits.max_pending)
                if full:
                    self.counters["refused"] += 1
            if full:
                _abort(raw)
                continue
            try:  # no I/O yet: the handshake runs in the connection's thread
                conn = self.tls.wrap_socket(raw, server_side=True,
                                            do_handshake_on_connect=False)
            except (OSError, ValueError):
                raw.close()
                continue
            with self._lock:
                self._conns.add(conn)
                self._pending[conn] = time.monotonic() + self.limits.handshake_timeout
                self._lock.notify_all()
            threading.Thread(target=self._handle, args=(conn, addr), daemon=True).start()

    def start(self) -> NmsServer:
        self._thread = threading.Thread(target=self.serve_forever, name="nms-accept", daemon=True)
        self._thread.start()
        threading.Thread(target=self._reap, name="nms-reaper", daemon=True).start()
        return self

    def open_connections(self) -> tuple[int, int]:
        """(connections open, of which still handshaking)."""
        with self._lock:
            return len(self._conns), len(self._pending)

    def _reap(self) -> None:
        """Close every connection whose handshake deadline has passed."""
        with self._lock:
            while not self._stopping.is_set():
                now = time.monotonic()
                for conn, deadline in list(self._pending.items()):
                    if deadline <= now:
                        del self._pending[conn]
                        self.counters["handshake_timeouts"] += 1
                        _shutdown(conn)
                nxt = min(self._pending.values(), default=now + 1.0)
                self._lock.wait(timeout=max(0.01, nxt - now))

    def _handshake(self, conn: ssl.SSLSocket) -> Session | None:
        """TLS, then the NMS handshake; None when the reaper closed the connection first."""
        conn.settimeout(self.limits.handshake_timeout)
        conn.do_handshake()
        session = self.auth.server_handshake(conn)
        with self._lock:
            if self._pending.pop(conn, None) is None:
                return None  # the deadline passed meanwhile
            self._lock.notify_all()
        conn.settimeout(None)
        return session

    def _handle(self, conn: ssl.SSLSocket, addr: object) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = self._handshake(conn)
            while session is not None and not self._stopping.is_set():
                body = recv_frame(conn)
                with self._lock:
                    if self._stopping.is_set():
                        break
                    self._busy.add(conn)
                try:
                    req = decode_request(session.open(body))
                    resp = self.store.execute(req)
                    send_frame(conn, session.seal(encode_response(resp)))
                finally:
                    with self._lock:
                        self._busy.discard(conn)
                        self._lock.notify_all()
        except AuthenticationFailed as err:
            log.warning("authentication failed from %s: %s", addr, err)
            self._count_pending(conn, "handshake_failures")
        except ssl.SSLEOFError:  # closed before finishing TLS (e.g. a TCP probe): no news
            self._count_pending(conn, "handshake_failures")
        except ssl.SSLError as err:
            log.warning("TLS with %s failed: %s", addr, err.reason)
            self._count_pending(conn, "handshake_failures")
        except TimeoutError:  # one read took the whole deadline (the reaper acts on the sum)
            self._count_pending(conn, "handshake_timeouts")
        except (ProtocolError, OSError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
                self._pending.pop(conn, None)
                self._lock.notify_all()
            with contextlib.suppress(OSError):
                conn.close()

    def _count_pending(self, conn: ssl.SSLSocket, counter: str) -> None:
        """Count a handshake that ended with ``counter`` (once: not if it had finished or the
        reaper had already closed it)."""
        with self._lock:
            if self._pending.pop(conn, None) is not None:
                self.counters[counter] += 1

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, wait (up to ``grace``) for requests in flight, close. The caller then
        closes the store (which fsyncs its own files: not a machine-wide ``sync``, which would
        also wait for every other container's dirty pages -- half a second after a pull)."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
        with self._lock:
            self._lock.notify_all()
            self._lock.wait_for(lambda: not self._busy, timeout=grace)
            for conn in list(self._conns):
                _shutdown(conn)


def _shutdown(conn: ssl.SSLSocket) -> None:
    """Shut the TCP connection down under a thread blocked in it (its read sees EOF).

    ``socket.socket.shutdown`` on the descriptor, not ``SSLSocket.shutdown``: the latter drops
    the TLS object another thread is using."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn, socket.SHUT_RDWR)


def _abort(raw: socket.socket) -> None:
    """Refuse a connection at once: close it with a reset (no lingering state)."""
    with contextlib.suppress(OSError):
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nms.server", description="Network Memory Server")
    p.add_argument("--listen", default=os.environ.get("NMS_LISTEN", "0.0.0.0:7070"))
    p.add_argument("--data", type=Path, default=Path(os.environ.get("NMS_DATA", "/var/lib/nms")))
    p.add_argument("--key-file", type=Path,
                   default=Path(os.environ.get("NMS_KEY_FILE", "/run/secrets/nms.key")))
    p.add_argument("--cert-file", type=Path,
                   default=Path(os.environ.get("NMS_CERT_FILE", "/run/secrets/nms.crt")),
                   help="lab-CA TLS certificate of the NMS (PEM)")
    p.add_argument("--tls-key-file", type=Path,
                   default=Path(os.environ.get("NMS_TLS_KEY_FILE", "/run/secrets/nms-tls.key")),
                   help="its private key (mode 0600)")
    p.add_argument("--handshake-timeout", type=float,
                   default=float(os.environ.get("NMS_HANDSHAKE_TIMEOUT", Limits.handshake_timeout)))
    p.add_argument("--max-connections", type=int,
                   default=int(os.environ.get("NMS_MAX_CONNECTIONS", Limits.max_connections)))
    p.add_argument("--max-pending", type=int,
                   default=int(os.environ.get("NMS_MAX_PENDING", Limits.max_pending)),
                   help="connections still handshaking at once")
    p.add_argument("--block-size", type=int,
                   default=int(os.environ.get("NMS_BLOCK_SIZE", DEFAULT_BLOCK_SIZE)))
    p.add_argument("--max-blocks", type=int,
                   default=int(os.environ.get("NMS_MAX_BLOCKS", 65536)))
    p.add_argument("--sync", action="store_true", default=os.environ.get("NMS_SYNC") == "1")
    p.add_argument("--compact", action="store_true", default=os.environ.get("NMS_COMPACT") == "1",
                   help="reclaim superseded block records before serving")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s nms %(levelname)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    try:
        auth = SharedKeyAuth.from_file(args.key_file, "server")
    except (OSError, ValueError) as err:
        print(f"nms: cannot use key file {args.key_file}: {err}", file=sys.stderr)
        return 2
    try:
        tls = server_context(args.cert_file, args.tls_key_file)
        limits = Limits(args.handshake_timeout, args.max_connections, args.max_pending)
    except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
        print(f"nms: cannot set up TLS: {err}", file=sys.stderr)
        return 2
    try:
        store = BlockStore(args.data, args.block_size, args.max_blocks, args.sync)
        if args.compact:
            store.compact()
    except LogDamaged as err:
        print(f"nms: the block log under {args.data} is damaged: {err}; move it aside to start "
              "empty", file=sys.stderr)
        return 2
    server = NmsServer(store, auth, tls, host.strip("[]") or "0.0.0.0", int(port), limits)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    log.info("serving %d-byte blocks on %s:%d over TLS (%d in use; handshake %.1f s, "
             "%d connections, %d handshaking)", store.block_size, host, server.port,
             store.count(), limits.handshake_timeout, limits.max_connections, limits.max_pending)
    # Short waits: SIGTERM may reach one of the serving threads, and Python runs the handler
    # only when the main thread wakes.
    while not done.wait(0.25):
        pass
    server.stop()
    store.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
