"""One deployed emulated lab shared by the lab tests that only need *a* deployed lab.

`deployed_lab` is session-scoped: it uses EDGEFERRY_TEST_INVENTORY when set (a lab that is up),
otherwise brings up lab `itdeploy` (control + three edges, 10.253.0.0/24), deploys site.yml once
and tears the lab down when the session ends. Bringing up and deploying a lab costs minutes on
the CI machine's two cores, so the deploy, least-privilege and registry tests share this one
instead of each bringing up its own. (test_experiment_lab runs through `edgeferry run`, which
brings up the default lab itself, as a user's run does.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeferry.deploy.runner import run_playbook

REPO_ROOT = Path(__file__).resolve().parents[2]

EDGEFERRY = [sys.executable, "-m", "edgeferry.cli.main"]


@pytest.fixture(scope="session")
def deployed_lab() -> Iterator[Path]:
    """The inventory of a lab deployed from this checkout (see the module doc)."""
    given = os.environ.get("EDGEFERRY_TEST_INVENTORY")
    if given:
        yield Path(given).resolve()
        return
    subprocess.run([*EDGEFERRY, "lab", "up", "--name", "itdeploy", "--subnet", "10.253.0.0/24",
                    "--edges", "3", "--no-bandwidth-check"], check=True, cwd=REPO_ROOT)
    inventory = REPO_ROOT / "inventory" / "itdeploy"
    try:
        first = run_playbook("site.yml", inventory)
        assert first.ok, first.failures
        yield inventory
    finally:
        subprocess.run([*EDGEFERRY, "lab", "down", "--name", "itdeploy"], cwd=REPO_ROOT)
