"""The house style is checked in CI: ruff on Python (docstrings on the public API of domain
modules included), mypy in strict mode on `agents/` and `edgeferry/`, yamllint on YAML,
ansible-lint (production profile, empty skip list) on the playbooks and roles. Each must report
nothing. The import boundaries between rooms are checked in test_boundaries.py."""

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
        [str(BIN / "mypy"), "agents", "edgeferry"],
        [str(BIN / "yamllint"), "--strict", "."],
        [str(BIN / "ansible-lint"), "--profile", "production", "--offline"],
    ],
    ids=["ruff", "mypy", "yamllint", "ansible-lint"],
)
def test_linter_reports_nothing(cmd):
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_no_hand_written_module_over_800_lines():
    """A file that grows past 800 lines mixes concerns: split it (docs/architecture.md)."""
    long = []
    for root in ("agents", "edgeferry"):
        for path in sorted((REPO / root).rglob("*.py")):
            if "_proto" in path.parts:
                continue
            lines = len(path.read_text().splitlines())
            if lines > 800:
                long.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert long == []
