"""HSE: hop-by-hop symmetric encryption of TCFDL tasks (paper section 3.1).

Each hop (instance -> local TEE proxy -> remote master's TEE proxy -> instance) has its own
AES-128-GCM key, established by attestation. A frame's header names the function, the sender,
the receiver, the hop index, the task's message id and the send time; the whole header is the
GCM associated data, so a frame whose header was changed, that is delivered to another receiver
or over another hop, or that arrives twice (replay cache) is refused. An intermediary (a master's
TEE proxy) decrypts with the incoming hop's key and re-encrypts with the next hop's key:
`forward`. The paper's Case 3 is three encryptions and three decryptions.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import frame
from agents.security.tcfdl.replay import ReplayCache

MSG_ID_SIZE = 16
MAX_HOPS = 16
_VERSION = 1


@dataclass(frozen=True)
class HseHeader:
    """What one hop's frame says about itself (all of it authenticated as associated data)."""

    version: int
    function: str
    sender: str
    receiver: str
    hop: int
    msg_id: bytes
    sent_ms: int
    nonce: bytes


@dataclass(frozen=True)
class HseMessage:
    """A frame that opened: its header and the task payload."""

    header: HseHeader
    payload: bytes


_FIXED = struct.Struct(">BBQ16s12sBBB")


def encode_header(h: HseHeader) -> bytes:
    """The header's one encoding: version, hop, sent_ms, msg_id, nonce, then the three names
    (u8 lengths, UTF-8). It is the GCM associated data; `decode_header` accepts only it."""
    names = [n.encode() for n in (h.function, h.sender, h.receiver)]
    if any(not 0 < len(n) <= frame.MAX_NAME_LEN for n in names) or not 0 <= h.sent_ms < 2**64:
        raise ProtocolError(ErrorCode.MALFORMED, "HSE header field out of range")
    return _FIXED.pack(h.version, h.hop, h.sent_ms, h.msg_id, h.nonce,
                       *(len(n) for n in names)) + b"".join(names)


def decode_header(data: bytes) -> HseHeader:
    """Parse a header (ProtocolError MALFORMED for any other byte string than an encoding)."""
    try:
        version, hop, sent_ms, msg_id, nonce, a, b, c = _FIXED.unpack_from(data)
        if len(data) != _FIXED.size + a + b + c or 0 in (a, b, c):
            raise ValueError("length")
        rest = data[_FIXED.size:]
        names = rest[:a].decode(), rest[a:a + b].decode(), rest[a + b:].decode()
    except (struct.error, ValueError):
        raise ProtocolError(ErrorCode.MALFORMED, "HSE header does not decode") from None
    if version != _VERSION:
        raise ProtocolError(ErrorCode.MALFORMED, "unknown HSE frame version")
    return HseHeader(version, *names, hop, msg_id, sent_ms, nonce)


def new_key() -> bytes:
    """A fresh AES-128 key for one hop."""
    return AESGCM.generate_key(bit_length=128)


def new_msg_id() -> bytes:
    """A fresh random message id for one task (kept across its hops)."""
    return os.urandom(MSG_ID_SIZE)


def _check_key(key: bytes) -> None:
    if len(key) != frame.AES_KEY_SIZE:
        raise ProtocolError(ErrorCode.MALFORMED, f"HSE key must be {frame.AES_KEY_SIZE} bytes")


def seal(key: bytes, *, function: str, sender: str, receiver: str, hop: int, msg_id: bytes,
         sent_ms: int, payload: bytes) -> bytes:
    """Encrypt `payload` for one hop under that hop's AES-128-GCM key; returns the frame."""
    _check_key(key)
    frame.check_payload_size(payload)
    for kind, name in (("function", function), ("sender", sender), ("receiver", receiver)):
        frame.check_name(kind, name)
    if not 0 <= hop < MAX_HOPS or len(msg_id) != MSG_ID_SIZE:
        raise ProtocolError(ErrorCode.MALFORMED, "hop index or message id out of range")
    header = HseHeader(_VERSION, function, sender, receiver, hop, msg_id, sent_ms,
                       os.urandom(frame.GCM_NONCE_SIZE))
    aad = encode_header(header)
    return frame.pack(aad, AESGCM(key).encrypt(header.nonce, payload, aad))


def read_header(data: bytes) -> HseHeader:
    """The (not yet authenticated) header of a frame, to pick the hop's key by sender."""
    header_bytes, _ = frame.unpack(data)
    return decode_header(header_bytes)


def open_frame(key: bytes, data: bytes, *, me: str, expect_sender: str, expect_hop: int,
               replay: ReplayCache | None, now_ms: int,
               expect_function: str | None = None) -> HseMessage:
    """Check and decrypt one hop's frame addressed to `me` from `expect_sender`.

    Refuses (ProtocolError): another receiver (WRONG_RECIPIENT), another sender, hop or function
    (WRONG_STEP), a frame that does not authenticate under `key` (DECRYPT_FAILED), a stale or
    replayed one (EXPIRED / REPLAY, via `replay`), oversize or malformed frames.
    """
    _check_key(key)
    header_bytes, body = frame.unpack(data)
    header = decode_header(header_bytes)
    if header.receiver != me:
        raise ProtocolError(ErrorCode.WRONG_RECIPIENT,
                            f"frame is for {header.receiver!r}, this is {me!r}")
    if header.sender != expect_sender or header.hop != expect_hop:
        raise ProtocolError(ErrorCode.WRONG_STEP,
                            f"frame from {header.sender!r} hop {header.hop}, expected "
                            f"{expect_sender!r} hop {expect_hop}")
    if expect_function is not None and header.function != expect_function:
        raise ProtocolError(ErrorCode.WRONG_STEP, f"frame is for function {header.function!r}")
    if replay is not None:
        replay.check_fresh(header.sent_ms, now_ms)
    try:
        payload = AESGCM(key).decrypt(header.nonce, body, header_bytes)
    except InvalidTag:
        raise ProtocolError(ErrorCode.DECRYPT_FAILED,
                            "HSE frame does not authenticate under this hop's key") from None
    if replay is not None:
        replay.check_and_record((header.sender, header.msg_id, header.hop), header.sent_ms, now_ms)
    return HseMessage(header, payload)


def forward(in_key: bytes, data: bytes, out_key: bytes, *, me: str, expect_sender: str,
            expect_hop: int, next_receiver: str, replay: ReplayCache | None,
            now_ms: int) -> bytes:
    """An intermediary's (TEE proxy's) step: open the incoming hop's frame, then seal the same
    task for the next hop (sender `me`, hop + 1, same function and message id)."""
    msg = open_frame(in_key, data, me=me, expect_sender=expect_sender, expect_hop=expect_hop,
                     replay=replay, now_ms=now_ms)
    h = msg.header
    return seal(out_key, function=h.function, sender=me, receiver=next_receiver, hop=h.hop + 1,
                msg_id=h.msg_id, sent_ms=now_ms, payload=msg.payload)
