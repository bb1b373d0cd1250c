"""Pluggable NMS client authentication. Standard library only (runs inside the NMS image).

An `Authenticator` runs a handshake on a freshly connected socket and returns a `Session` that
seals and opens every later frame body. `SharedKeyAuth` (the default) works with one shared
session key K of at least 16 bytes -- provisioned at run time from a 0600 file (never baked into
the image; SSP's session key Ksc is the intended source)::

    C -> S  "NMS1" | u8 len | client id | Nc (16 random bytes)
    S -> C  Ns (16) | HMAC(K, "nms1 server" | client id | Nc | Ns)
    C -> S  HMAC(K, "nms1 client" | client id | Nc | Ns)

Both sides prove knowledge of K over both fresh nonces (mutual authentication; a recorded
handshake cannot be replayed because the other side's nonce changes). Per-direction frame keys
are HMAC(K, "nms1 c2s"|Nc|Ns) and HMAC(K, "nms1 s2c"|Nc|Ns); a sealed frame is
``u64 seq | payload | HMAC-SHA256(key, seq | payload)`` with ``seq`` counting up from 0, so a
replayed, reordered, dropped or modified frame is rejected.

All of this runs inside TLS 1.3 (`tls`), which encrypts and authenticates the server by its
lab-CA certificate. The clients hold no lab certificate, so this handshake is what
authenticates the client; it also proves that the server holds K, and the frame MACs stay as
defence in depth: a party holding some other lab certificate with the NMS name (a mis-issued
one) still can neither answer as the NMS nor inject or replay a frame without K.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
from pathlib import Path
from typing import Protocol

from .protocol import ProtocolError, recv_frame, send_frame

MAGIC = b"NMS1"
NONCE_BYTES = 16
TAG_BYTES = 32
MIN_KEY_BYTES = 16
_SEQ = struct.Struct(">Q")


class AuthenticationFailed(ProtocolError):
    """The peer did not prove knowledge of the key, or a frame failed verification."""


class Session(Protocol):
    """Seals outgoing and opens incoming frame bodies of one connection."""

    peer: str

    def seal(self, payload: bytes) -> bytes: ...

    def open(self, body: bytes) -> bytes: ...


class Authenticator(Protocol):
    def client_handshake(self, sock: socket.socket) -> Session: ...

    def server_handshake(self, sock: socket.socket) -> Session: ...


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


class HmacSession:
    """Per-connection frame protection with direction keys and sequence numbers."""

    def __init__(self, send_key: bytes, recv_key: bytes, peer: str) -> None:
        self._send_key = send_key
        self._recv_key = recv_key
        self._send_seq = 0
        self._recv_seq = 0
        self.peer = peer

    def seal(self, payload: bytes) -> bytes:
        head = _SEQ.pack(self._send_seq)
        self._send_seq += 1
        return head + payload + _mac(self._send_key, head, payload)

    def open(self, body: bytes) -> bytes:
        if len(body) < _SEQ.size + TAG_BYTES:
            raise AuthenticationFailed("sealed frame too short")
        head, payload, tag = body[: _SEQ.size], body[_SEQ.size : -TAG_BYTES], body[-TAG_BYTES:]
        if not hmac.compare_digest(tag, _mac(self._recv_key, head, payload)):
            raise AuthenticationFailed("frame MAC does not verify")
        (seq,) = _SEQ.unpack(head)
        if seq != self._recv_seq:
            raise AuthenticationFailed(f"frame sequence {seq}, expected {self._recv_seq}")
        self._recv_seq += 1
        return payload


class SharedKeyAuth:
    """Mutual HMAC challenge-response over a shared key (see the module docstring)."""

    def __init__(self, key: bytes, client_id: str = "client") -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the NMS session key must be at least {MIN_KEY_BYTES} bytes")
        cid = client_id.encode()
        if not 0 < len(cid) < 256:
            raise ValueError("client id must be 1..255 bytes")
        self._key = key
        self.client_id = client_id

    @classmethod
    def from_file(cls, path: Path, client_id: str = "client") -> SharedKeyAuth:
        """Read the key from a file that only its owner may read (mode 0600 or stricter)."""
        mode = path.stat().st_mode & 0o077
        if mode:
            raise PermissionError(f"{path} is readable by others (mode {oct(mode)}); chmod 600")
        raw = path.read_bytes()
        # hex text is trimmed; a raw key is used byte for byte (a random key may end in a byte
        # that strip() removes). Same rule as agents.security.secretfile, kept here because the
        # NMS image carries this package only (standard library only).
        try:
            key = bytes.fromhex(raw.strip().decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            key = raw
        return cls(key or raw, client_id)

    def _session_keys(self, nc: bytes, ns: bytes) -> tuple[bytes, bytes]:
        return _mac(self._key, b"nms1 c2s", nc, ns), _mac(self._key, b"nms1 s2c", nc, ns)

    def client_handshake(self, sock: socket.socket) -> Session:
        cid = self.client_id.encode()
        nc = os.urandom(NONCE_BYTES)
        send_frame(sock, MAGIC + bytes([len(cid)]) + cid + nc)
        reply = recv_frame(sock)
        if len(reply) != NONCE_BYTES + TAG_BYTES:
            raise AuthenticationFailed("bad server challenge")
        ns, proof = reply[:NONCE_BYTES], reply[NONCE_BYTES:]
        expected = _mac(self._key, b"nms1 server", cid, nc, ns)
        if not hmac.compare_digest(proof, expected):
            raise AuthenticationFailed("the server did not prove knowledge of the session key")
        send_frame(sock, _mac(self._key, b"nms1 client", cid, nc, ns))
        c2s, s2c = self._session_keys(nc, ns)
        return HmacSession(c2s, s2c, peer="server")

    def server_handshake(self, sock: socket.socket) -> Session:
        hello = recv_frame(sock)
        if len(hello) < 5 + NONCE_BYTES or hello[:4] != MAGIC:
            raise AuthenticationFailed("not an NMS1 hello")
        n = hello[4]
        cid, nc = hello[5 : 5 + n], hello[5 + n :]
        if len(cid) != n or len(nc) != NONCE_BYTES:
            raise AuthenticationFailed("malformed hello")
        ns = os.urandom(NONCE_BYTES)
        send_frame(sock, ns + _mac(self._key, b"nms1 server", cid, nc, ns))
        proof = recv_frame(sock)
        if not hmac.compare_digest(proof, _mac(self._key, b"nms1 client", cid, nc, ns)):
            raise AuthenticationFailed("the client did not prove knowledge of the session key")
        c2s, s2c = self._session_keys(nc, ns)
        return HmacSession(s2c, c2s, peer=cid.decode(errors="replace"))
