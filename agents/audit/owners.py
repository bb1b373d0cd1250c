"""Who is the owner? Edge and container owners are identified by a capability from the SMF.

The audit agent never trusts an owner name sent in the clear: every owner-scoped request carries
an opaque token that an :class:`OwnerVerifier` turns into an owner id or rejects. The SMF
integration implements the protocol over its capabilities (seed 000, BCSL with a keyed tag).
Until then, :class:`SealedTokenVerifier` verifies tokens sealed with HMAC-SHA256 under a key the
issuer (the SMF, or an operator with ``edgeferry audit token``) shares with the audit agent:

    token = b"EFO1" | expiry_ms (u64 BE) | len (u8) | owner (utf-8) | nonce (16) | tag (32)
    tag   = HMAC-SHA256(key, "edgeferry-audit-owner-token\\0" || everything before the tag)

Tags are compared in constant time; expired tokens are refused. Tokens travel only inside mTLS.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agents.audit.domain import InvalidOwnerToken

MAGIC = b"EFO1"
_DOMAIN = b"edgeferry-audit-owner-token\x00"
_NONCE = 16
_TAG = 32
KEY_BYTES = 32
OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")


class OwnerVerifier(Protocol):
    """Turns an owner token into the owner's id, or raises InvalidOwnerToken."""

    def verify(self, token: bytes) -> str: ...


class NoOwnerVerifier:
    """The verifier of an agent configured without any: every owner-scoped request is refused."""

    def verify(self, token: bytes) -> str:
        raise InvalidOwnerToken("this audit agent has no owner verifier configured "
                                "(settings.owner_token_key); owner requests are refused")


class SealedTokenVerifier:
    """Verifies HMAC-SHA256 sealed owner tokens (the interim SMF capability format)."""

    def __init__(self, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"owner token key must be at least {KEY_BYTES} bytes")
        self._key = key
        self._clock = clock

    @classmethod
    def from_file(cls, path: Path) -> SealedTokenVerifier:
        return cls(read_key_file(path))

    def verify(self, token: bytes) -> str:
        if len(token) < len(MAGIC) + 9 + 1 + _NONCE + _TAG or not token.startswith(MAGIC):
            raise InvalidOwnerToken("owner token is malformed")
        body, tag = token[:-_TAG], token[-_TAG:]
        expected = hmac.new(self._key, _DOMAIN + body, hashlib.sha256).digest()
        if not hmac.compare_digest(tag, expected):
            raise InvalidOwnerToken("owner token does not verify (bad tag)")
        (expiry_ms,) = struct.unpack(">Q", body[4:12])
        length = body[12]
        if len(body) != 13 + length + _NONCE:
            raise InvalidOwnerToken("owner token is malformed")
        owner = body[13:13 + length].decode("utf-8", "replace")
        if self._clock() * 1000 > expiry_ms:
            raise InvalidOwnerToken("owner token has expired")
        return owner


def seal_owner_token(key: bytes, owner: str, ttl_s: float = 3600.0, *,
                     clock: Callable[[], float] = time.time) -> bytes:
    """Issue a sealed owner token valid for ``ttl_s`` seconds (issuer side)."""
    if not OWNER_RE.match(owner):
        raise ValueError(f"owner id {owner!r} must be 1-128 of letters, digits and . _ @ : -")
    name = owner.encode("utf-8")
    expiry_ms = int((clock() + ttl_s) * 1000)
    body = MAGIC + struct.pack(">Q", expiry_ms) + bytes([len(name)]) + name + \
        secrets.token_bytes(_NONCE)
    return body + hmac.new(key, _DOMAIN + body, hashlib.sha256).digest()


def read_key_file(path: Path) -> bytes:
    """A secret key file: mode 0600 or stricter, at least 32 bytes."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionError(f"key file {path} has mode {mode:04o}; run `chmod 600 {path}`")
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise ValueError(f"key file {path} must hold at least {KEY_BYTES} bytes")
    return key


def create_key_file(path: Path) -> bytes:
    """Create a new random 32-byte key file with mode 0600 (refuses to overwrite)."""
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


def token_expiry(token: bytes) -> float:
    """The expiry (epoch seconds) written in a sealed token, read without verifying its tag.

    Only for deciding when an issuer renews its own token; verification is ``verify``'s job.
    """
    if len(token) < len(MAGIC) + 9 + 1 + _NONCE + _TAG or not token.startswith(MAGIC):
        raise ValueError("not a sealed owner token")
    (expiry_ms,) = struct.unpack(">Q", token[4:12])
    return float(expiry_ms) / 1000.0


def renew_token_file(key_path: Path, token_path: Path, owner: str, ttl_s: float,
                     renew_before_s: float, *, clock: Callable[[], float] = time.time) -> bool:
    """Seal a fresh ``owner`` token into ``token_path`` (mode 0600) when the file is missing,
    unreadable, sealed for another owner or by another key, valid for longer than ``ttl_s``
    (a policy shortened since), or expiring within ``renew_before_s``. True when it wrote one.
    """
    if ttl_s <= 0 or not 0 <= renew_before_s < ttl_s:
        raise ValueError("need ttl_s > 0 and 0 <= renew_before_s < ttl_s")
    key = read_key_file(key_path)
    now = clock()
    try:
        token = Path(token_path).read_bytes()
        still_valid = SealedTokenVerifier(key, clock=clock).verify(token) == owner
        expiry = token_expiry(token)
    except (OSError, ValueError, InvalidOwnerToken):
        still_valid, expiry = False, now
    if still_valid and now + renew_before_s < expiry <= now + ttl_s + 1:
        return False
    token = seal_owner_token(key, owner, ttl_s, clock=clock)
    tmp = Path(token_path).with_name(Path(token_path).name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, token)
    finally:
        os.close(fd)
    os.replace(tmp, token_path)
    return True
