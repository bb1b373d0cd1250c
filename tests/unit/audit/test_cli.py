"""`edgeferry audit` commands that work without an agent: check, token."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.audit.owners import SealedTokenVerifier
from edgeferry.cli.audit import audit
from edgeferry.errors import ConfigError


def run(*args: str):
    return CliRunner().invoke(audit, list(args))


def test_check_paper_deny_shows_the_failing_element():
    result = run("check", "--paper", "--container", "App1", "--edge", "Edge4")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "try 1: Edge4 -> DENY"
    (row,) = [line for line in lines if line.strip().startswith("cDAo")]
    assert row.split()[:5] == ["cDAo", "eDAo", "-caB", "caB", "FAILED"]
    assert "DENY: the migration is not executed" in result.output
    assert "  - Edge4: cDAo: caB is excluded" in lines
    assert not any(line.strip().startswith("cHRgpu") for line in lines)  # unconstrained hidden


def test_check_paper_permit_and_all_rows():
    result = run("check", "--paper", "--container", "App1", "--edge", "Edge3", "--all-rows")
    assert result.exit_code == 0, result.output
    assert "PERMIT: migrate to Edge3" in result.output
    assert any(line.split()[:2] == ["cHRgpu", "eHRgpu"] for line in result.output.splitlines())


def test_check_region_json_is_reproducible():
    a = run("check", "--paper", "--container", "App1", "--region", "regionD", "--seed", "5",
            "--json")
    b = run("check", "--paper", "--container", "App1", "--region", "regionD", "--seed", "5",
            "--json")
    assert a.exit_code == 0 and a.output == b.output
    data = json.loads(a.output)
    assert data["mode"] == "region" and data["chosen"] in ("Edge7", "Edge8")


def test_check_own_file(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "edges:\n"
        "  - {name: a, region: r, attributes: {eDAl: de, eHRc: 2.0}}\n"
        "  - {name: b, region: r, attributes: {eDAl: fr, eHRc: 3.0}}\n"
        "containers:\n"
        "  - {name: c, requirements: {cDAl: 'eu,-de', cHRc: 2.5}}\n")
    result = run("check", str(path), "--container", "c")
    assert result.exit_code == 0 and "PERMIT: migrate to b" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["check", "--container", "App1"], "exactly one"),
    (["check", "--paper", "--container", "App9"], "container 'App9' is not in the policy file"),
    (["check", "--paper", "--container", "App1", "--edge", "Edge1", "--region", "r"],
     "not both"),
    (["check", "--paper", "--container", "App1", "--edge", "Edge9"], "no edge named 'Edge9'"),
])
def test_check_input_errors_are_config_errors(args, message):
    result = run(*args)
    assert isinstance(result.exception, ConfigError) and message in str(result.exception)


def test_check_bad_policy_file(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("containers:\n  - {name: c, requirements: {cDAl: uk}}\n")
    result = run("check", str(path), "--container", "c")
    assert isinstance(result.exception, ConfigError)
    assert "cDAl: unknown country code 'uk'" in str(result.exception)


def test_token_command(tmp_path: Path):
    key, out = tmp_path / "owner.key", tmp_path / "alice.token"
    result = run("token", "alice", "--key-file", str(key), "--out", str(out), "--new-key")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    token = bytes.fromhex(out.read_text().strip())
    assert SealedTokenVerifier.from_file(key).verify(token) == "alice"
    again = run("token", "bob", "--key-file", str(key), "--out", str(out), "--new-key")
    assert isinstance(again.exception, ConfigError)
    key.chmod(0o644)
    loose = run("token", "bob", "--key-file", str(key), "--out", str(out))
    assert isinstance(loose.exception, ConfigError) and "chmod 600" in str(loose.exception)
