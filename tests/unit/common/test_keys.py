"""Key files of agents (agents.common.keys): private, stable across loads, refused when unsafe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.common.errors import AgentStartError
from agents.common.keys import (
    KeyFileError,
    load_or_create_identity,
    load_or_create_secret,
    load_or_create_signing_key,
    read_public_identity,
)


def test_key_files_are_private_and_stable(tmp_path: Path) -> None:
    ident = load_or_create_identity(tmp_path / "keys" / "x.key", "x")
    assert (tmp_path / "keys" / "x.key").stat().st_mode & 0o777 == 0o600
    assert load_or_create_identity(tmp_path / "keys" / "x.key", "x").public == ident.public
    secret = load_or_create_secret(tmp_path / "keys" / "s.key")
    assert len(secret) == 32 and load_or_create_secret(tmp_path / "keys" / "s.key") == secret
    (tmp_path / "keys" / "s.key").chmod(0o644)
    with pytest.raises(AgentStartError):
        load_or_create_secret(tmp_path / "keys" / "s.key")
    with pytest.raises(AgentStartError):
        load_or_create_identity(tmp_path / "keys" / "x.key", "y")


def test_exact_secret_size_and_short_secrets_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="must hold 32 bytes"):
        load_or_create_secret(path, exact=True)
    with pytest.raises(KeyFileError, match="shorter than 32 bytes"):
        load_or_create_secret(path)


def test_signing_key_is_private_stable_and_refused_when_readable(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.key"
    key = load_or_create_signing_key(path)
    assert isinstance(key, Ed25519PrivateKey)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create_signing_key(path)
    assert again.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_signing_key(path)


def test_public_identity_file_is_written_next_to_the_identity(tmp_path: Path) -> None:
    ident = load_or_create_identity(tmp_path / "x.key", "x")
    assert read_public_identity(tmp_path / "x.pub") == ident.public
    with pytest.raises(KeyFileError, match="does not exist"):
        read_public_identity(tmp_path / "missing.pub")
