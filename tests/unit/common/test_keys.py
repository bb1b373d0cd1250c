"""Key files of agents (agents.common.keys): private, stable across loads, refused when unsafe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.common.errors import AgentStartError
from agents.common.keys import (
    KeyFileError,
    load_or_create_identity,
    load_or_create_secret,
    load_or_create_signing_key,
    read_public_identity,
)

ROOT = Path(__file__).resolve().parents[3]


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


def _keys_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.common.keys", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_deploys_key_command_creates_once_then_keeps_and_refuses_a_foreign_file(
        tmp_path: Path) -> None:
    """What the deploy runs on the RAS host before its agent starts: the agent then loads the
    same identity, and the .pub written beside it is what the node agents are given."""
    path = tmp_path / "ras" / "keys" / "registry.key"
    made = _keys_cli(str(path), "registry")
    assert (made.returncode, made.stdout.strip()) == (0, "created")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    public = read_public_identity(path.with_suffix(".pub"))
    assert load_or_create_identity(path, "registry").public == public

    again = _keys_cli(str(path), "registry")
    assert (again.returncode, again.stdout.strip()) == (0, "kept")
    assert read_public_identity(path.with_suffix(".pub")) == public

    foreign = _keys_cli(str(path), "smf")
    assert foreign.returncode == 1 and foreign.stdout == ""
    assert "belongs to 'registry'" in foreign.stderr
    assert _keys_cli(str(path)).returncode == 2  # no name: a usage error


def test_the_deploys_default_identity_names_are_the_agents_defaults() -> None:
    """The role names the identities it creates from the catalog, falling back to the agents'
    own default names: a drift would leave the RAS or SMF refusing its key at start."""
    from agents.ras.agent import RasSettings
    from agents.smf.agent import SmfSettings

    tasks = yaml.safe_load((ROOT / "roles/edgeferry_agent/tasks/ecosystem_keys.yml").read_text())
    task = next(t for t in tasks if t["name"].startswith("Create the RAS and SMF protocol"))
    defaults = {item["agent"]: item["name"] for item in task["loop"]}
    assert defaults == {"ras": RasSettings.model_fields["name"].default,
                        "smf": SmfSettings.model_fields["name"].default}
