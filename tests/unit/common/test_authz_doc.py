"""docs/authorization.md is the readable form of the policy tables and must match them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agents.node.policy import NODE_POLICY

ROOT = Path(__file__).resolve().parents[3]


def test_the_authorization_document_matches_the_policy_tables() -> None:
    done = subprocess.run([sys.executable, "scripts/gen_authz_doc.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_document_shows_who_may_stop_a_container() -> None:
    # read independently of the renderer: the StopContainer row lists exactly the roles of
    # the node agent's table
    doc = (ROOT / "docs" / "authorization.md").read_text()
    header = next(line for line in doc.splitlines() if line.startswith("| RPC |"))
    roles = [c.strip() for c in header.strip("|").split("|")][1:-1]
    row = next(line for line in doc.splitlines() if line.startswith("| StopContainer |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:-1]
    shown = {role for role, cell in zip(roles, cells, strict=True) if cell}
    assert shown == set(NODE_POLICY.allowed_roles("StopContainer")) == {"smf", "controller"}
