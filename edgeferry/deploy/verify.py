"""Run the testinfra suite (tests/infra) against an inventory."""

from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgeferry import resources
from edgeferry.deploy.runner import new_run_dir
from edgeferry.errors import EnvironmentProblem

#: the testinfra host suite: a checkout's (an installed wheel does not ship the tests)
INFRA_TESTS = resources.host_tests_dir()

def multiplexing_config(ansible_cfg: Path, sockets: Path, run_dir: Path) -> Path:
    """A copy of ``ansible_cfg`` in ``run_dir`` whose SSH settings let testinfra run each
    host's checks over one connection: testinfra adds a ControlPath only when the config names
    ``[ssh_connection] control_path`` and ``[persistent_connection] control_path_dir``, so
    without them every check opens its own SSH connection. ``sockets`` is a new folder per
    run, so a lab re-created at the same addresses never meets an earlier run's connection,
    and the connections end 15 s after the suite's last command."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ansible_cfg)
    for section in ("defaults", "ssh_connection", "persistent_connection"):
        if not cfg.has_section(section):
            cfg.add_section(section)
    if cfg.has_option("defaults", "roles_path"):  # relative to the file's folder
        cfg.remove_option("defaults", "roles_path")
    cfg.set("ssh_connection", "ssh_args",
            "-o ControlMaster=auto -o ControlPersist=15s -o ServerAliveInterval=15")
    cfg.set("ssh_connection", "control_path", "%(directory)s/%%C")
    cfg.set("persistent_connection", "control_path_dir", str(sockets))
    out = run_dir / "ansible.cfg"
    with out.open("w") as fh:
        cfg.write(fh)
    return out


#: pytest-xdist workers of the suite: the checks wait on SSH round trips, not on the CPU, so
#: several hosts are checked at once (each worker shares the host's multiplexed connection)
VERIFY_WORKERS = 4


def pytest_command(inventory: Path, junit: Path, extra: list[str] | None = None,
                   workers: int | None = None) -> list[str]:
    """The pytest command line that checks every host of `inventory` over SSH, in `workers`
    processes (default VERIFY_WORKERS when pytest-xdist is installed; 0 or 1: one process)."""
    if INFRA_TESTS is None:
        raise EnvironmentProblem("the host verification suite (tests/infra) comes with a "
                                 "checkout of edgeferry, not with the installed wheel")
    if workers is None:
        workers = VERIFY_WORKERS if importlib.util.find_spec("xdist") is not None else 1
    return [
        sys.executable, "-m", "pytest", str(INFRA_TESTS),
        "--hosts=ansible://all",
        f"--ansible-inventory={inventory}",
        "-p", "no:cacheprovider",
        f"--junitxml={junit}",
        "-q", "-rfE",
        *(["-n", str(workers)] if workers > 1 else []),
        *(extra or []),
    ]

def junit_summary(junit: Path) -> dict[str, Any]:
    """Counts of a pytest junit.xml (every <testsuite> summed) and the failed tests' names."""
    import xml.etree.ElementTree as ET

    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    out: dict[str, Any] = {k: sum(int(s.get(k, 0)) for s in suites)
                           for k in ("tests", "failures", "errors", "skipped")}
    out["failed"] = [f"{case.get('classname')}::{case.get('name')}"
                     for s in suites for case in s.iter("testcase")
                     if case.find("failure") is not None or case.find("error") is not None]
    return out


def run_infra_tests(inventory: Path, extra: list[str] | None = None, *,
                    output_to_stderr: bool = False) -> tuple[int, Path]:
    """Run the suite; return pytest's exit code and the run folder holding junit.xml.
    `output_to_stderr`: pytest's own output goes to stderr (stdout stays for JSON)."""
    run_dir = new_run_dir(inventory, "verify-testinfra")
    cmd = pytest_command(inventory, run_dir / "junit.xml", extra)
    # short: a socket's path is limited to 108 bytes
    sockets = Path(tempfile.mkdtemp(prefix="ef-cp-", dir="/tmp"))
    try:
        env_cfg = {
            "ANSIBLE_CONFIG": str(multiplexing_config(resources.ansible_cfg(), sockets,
                                                      run_dir)),
            # testinfra calls ansible-inventory: use the one installed next to this interpreter
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        }
        proc = subprocess.run(cmd, cwd=resources.shipped_root(),
                              env={**os.environ, **env_cfg}, check=False,
                              stdout=sys.stderr if output_to_stderr else None)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    return proc.returncode, run_dir
