"""Key material of agents kept in their data directory, created at first start (mode 0600)."""

from __future__ import annotations

import secrets
from pathlib import Path

from agents.common.errors import AgentStartError
from agents.security.crypto import (
    Identity,
    PublicIdentity,
    read_private_file,
    write_private_file,
)
from agents.security.errors import ProtocolError

SECRET_SIZE = 32


def load_or_create_identity(path: Path, name: str) -> Identity:
    """The protocol identity (Ed25519 + X25519) stored at `path`, generated on first use.

    Refuses a file readable by group/others and a file that belongs to another name.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if not path.exists():
            Identity.generate(name).save(path)
        identity = Identity.load(path)
    except ProtocolError as exc:
        raise AgentStartError(f"identity {path}: {exc.message}") from None
    if identity.name != name:
        raise AgentStartError(
            f"identity {path} belongs to {identity.name!r}, not {name!r}; move it away or fix "
            "the configured name"
        )
    public_path = path.with_suffix(".pub")
    if not public_path.exists():
        public_path.write_bytes(identity.public.to_bytes())
    return identity


def load_or_create_secret(path: Path) -> bytes:
    """A 256-bit secret (capability tag key) at `path`, generated on first use, mode 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if not path.exists():
            write_private_file(path, secrets.token_bytes(SECRET_SIZE))
        data = read_private_file(path)
    except ProtocolError as exc:
        raise AgentStartError(f"secret {path}: {exc.message}") from None
    if len(data) < SECRET_SIZE:
        raise AgentStartError(f"secret {path} is shorter than {SECRET_SIZE} bytes")
    return data


def read_public_identity(path: Path) -> PublicIdentity:
    """A public identity file (canonical bytes, as written next to each identity as `.pub`)."""
    try:
        return PublicIdentity.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise AgentStartError(f"public identity file {path} does not exist") from None
    except (ProtocolError, ValueError) as exc:
        raise AgentStartError(f"{path} is not a public identity file: {exc}") from None
