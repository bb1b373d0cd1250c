"""Crypto primitives for the security protocols (all from the `cryptography` package).

Choices (and why):
- Identities hold an **Ed25519** signing key and an **X25519** encryption key rather than RSA:
  32-byte keys that fit in capabilities-sized messages, constant-time implementations, fast key
  generation (tests and labs create many identities), deterministic signatures (no RNG needed at
  signing time), and no OAEP plaintext-size limit since encryption is hybrid anyway.
- Public-key encryption ("aenc" in the papers) is an ECIES-style **sealed box**: an ephemeral
  X25519 key agreement, HKDF-SHA256 (salt = ephemeral || recipient public key, so the key is bound
  to both), then **AES-256-GCM** with caller-supplied associated data. AES-GCM because both target
  platforms have AES in hardware (x86 AES-NI, ARMv8 crypto extensions on Jetson).
- Session encryption ("enc" under Ksc / SESS KEY) is AES-256-GCM with a random 96-bit nonce per
  message and associated data that the protocol layer builds from the session id, step number,
  sequence number and direction, so a ciphertext cannot be moved to another slot.
- Tag/nonce comparisons go through `constant_time_equal` (hmac.compare_digest).
- Private key files are written 0600 (created with that mode, never chmod-ed afterwards) and
  refused on load when group/other can read them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agents.security import encoding
from agents.security.errors import ErrorCode, ProtocolError

KEY_SIZE = 32
GCM_NONCE_SIZE = 12
NONCE_SIZE = 16
SESSION_ID_SIZE = 16
SEAL_VERSION = 1
_SEAL_INFO = b"edgeferry/sealed-box/v1"
_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw


def new_nonce(size: int = NONCE_SIZE) -> bytes:
    """A fresh random nonce (CSPRNG)."""
    return secrets.token_bytes(size)


def new_session_id() -> bytes:
    """A fresh random 128-bit session id."""
    return secrets.token_bytes(SESSION_ID_SIZE)


def new_symmetric_key() -> bytes:
    """A fresh random 256-bit key."""
    return secrets.token_bytes(KEY_SIZE)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare secrets/tags without leaking where they differ."""
    return hmac.compare_digest(a, b)


def derive_key(secret: bytes, *, salt: bytes, info: bytes, length: int = KEY_SIZE) -> bytes:
    """HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


@dataclass(frozen=True)
class PublicIdentity:
    """A principal's name and public keys (Ed25519 verify key, X25519 encryption key)."""

    WIRE_NAME = "PublicIdentity"

    name: str
    sign_key: bytes
    enc_key: bytes

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 255:
            raise ValueError("identity name must be 1..255 characters")
        if len(self.sign_key) != KEY_SIZE or len(self.enc_key) != KEY_SIZE:
            raise ValueError("public keys must be 32 bytes")

    def to_bytes(self) -> bytes:
        return encoding.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicIdentity:
        return encoding.decode_as(cls, data)

    def fingerprint(self) -> bytes:
        """SHA-256 over the canonical encoding (name and both keys)."""
        return hashlib.sha256(self.to_bytes()).digest()

    def same_keys(self, other: PublicIdentity) -> bool:
        """Constant-time check that `other` is this identity (name and both keys)."""
        return constant_time_equal(self.fingerprint(), other.fingerprint())

    def verify(self, data: bytes, signature: bytes) -> None:
        """Raise ProtocolError(BAD_SIGNATURE) unless `signature` is ours over `data`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.sign_key).verify(signature, data)
        except (InvalidSignature, ValueError) as exc:
            raise ProtocolError(
                ErrorCode.BAD_SIGNATURE, f"signature does not verify for {self.name!r}"
            ) from exc

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt to this identity (sealed box); `aad` is authenticated, not encrypted."""
        return seal(self.enc_key, plaintext, aad)


class Identity:
    """A principal's private keys. Never serialised except through `save`."""

    def __init__(
        self, name: str, sign_private: Ed25519PrivateKey, enc_private: X25519PrivateKey
    ) -> None:
        self._sign = sign_private
        self._enc = enc_private
        self.public = PublicIdentity(
            name=name,
            sign_key=sign_private.public_key().public_bytes(_RAW, _RAW_PUB),
            enc_key=enc_private.public_key().public_bytes(_RAW, _RAW_PUB),
        )

    @property
    def name(self) -> str:
        return self.public.name

    @classmethod
    def generate(cls, name: str) -> Identity:
        return cls(name, Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        return self._sign.sign(data)

    def open_sealed(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Decrypt a sealed box addressed to us; DECRYPT_FAILED if it does not authenticate."""
        return open_sealed(self._enc, blob, aad)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """Both private keys as PKCS#8 PEM blocks (encrypted when a passphrase is given)."""
        algo: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        header = f"# edgeferry identity {self.name}\n".encode()
        fmt = serialization.PrivateFormat.PKCS8
        pem = serialization.Encoding.PEM
        return (
            header
            + self._sign.private_bytes(pem, fmt, algo)
            + self._enc.private_bytes(pem, fmt, algo)
        )

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> Identity:
        first_line, _, rest = data.partition(b"\n")
        prefix = b"# edgeferry identity "
        if not first_line.startswith(prefix):
            raise ProtocolError(ErrorCode.MALFORMED, "not an edgeferry identity file")
        name = first_line[len(prefix) :].decode("utf-8")
        end = b"-----END ENCRYPTED PRIVATE KEY-----" if passphrase else b"-----END PRIVATE KEY-----"
        cut = rest.find(end)
        if cut < 0:
            raise ProtocolError(ErrorCode.MALFORMED, "identity file has no private key block")
        cut += len(end)
        try:
            sign_key = serialization.load_pem_private_key(rest[:cut], passphrase)
            enc_key = serialization.load_pem_private_key(rest[cut:].lstrip(), passphrase)
        except (ValueError, TypeError) as exc:
            raise ProtocolError(ErrorCode.MALFORMED, f"cannot load identity keys: {exc}") from exc
        if not isinstance(sign_key, Ed25519PrivateKey) or not isinstance(enc_key, X25519PrivateKey):
            raise ProtocolError(ErrorCode.MALFORMED, "identity keys are not Ed25519 + X25519")
        return cls(name, sign_key, enc_key)

    def save(self, path: str | Path, passphrase: bytes | None = None) -> None:
        """Write the private keys to `path` with mode 0600 (refuses to overwrite)."""
        write_private_file(Path(path), self.to_pem(passphrase))

    @classmethod
    def load(cls, path: str | Path, passphrase: bytes | None = None) -> Identity:
        """Read an identity; INSECURE_KEY_FILE when group or others may read the file."""
        return cls.from_pem(read_private_file(Path(path)), passphrase)


def write_private_file(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 and write `data`; refuses to overwrite an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # umask cannot widen it, but be explicit
        os.write(fd, data)
    finally:
        os.close(fd)


def read_private_file(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others can access."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ProtocolError(
            ErrorCode.INSECURE_KEY_FILE,
            f"{path} has mode {stat.S_IMODE(mode):04o}; run 'chmod 600 {path}'",
        )
    return path.read_bytes()


def seal(recipient_enc_key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """ECIES-style sealed box: version(1) || ephemeral X25519 public (32) || AES-GCM ct+tag."""
    ephemeral = X25519PrivateKey.generate()
    eph_pub = ephemeral.public_key().public_bytes(_RAW, _RAW_PUB)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_enc_key))
    okm = derive_key(
        shared, salt=eph_pub + recipient_enc_key, info=_SEAL_INFO, length=KEY_SIZE + GCM_NONCE_SIZE
    )
    ct = AESGCM(okm[:KEY_SIZE]).encrypt(okm[KEY_SIZE:], plaintext, aad)
    return bytes([SEAL_VERSION]) + eph_pub + ct


def open_sealed(private: X25519PrivateKey, blob: bytes, aad: bytes = b"") -> bytes:
    """Open a box made by `seal` for ``private``'s public key with the same ``aad``; return the
    plaintext, or raise `ProtocolError` (DECRYPT_FAILED) if it is truncated, of another
    version, or does not authenticate."""
    if len(blob) < 1 + KEY_SIZE + 16 or blob[0] != SEAL_VERSION:
        raise ProtocolError(ErrorCode.DECRYPT_FAILED, "sealed box is truncated or unknown version")
    eph_pub = blob[1 : 1 + KEY_SIZE]
    my_pub = private.public_key().public_bytes(_RAW, _RAW_PUB)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError as exc:  # all-zero shared secret (small-order point)
        raise ProtocolError(ErrorCode.DECRYPT_FAILED, "invalid ephemeral key") from exc
    okm = derive_key(
        shared, salt=eph_pub + my_pub, info=_SEAL_INFO, length=KEY_SIZE + GCM_NONCE_SIZE
    )
    try:
        return AESGCM(okm[:KEY_SIZE]).decrypt(okm[KEY_SIZE:], blob[1 + KEY_SIZE :], aad)
    except InvalidTag as exc:
        raise ProtocolError(ErrorCode.DECRYPT_FAILED, "sealed box does not authenticate") from exc


class SessionCipher:
    """AES-256-GCM under a session key; output = nonce(12) || ciphertext || tag(16)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("session key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"edgeferry/key-id" + key).digest()[:8]

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(GCM_NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < GCM_NONCE_SIZE + 16:
            raise ProtocolError(ErrorCode.DECRYPT_FAILED, "ciphertext truncated")
        try:
            return self._aead.decrypt(blob[:GCM_NONCE_SIZE], blob[GCM_NONCE_SIZE:], aad)
        except InvalidTag as exc:
            raise ProtocolError(
                ErrorCode.DECRYPT_FAILED, "session ciphertext does not authenticate"
            ) from exc
