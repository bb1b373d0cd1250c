"""Moving a container image between two lab hosts over mutual TLS, for BloSM's Figure 11 paths
(`edgeferry.experiments.scenarios.ledger_migration`): source -> destination (direct, ledger),
source -> cloud and cloud -> destination or back to the source (central).

One transfer is one TCP connection:

- the receiver (`Receiver`) listens once on its lab address with its host certificate, requires
  a client certificate from the lab CA whose CN is one of ``senders`` (``smf.<host>``), reads one
  header line (JSON, at most `MAX_HEADER` bytes) carrying the controller's one-time ``token``,
  then length-prefixed chunks (4-byte big-endian length, a zero length ends the stream) into its
  sink -- ``docker load`` or a file (mode 0600) -- and answers one JSON line: bytes, SHA-256 of
  the stream, and the image ``docker load`` named;
- the sender (`send`) checks the receiver's certificate against the lab CA and the address it
  dialled, streams ``docker save <image>`` or a file, and returns the receiver's answer.

Bounded: the header, each chunk (`MAX_CHUNK`) and the whole stream (the receiver's
``max_bytes``) have limits; a receiver serves one connection and one token, so a recorded
connection cannot be replayed to it, and a wrong token or sender is refused before any byte
reaches the sink.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

MAX_HEADER = 4096
MAX_CHUNK = 1 << 20
_LEN = struct.Struct(">I")


class TransferError(Exception):
    """A transfer refused or broken (the message says which side and why)."""


@dataclass(frozen=True)
class Tls:
    ca_cert: str
    cert: str
    key: str


def _server_context(tls: Tls) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert, tls.key)
    ctx.load_verify_locations(tls.ca_cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _client_context(tls: Tls) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert, tls.key)
    ctx.load_verify_locations(tls.ca_cert)
    return ctx


def peer_cn(sock: ssl.SSLSocket) -> str:
    cert: Any = sock.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for pair in rdn:
            if pair[0] == "commonName":
                return str(pair[1])
    return ""


def _read_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise TransferError(f"stream ended after {len(buf)} of {n} bytes")
        buf += part
    return bytes(buf)


def _read_line(sock: ssl.SSLSocket, limit: int) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        if len(buf) >= limit:
            raise TransferError(f"header longer than {limit} bytes")
        part = sock.recv(1)
        if not part:
            raise TransferError("connection closed inside the header")
        buf += part
    return bytes(buf)


@dataclass
class Receiver:
    """One single-use receiving end (module docstring). `start()` binds and returns at once;
    `wait()` gives the outcome."""

    address: str
    port: int
    tls: Tls
    token: str
    senders: tuple[str, ...]
    max_bytes: int
    sink_file: str | None = None  # None: ``docker load``
    accept_timeout_s: float = 600.0
    result: dict[str, Any] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _listener: socket.socket | None = None

    def start(self) -> Receiver:
        if not self.token or len(self.token) < 16:
            raise TransferError("a transfer needs a one-time token of at least 16 characters")
        lst = socket.create_server((self.address, self.port), reuse_port=False)
        lst.settimeout(self.accept_timeout_s)
        self._listener = lst
        self._thread = threading.Thread(target=self._serve, name=f"receive-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float) -> dict[str, Any]:
        assert self._thread is not None, "start() first"
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TransferError(f"no transfer finished on port {self.port} within {timeout_s} s")
        if "error" in self.result:
            raise TransferError(self.result["error"])
        return self.result

    def _serve(self) -> None:
        assert self._listener is not None
        try:
            try:
                raw, _ = self._listener.accept()
            finally:
                self._listener.close()
            raw.settimeout(self.accept_timeout_s)
            with _server_context(self.tls).wrap_socket(raw, server_side=True) as sock:
                self.result = self._receive(sock)
        except Exception as err:  # the controller reads it through wait()
            self.result = {"error": f"receiver: {type(err).__name__}: {err}"[:500]}

    def _receive(self, sock: ssl.SSLSocket) -> dict[str, Any]:
        cn = peer_cn(sock)
        if cn not in self.senders:
            sock.sendall(json.dumps({"ok": False, "error": f"sender {cn!r} not allowed"}
                                    ).encode() + b"\n")
            raise TransferError(f"refused sender {cn!r} (allowed: {', '.join(self.senders)})")
        header = json.loads(_read_line(sock, MAX_HEADER))
        if not hmac.compare_digest(str(header.get("token", "")), self.token):
            sock.sendall(b'{"ok": false, "error": "wrong token"}\n')
            raise TransferError(f"refused a wrong token from {cn}")
        start = time.monotonic()
        digest = hashlib.sha256()
        total = 0
        proc: subprocess.Popen[bytes] | None = None
        sink: IO[bytes]
        if self.sink_file is None:
            proc = subprocess.Popen(["docker", "load"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proc.stdin is not None
            sink = proc.stdin
        else:
            fd = os.open(self.sink_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            sink = os.fdopen(fd, "wb")
        try:
            while True:
                (n,) = _LEN.unpack(_read_exact(sock, _LEN.size))
                if n == 0:
                    break
                if n > MAX_CHUNK or total + n > self.max_bytes:
                    raise TransferError(f"stream over its limit ({self.max_bytes} bytes)")
                chunk = _read_exact(sock, n)
                digest.update(chunk)
                sink.write(chunk)
                total += n
        except BaseException:
            if proc is not None:
                proc.kill()
            raise
        finally:
            if proc is None:
                sink.close()
        loaded = ""
        if proc is not None:  # communicate() closes its stdin: the end of the stream
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise TransferError(f"docker load failed: {err.decode(errors='replace')[-300:]}")
            for line in out.decode(errors="replace").splitlines():
                if line.startswith("Loaded image"):
                    loaded = line.split(":", 1)[1].strip()
        answer = {"ok": True, "bytes": total, "sha256": digest.hexdigest(), "sender": cn,
                  "loaded": loaded, "sink_s": time.monotonic() - start}
        sock.sendall(json.dumps(answer).encode() + b"\n")
        return answer


def send(address: str, port: int, tls: Tls, token: str, *, image: str | None = None,
         path: str | None = None, timeout_s: float = 600.0) -> dict[str, Any]:
    """Stream ``docker save image`` or the file `path` to a `Receiver`; its answer, with the
    sender's own byte count and SHA-256 (which must agree)."""
    if (image is None) == (path is None):
        raise TransferError("send needs exactly one of image and path")
    proc: subprocess.Popen[bytes] | None = None
    src: IO[bytes]
    if image is not None:
        proc = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None
        src = proc.stdout
    else:
        assert path is not None
        src = open(path, "rb")  # noqa: SIM115 - closed below
    digest = hashlib.sha256()
    total = 0
    try:
        raw = socket.create_connection((address, port), timeout=timeout_s)
        with _client_context(tls).wrap_socket(raw, server_hostname=address) as sock:
            sock.sendall(json.dumps({"token": token}).encode() + b"\n")
            while True:
                chunk = src.read(MAX_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                sock.sendall(_LEN.pack(len(chunk)) + chunk)
                total += len(chunk)
            sock.sendall(_LEN.pack(0))
            line = _read_line(sock, MAX_HEADER)
    finally:
        src.close()
        if proc is not None:
            proc.wait(timeout=60)
    if proc is not None and proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise TransferError(f"docker save {image} failed: {err[-300:]}")
    answer: dict[str, Any] = json.loads(line)
    if not answer.get("ok"):
        raise TransferError(f"the receiver refused: {answer.get('error')}")
    if answer["bytes"] != total or answer["sha256"] != digest.hexdigest():
        raise TransferError(f"sent {total} bytes, the receiver got {answer['bytes']} "
                            "(or a different SHA-256)")
    return {**answer, "sent_bytes": total}


def file_bytes(path: str) -> int:
    return Path(path).stat().st_size
