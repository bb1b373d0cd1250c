"""The answer to an offloaded task, end to end from the processing instance to the client.

The client puts a fresh AES-128 reply key in front of the task's data inside the encrypted task
(`wrap_task`); the instance seals its output under that key with AES-128-GCM, the task's message
id bound as associated data (`seal_reply`); the masters forward the reply without a key. Under
the ``none`` scheme there is no reply key and the output travels as it is.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import frame

REPLY_KEY_SIZE = frame.AES_KEY_SIZE
_AAD = b"tcfdl-reply-v1\0"


def wrap_task(reply_key: bytes, data: bytes) -> bytes:
    """The task plaintext: reply key, then the data."""
    if len(reply_key) != REPLY_KEY_SIZE:
        raise ProtocolError(ErrorCode.MALFORMED, "reply key must be 16 bytes")
    return reply_key + data


def unwrap_task(plain: bytes) -> tuple[bytes, bytes]:
    """(reply key, data) of a task plaintext."""
    if len(plain) < REPLY_KEY_SIZE:
        raise ProtocolError(ErrorCode.MALFORMED, "task plaintext shorter than its reply key")
    return plain[:REPLY_KEY_SIZE], plain[REPLY_KEY_SIZE:]


def seal_reply(key: bytes, msg_id: bytes, output: bytes) -> bytes:
    """nonce || AES-128-GCM(output), the message id as associated data."""
    nonce = os.urandom(frame.GCM_NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, output, _AAD + msg_id)


def open_reply(key: bytes, msg_id: bytes, data: bytes) -> bytes:
    """The output of a sealed reply (ProtocolError DECRYPT_FAILED when it does not
    authenticate, LIMIT_REACHED when oversize)."""
    if len(data) > frame.MAX_FRAME_SIZE:
        raise ProtocolError(ErrorCode.LIMIT_REACHED, "reply exceeds its bound")
    try:
        return AESGCM(key).decrypt(data[:frame.GCM_NONCE_SIZE], data[frame.GCM_NONCE_SIZE:],
                                   _AAD + msg_id)
    except (InvalidTag, ValueError):
        raise ProtocolError(ErrorCode.DECRYPT_FAILED,
                            "the reply does not authenticate under this task's key") from None
