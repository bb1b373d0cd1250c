"""Run the testinfra suite (tests/infra) against an inventory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgeferry.deploy.runner import REPO_ROOT, new_run_dir

INFRA_TESTS = REPO_ROOT / "tests" / "infra"

def pytest_command(inventory: Path, junit: Path, extra: list[str] | None = None) -> list[str]:
    """The pytest command line that checks every host of `inventory` over SSH."""
    return [
        sys.executable, "-m", "pytest", str(INFRA_TESTS),
        "--hosts=ansible://all",
        f"--ansible-inventory={inventory}",
        "-p", "no:cacheprovider",
        f"--junitxml={junit}",
        "-q", "-rfE",
        *(extra or []),
    ]

def run_infra_tests(inventory: Path, extra: list[str] | None = None) -> tuple[int, Path]:
    """Run the suite; return pytest's exit code and the run folder holding junit.xml."""
    run_dir = new_run_dir(inventory, "verify-testinfra")
    cmd = pytest_command(inventory, run_dir / "junit.xml", extra)
    env_cfg = {
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        # testinfra calls ansible-inventory: use the one installed next to this interpreter
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    }

    proc = subprocess.run(cmd, cwd=REPO_ROOT, env={**os.environ, **env_cfg}, check=False)
    return proc.returncode, run_dir
