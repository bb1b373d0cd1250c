"""NMS wire format. Standard library only (this module runs inside the NMS image).

Every frame on the TCP stream is ``u32 length | body``. After the authentication handshake
(`auth`) each body is sealed by the session (sequence number + MAC). Inside, a request is::

    u8 op | u64 request id | op-specific arguments

and a response is ``u8 status | u64 request id | result``. All integers are big-endian.

Ops and arguments:

* ``ALLOC``  16-byte allocation token -> u64 block id. The token makes ALLOC idempotent: a
  retried ALLOC with the same token returns the same block (a client reconnecting after a
  migration never leaks or double-allocates a block).
* ``WRITE``  u64 block id | exactly ``block_size`` bytes -> nothing.
* ``READ``   u64 block id -> ``block_size`` bytes.
* ``FREE``   u64 block id -> nothing.
* ``STAT``   -> u32 block size | u64 blocks in use | u64 capacity in blocks.
* ``PING``   -> nothing.
"""

from __future__ import annotations

import enum
import socket
import struct
from dataclasses import dataclass

DEFAULT_BLOCK_SIZE = 8192
MAX_FRAME = 4 * 1024 * 1024
ALLOC_TOKEN_BYTES = 16

_LEN = struct.Struct(">I")
_HEAD = struct.Struct(">BQ")
_U64 = struct.Struct(">Q")
_STAT = struct.Struct(">IQQ")


class Op(enum.IntEnum):
    ALLOC = 1
    WRITE = 2
    READ = 3
    FREE = 4
    STAT = 5
    PING = 6


class Status(enum.IntEnum):
    OK = 0
    NOT_FOUND = 1
    BAD_REQUEST = 2
    NO_SPACE = 3
    SHUTTING_DOWN = 4
    INTERNAL = 5


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame or message."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection (EOF between or inside frames)."""


@dataclass(frozen=True)
class Request:
    op: Op
    request_id: int
    args: bytes = b""


@dataclass(frozen=True)
class Response:
    status: Status
    request_id: int
    result: bytes = b""


@dataclass(frozen=True)
class StatInfo:
    block_size: int
    blocks_used: int
    capacity_blocks: int

    def encode(self) -> bytes:
        return _STAT.pack(self.block_size, self.blocks_used, self.capacity_blocks)

    @classmethod
    def decode(cls, data: bytes) -> StatInfo:
        if len(data) != _STAT.size:
            raise ProtocolError("bad STAT result length")
        return cls(*_STAT.unpack(data))


def encode_request(req: Request) -> bytes:
    return _HEAD.pack(int(req.op), req.request_id) + req.args


def decode_request(body: bytes) -> Request:
    if len(body) < _HEAD.size:
        raise ProtocolError("request shorter than its header")
    op, rid = _HEAD.unpack_from(body)
    try:
        return Request(Op(op), rid, body[_HEAD.size :])
    except ValueError:
        raise ProtocolError(f"unknown op {op}") from None


def encode_response(resp: Response) -> bytes:
    return _HEAD.pack(int(resp.status), resp.request_id) + resp.result


def decode_response(body: bytes) -> Response:
    if len(body) < _HEAD.size:
        raise ProtocolError("response shorter than its header")
    status, rid = _HEAD.unpack_from(body)
    try:
        return Response(Status(status), rid, body[_HEAD.size :])
    except ValueError:
        raise ProtocolError(f"unknown status {status}") from None


def u64(value: int) -> bytes:
    return _U64.pack(value)


def read_u64(data: bytes, offset: int = 0) -> int:
    if len(data) < offset + 8:
        raise ProtocolError("truncated u64")
    return int(_U64.unpack_from(data, offset)[0])


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionClosed("connection closed by peer")
        buf += chunk
    return bytes(buf)


def send_frame(sock: socket.socket, body: bytes) -> None:
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    sock.sendall(_LEN.pack(len(body)) + body)


def recv_frame(sock: socket.socket) -> bytes:
    (length,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    return _recv_exact(sock, length)
