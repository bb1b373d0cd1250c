"""One deployed emulated lab shared by the lab tests that only need *a* deployed lab.

`deployed_lab` is session-scoped: it uses EDGEFERRY_TEST_INVENTORY when set (a lab that is up),
otherwise brings up lab `itdeploy` (control + three edges, 10.253.0.0/24) from a lab file
(`deployed_lab_file`), deploys it once the way `edgeferry deploy` does (leaving the deploy stamps)
and tears the lab down when the session ends. Bringing up and deploying a lab costs minutes on
the CI machine's two cores, so the deploy, experiment, least-privilege and registry tests share
this one instead of each bringing up its own. (test_experiment_lab runs `edgeferry run` against
the same lab file; the installed-wheel test brings up a lab from nothing, as a user's run does.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edgeferry.lab.config import load_spec

REPO_ROOT = Path(__file__).resolve().parents[2]

EDGEFERRY = [sys.executable, "-m", "edgeferry.cli.main"]
SHARED_LAB, SHARED_SUBNET, SHARED_EDGES = "itdeploy", "10.253.0.0/24", 3


@pytest.fixture(scope="session")
def deployed_lab_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab file of the shared lab: the default lab's profiles and host layout with three
    edges, named `itdeploy` on 10.253.0.0/24 (EDGEFERRY_TEST_LAB_FILE with
    EDGEFERRY_TEST_INVENTORY: the file of a lab that is up)."""
    given = os.environ.get("EDGEFERRY_TEST_LAB_FILE")
    if given:
        return Path(given).resolve()
    spec = load_spec(name=SHARED_LAB, subnet=SHARED_SUBNET, edges=SHARED_EDGES)
    path = tmp_path_factory.mktemp("shared-lab") / "itdeploy.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True,
                                                   exclude_defaults=True), sort_keys=False))
    assert load_spec(path) == spec, "the written lab file must describe the same lab"
    return path


def claim_for_this_worker(tmp_path_factory: pytest.TempPathFactory) -> None:
    """In a parallel run (`./edgeferry.sh test`: pytest-xdist workers) every test of the shared
    lab must be in this worker's group (tests/conftest.py); a second worker asking for the lab
    means the groups do not hold, and it must not bring up a lab of the same name beside it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    run_dir = tmp_path_factory.getbasetemp().parent  # one per run, shared by its workers
    try:
        fd = os.open(run_dir / "shared-lab.claimed", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        owner = (run_dir / "shared-lab.claimed").read_text()
        pytest.fail(f"the shared lab belongs to worker {owner} of this run, and {worker} asked "
                    "for it too: the xdist groups are not holding (see tests/conftest.py; "
                    "pytest >= 9.2 with pytest-xdist 3.8 drops them)", pytrace=False)
    os.write(fd, worker.encode())
    os.close(fd)


@pytest.fixture(scope="session")
def deployed_lab(deployed_lab_file: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Path]:
    """The inventory of a lab deployed from this checkout (see the module doc)."""
    given = os.environ.get("EDGEFERRY_TEST_INVENTORY")
    if given:
        yield Path(given).resolve()
        return
    claim_for_this_worker(tmp_path_factory)
    # a test run that was killed (a session ending, ^C) leaves its lab behind, owned by its
    # workspace; the name is this suite's, so a new run removes it first (`lab down` by name)
    subprocess.run([*EDGEFERRY, "lab", "down", "--name", SHARED_LAB], cwd=REPO_ROOT, check=True)
    inventory = REPO_ROOT / "inventory" / SHARED_LAB
    try:
        subprocess.run([*EDGEFERRY, "lab", "up", "--lab-file", str(deployed_lab_file),
                        "--no-bandwidth-check"], check=True, cwd=REPO_ROOT)
        # through the command, as a user deploys: a process of its own, so ansible-runner's
        # fork never happens in this test process (its gRPC threads from earlier tests made the
        # forked child die before exec: "epoll_wait error: Bad file descriptor")
        done = subprocess.run([*EDGEFERRY, "deploy", "-i", str(inventory), "--json"],
                              cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        first = json.loads(done.stdout)
        assert first["skipped"] is False and first["ok"], first
        yield inventory
    finally:
        subprocess.run([*EDGEFERRY, "lab", "down", "--name", SHARED_LAB], cwd=REPO_ROOT)
