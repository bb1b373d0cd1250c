"""Run the testinfra suite (tests/infra) against an inventory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgeferry import resources
from edgeferry.deploy.runner import new_run_dir
from edgeferry.errors import EnvironmentProblem

#: the testinfra host suite: a checkout's (an installed wheel does not ship the tests)
INFRA_TESTS = resources.host_tests_dir()

def pytest_command(inventory: Path, junit: Path, extra: list[str] | None = None) -> list[str]:
    """The pytest command line that checks every host of `inventory` over SSH."""
    if INFRA_TESTS is None:
        raise EnvironmentProblem("the host verification suite (tests/infra) comes with a "
                                 "checkout of edgeferry, not with the installed wheel")
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
        "ANSIBLE_CONFIG": str(resources.ansible_cfg()),
        # testinfra calls ansible-inventory: use the one installed next to this interpreter
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    }

    proc = subprocess.run(cmd, cwd=resources.shipped_root(), env={**os.environ, **env_cfg},
                          check=False)
    return proc.returncode, run_dir
