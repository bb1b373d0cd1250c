"""Typed errors for the security layer: every refusal carries a machine-readable code.

The gRPC servicers map `ProtocolError.code` to a status code and put the code name in the
status details, so a caller (or a test) can tell a replay from a forged tag without parsing text.
"""

from __future__ import annotations

from agents.common.compat import StrEnum


class ErrorCode(StrEnum):
    """Why a message, key or capability was refused."""

    MALFORMED = "MALFORMED"  # bytes do not decode canonically / field out of range
    REPLAY = "REPLAY"  # this exact message (or an older sequence number) was seen already
    BAD_SIGNATURE = "BAD_SIGNATURE"  # signature does not verify under the sender's key
    BAD_TAG = "BAD_TAG"  # capability tag (keyed or the paper's 16-bit hash) does not verify
    DECRYPT_FAILED = "DECRYPT_FAILED"  # AEAD / sealed box did not authenticate
    EXPIRED = "EXPIRED"  # capability past its expiry, or message outside the freshness window
    REVOKED = "REVOKED"  # capability (or session) revoked
    UNKNOWN_PRINCIPAL = "UNKNOWN_PRINCIPAL"  # sender / issuer / cloud / server not known
    KEY_MISMATCH = "KEY_MISMATCH"  # a self-asserted key differs from the certified one
    STALE_NONCE = "STALE_NONCE"  # echoed nonce differs from the one we sent
    WRONG_STEP = "WRONG_STEP"  # message is not the step this party expects now
    WRONG_SESSION = "WRONG_SESSION"  # message belongs to another (or no) session
    WRONG_RECIPIENT = "WRONG_RECIPIENT"  # message addressed to somebody else
    REFLECTED = "REFLECTED"  # message claims to come from the receiver itself
    NOT_AUTHORISED = "NOT_AUTHORISED"  # role / capability does not permit the operation
    INSUFFICIENT_RESOURCES = "INSUFFICIENT_RESOURCES"  # RAA: request does not fit FREE
    UNKNOWN_SERVICE = "UNKNOWN_SERVICE"  # SSP: no registered service with that name/version
    INSECURE_KEY_FILE = "INSECURE_KEY_FILE"  # key file readable by group/others
    LIMIT_REACHED = "LIMIT_REACHED"  # a bounded table is full, or a message exceeds its size bound


class ProtocolError(Exception):
    """A refusal with a machine-readable `code` and a one-line human `message`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


class CapabilityError(ProtocolError):
    """A capability was refused (bad tag, expired, revoked, not authorised...)."""
