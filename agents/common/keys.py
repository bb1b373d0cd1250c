"""Key files of agents, kept in their data directory and created at first start (mode 0600).

``python -m agents.common.keys PATH NAME`` creates a protocol identity (and its ``.pub``) ahead
of the agent's first start, for the deploy: see `main`.

The one loader of every agent's key material: the protocol identity (Ed25519 + X25519) and
public identity files, raw secrets (capability tag keys, the audit log's HMAC key) and Ed25519
signing keys (the ledger's). A file group or others can access is refused, and so is one of the
wrong size or kind; each refusal is a `KeyFileError` with a one-line message that says what to
fix (agents that report their own error type wrap it).
"""

from __future__ import annotations

import argparse
import os
import secrets
import stat
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from agents.common.errors import AgentStartError
from agents.security.crypto import Identity, PublicIdentity
from agents.security.errors import ProtocolError

SECRET_SIZE = 32
PRIVATE_MODE = 0o600


class KeyFileError(AgentStartError):
    """A key file is unsafe, malformed or belongs to somebody else."""


def _check_private(path: Path, what: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{what} {path} has mode {mode:04o}; run `chmod 600 {path}`")


def _create_private(path: Path, data: bytes) -> bool:
    """Write `data` to a new 0600 file; False (nothing written) when `path` exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_MODE)  # umask cannot widen it, but be explicit
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def load_or_create_identity(path: Path, name: str) -> Identity:
    """The protocol identity (Ed25519 + X25519) stored at `path`, generated on first use.

    Refuses a file readable by group/others and a file that belongs to another name. Writes
    the public identity next to it (``.pub``) for other agents' configuration.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if not path.exists():
            Identity.generate(name).save(path)
        identity = Identity.load(path)
    except ProtocolError as exc:
        raise KeyFileError(f"identity {path}: {exc.message}") from None
    if identity.name != name:
        raise KeyFileError(
            f"identity {path} belongs to {identity.name!r}, not {name!r}; move it away or fix "
            "the configured name"
        )
    public_path = path.with_suffix(".pub")
    if not public_path.exists():
        public_path.write_bytes(identity.public.to_bytes())
    return identity


def load_or_create_secret(
    path: Path, *, size: int = SECRET_SIZE, exact: bool = False, what: str = "secret"
) -> bytes:
    """A random secret of `size` bytes at `path` (0600), generated on first use.

    An existing file must be private and hold at least `size` bytes (exactly, with `exact`).
    """
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _create_private(path, secrets.token_bytes(size)):
        return path.read_bytes()
    _check_private(path, what)
    data = path.read_bytes()
    if exact and len(data) != size:
        raise KeyFileError(f"{what} {path} must hold {size} bytes")
    if len(data) < size:
        raise KeyFileError(f"{what} {path} is shorter than {size} bytes")
    return data


def load_or_create_signing_key(path: Path, *, what: str = "signing key") -> Ed25519PrivateKey:
    """An Ed25519 private key (PKCS#8 PEM, 0600) at `path`, generated on first use."""
    path = Path(path)
    if path.exists():
        _check_private(path, what)
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{what} {path} is not an Ed25519 key")
        return key
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    if not _create_private(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                   NoEncryption())):
        return load_or_create_signing_key(path, what=what)  # created meanwhile: load it
    return key


def read_public_identity(path: Path) -> PublicIdentity:
    """A public identity file (canonical bytes, as written next to each identity as `.pub`)."""
    try:
        return PublicIdentity.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise KeyFileError(f"public identity file {path} does not exist") from None
    except (ProtocolError, ValueError) as exc:
        raise KeyFileError(f"{path} is not a public identity file: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Create the protocol identity at PATH for NAME unless it exists; print ``created`` or
    ``kept``. Exit 1 with a one-line reason for an unsafe, malformed or foreign key file.

    The deploy runs it on the RAS and SMF hosts as the agent's own user before any agent starts,
    so the node agents of the same play can be given the public halves (the private keys never
    leave their host, and the edge hosts need not wait for the control host's agents).
    """
    parser = argparse.ArgumentParser(
        prog="python -m agents.common.keys",
        description="Create an agent's protocol identity (PATH, 0600) and its public part "
                    "(PATH with .pub) unless PATH exists.")
    parser.add_argument("path", type=Path, metavar="PATH")
    parser.add_argument("name", metavar="NAME", help="the name the identity belongs to")
    args = parser.parse_args(argv)
    existed = args.path.exists()
    try:
        load_or_create_identity(args.path, args.name)
    except KeyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("kept" if existed else "created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
