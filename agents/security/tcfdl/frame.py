"""The wire frame of TCFDL's secure messages: a canonically encoded header (also the AEAD's
associated data) followed by the AES-128-GCM ciphertext, with bounded sizes.

    frame = u32 header length (big-endian) | header | body

The body is never copied through the canonical encoder, so a 4 MB task costs one AES pass.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TypeVar

from agents.security.errors import ErrorCode, ProtocolError

#: largest task payload (plaintext bytes) a TCFDL message may carry
MAX_TASK_SIZE = 8 * 1024 * 1024
#: largest header (names, ids, capsule) a frame may carry
MAX_HEADER_SIZE = 4096
#: AES-128-GCM: key, nonce and tag sizes
AES_KEY_SIZE = 16
GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16
#: largest frame: header + payload + tag + the length prefix
MAX_FRAME_SIZE = 4 + MAX_HEADER_SIZE + MAX_TASK_SIZE + GCM_TAG_SIZE
#: longest function / node name
MAX_NAME_LEN = 128
_LEN = struct.Struct(">I")
T = TypeVar("T")


def check_payload_size(payload: bytes) -> None:
    """Refuse a task payload over MAX_TASK_SIZE (ProtocolError LIMIT_REACHED)."""
    if len(payload) > MAX_TASK_SIZE:
        raise ProtocolError(ErrorCode.LIMIT_REACHED,
                            f"task of {len(payload)} bytes exceeds the {MAX_TASK_SIZE}-byte bound")


def check_name(kind: str, name: str) -> None:
    """Refuse an empty or over-long function / node name (ProtocolError MALFORMED)."""
    if not name or len(name) > MAX_NAME_LEN:
        raise ProtocolError(ErrorCode.MALFORMED,
                            f"{kind} name must be 1..{MAX_NAME_LEN} characters, got {len(name)}")


def pack_envelope(header: bytes) -> bytes:
    """A frame's envelope: the length prefix and the encoded header (no body)."""
    if len(header) > MAX_HEADER_SIZE:
        raise ProtocolError(ErrorCode.LIMIT_REACHED, "frame header exceeds its bound")
    return _LEN.pack(len(header)) + header


def pack(header: bytes, body: bytes) -> bytes:
    """Join an encoded header and a ciphertext body into one frame."""
    return b"".join((pack_envelope(header), body))


def split(frame: bytes) -> tuple[bytes, memoryview]:
    """A frame's envelope (length prefix and header) and a view of its body, checked as
    `unpack` checks them; ``envelope + body`` is the frame again."""
    header, body = unpack(frame)
    return bytes(memoryview(frame)[:_LEN.size + len(header)]), body


def on_envelope(frame: bytes, change: Callable[[bytes], tuple[bytes, T]]) -> tuple[bytes, T]:
    """`frame` with its envelope replaced by what ``change(envelope)`` returns first, the body
    kept as it is (EAE re-encryption changes only the envelope), and ``change``'s second value."""
    envelope, body = split(frame)
    out, extra = change(envelope)
    return b"".join((out, body)), extra


def unpack_envelope(envelope: bytes) -> bytes:
    """The header of an envelope alone (a frame's length prefix and header, without a body);
    refuses one whose prefix does not give its exact length (ProtocolError MALFORMED)."""
    if len(envelope) < _LEN.size:
        raise ProtocolError(ErrorCode.MALFORMED, "envelope shorter than its length prefix")
    (n,) = _LEN.unpack_from(envelope)
    if n > MAX_HEADER_SIZE or _LEN.size + n != len(envelope):
        raise ProtocolError(ErrorCode.MALFORMED, "envelope length does not match its prefix")
    return bytes(memoryview(envelope)[_LEN.size:])


def unpack(frame: bytes) -> tuple[bytes, memoryview]:
    """Split a frame into its header bytes and a view of its body; refuses oversize or short
    frames (ProtocolError LIMIT_REACHED / MALFORMED)."""
    if len(frame) > MAX_FRAME_SIZE:
        raise ProtocolError(ErrorCode.LIMIT_REACHED,
                            f"frame of {len(frame)} bytes exceeds the {MAX_FRAME_SIZE}-byte bound")
    if len(frame) < _LEN.size:
        raise ProtocolError(ErrorCode.MALFORMED, "frame shorter than its length prefix")
    (n,) = _LEN.unpack_from(frame)
    if n > MAX_HEADER_SIZE or _LEN.size + n + GCM_TAG_SIZE > len(frame):
        raise ProtocolError(ErrorCode.MALFORMED, "frame header length out of range")
    view = memoryview(frame)
    return bytes(view[_LEN.size:_LEN.size + n]), view[_LEN.size + n:]
