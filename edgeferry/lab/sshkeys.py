"""The lab's SSH identity: an Ed25519 key pair generated on the controller (private key 0600)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def ensure_keypair(private_path: Path, comment: str) -> tuple[str, bool]:
    """Create the key pair unless it exists; return (public key line, created?)."""
    public_path = private_path.with_suffix(".pub")
    if private_path.exists() and public_path.exists():
        os.chmod(private_path, 0o600)
        return public_path.read_text().strip(), False
    key = Ed25519PrivateKey.generate()
    private_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public_line = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
        + f" {comment}"
    )
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_bytes)
    os.chmod(private_path, 0o600)
    public_path.write_text(public_line + "\n")
    return public_line, True
