"""The house style is checked in CI: ruff on Python, yamllint on YAML, ansible-lint (production
profile, empty skip list) on the playbooks and roles. Each linter must report nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "cmd",
    [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "yamllint"), "--strict", "."],
        [str(BIN / "ansible-lint"), "--profile", "production", "--offline"],
    ],
    ids=["ruff", "yamllint", "ansible-lint"],
)
def test_linter_reports_nothing(cmd):
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
