"""EAE: end-to-end hybrid encryption of TCFDL tasks (paper section 3.2).

The provider encrypts the payload once with AES-128-GCM under a fresh key and encapsulates only
that key with a proxy re-encryption scheme (`pre`); each TEE proxy on the path transforms the
capsule with its re-encryption key (`reencrypt`), never seeing the key or the plaintext; the
processing instance decapsulates the key and decrypts. The GCM associated data is the header
(scheme, function, sender, message id, send time) and the part of the capsule that re-encryption
leaves unchanged: a frame whose header or capsule was changed does not decrypt, and the
processor's replay cache refuses one that arrives twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agents.security import encoding
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import frame
from agents.security.tcfdl.pre import PartyKey, PreScheme, ReKey
from agents.security.tcfdl.replay import ReplayCache

MSG_ID_SIZE = 16
_VERSION = 1


@dataclass(frozen=True)
class EaeHeader:
    """The authenticated part of an EAE frame (the AES-GCM associated data)."""

    WIRE_NAME = "tcfdl.eae.v1"
    version: int
    scheme: str
    function: str
    sender: str
    msg_id: bytes
    sent_ms: int
    nonce: bytes


@dataclass(frozen=True)
class EaeEnvelope:
    """The frame's header: the authenticated part and the capsule the proxies transform."""

    WIRE_NAME = "tcfdl.eae.envelope.v1"
    header: EaeHeader
    capsule: bytes


@dataclass(frozen=True)
class EaeMessage:
    """A frame that opened: its header and the task payload."""

    header: EaeHeader
    payload: bytes


def new_payload_key() -> bytes:
    """A fresh AES-128 key for one task's payload."""
    return AESGCM.generate_key(bit_length=128)


def seal(scheme: PreScheme, provider: PartyKey, function_public: bytes, *, function: str,
         sender: str, msg_id: bytes, sent_ms: int, payload: bytes) -> bytes:
    """Provider: AES-128-GCM the payload under a fresh key, encapsulate the key (Enc)."""
    frame.check_payload_size(payload)
    frame.check_name("function", function)
    frame.check_name("sender", sender)
    if len(msg_id) != MSG_ID_SIZE:
        raise ProtocolError(ErrorCode.MALFORMED, f"message id must be {MSG_ID_SIZE} bytes")
    key = new_payload_key()
    header = EaeHeader(_VERSION, scheme.name, function, sender, msg_id, sent_ms,
                       os.urandom(frame.GCM_NONCE_SIZE))
    capsule = scheme.encapsulate(key, provider, function_public)
    aad = encoding.encode(header) + scheme.invariant(capsule)
    body = AESGCM(key).encrypt(header.nonce, payload, aad)
    return frame.pack(encoding.encode(EaeEnvelope(header, capsule)), body)


def _decoded(header: bytes, scheme: PreScheme) -> EaeEnvelope:
    env = encoding.decode_as(EaeEnvelope, header)
    h = env.header
    if h.version != _VERSION or len(h.nonce) != frame.GCM_NONCE_SIZE:
        raise ProtocolError(ErrorCode.MALFORMED, "unknown EAE frame version or bad nonce")
    if h.scheme != scheme.name:
        raise ProtocolError(ErrorCode.KEY_MISMATCH,
                            f"frame uses scheme {h.scheme!r}, this party {scheme.name!r}")
    PreScheme.check_capsule(env.capsule)
    return env


def read_envelope(data: bytes, scheme: PreScheme) -> tuple[EaeEnvelope, memoryview]:
    """The envelope (header and capsule) and the ciphertext body of a frame for `scheme`."""
    header, body = frame.unpack(data)
    return _decoded(header, scheme), body


def read_envelope_only(envelope: bytes, scheme: PreScheme) -> EaeEnvelope:
    """The envelope of a frame sent without its body (`frame.split`)."""
    return _decoded(frame.unpack_envelope(envelope), scheme)


def reencrypt_envelope(scheme: PreScheme, rekey: ReKey, envelope: bytes) -> bytes:
    """TEE proxy: ReEnc the capsule of a frame's envelope (`frame.split`); the ciphertext body,
    which re-encryption never changes, stays with whoever holds the frame."""
    env = read_envelope_only(envelope, scheme)
    capsule = scheme.reencrypt(rekey, env.capsule)
    return frame.pack_envelope(encoding.encode(EaeEnvelope(env.header, capsule)))


def reencrypt(scheme: PreScheme, rekey: ReKey, data: bytes) -> bytes:
    """TEE proxy: ReEnc the frame's capsule; the ciphertext passes through untouched."""
    return frame.on_envelope(data, lambda e: (reencrypt_envelope(scheme, rekey, e), None))[0]


def open_frame(scheme: PreScheme, processor: PartyKey, function_public: bytes, data: bytes, *,
               replay: ReplayCache | None, now_ms: int,
               expect_function: str | None = None) -> EaeMessage:
    """Processor: Dec the key, then decrypt and authenticate the payload.

    Refuses (ProtocolError): another function (WRONG_STEP), a wrong key or tampered frame
    (DECRYPT_FAILED), a stale or replayed frame (EXPIRED / REPLAY), oversize or malformed ones.
    """
    env, body = read_envelope(data, scheme)
    h = env.header
    if expect_function is not None and h.function != expect_function:
        raise ProtocolError(ErrorCode.WRONG_STEP, f"frame is for function {h.function!r}")
    if replay is not None:
        replay.check_fresh(h.sent_ms, now_ms)
    key = scheme.decapsulate(processor, function_public, env.capsule)
    try:
        aad = encoding.encode(h) + scheme.invariant(env.capsule)
        payload = AESGCM(key).decrypt(h.nonce, body, aad)
    except InvalidTag:
        raise ProtocolError(ErrorCode.DECRYPT_FAILED, "EAE payload does not authenticate: "
                            "wrong key or tampered frame") from None
    if replay is not None:
        replay.check_and_record((h.sender, h.msg_id), h.sent_ms, now_ms)
    return EaeMessage(h, payload)
