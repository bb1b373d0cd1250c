"""A real, small emulated lab: bring-up, Ansible over SSH, shaping accuracy, idempotence, teardown.

Needs root and a Docker engine (CI is root and `./edgeferry.sh test` starts dockerd).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from edgeferry.lab.config import load_spec
from edgeferry.lab.engine import LABEL_LAB
from edgeferry.lab.links.lab import BANDWIDTH_TOLERANCE
from edgeferry.lab.provider import EmulatedLab
from edgeferry.lab.state import LabState

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB = "itest"
SUBNET = "10.252.0.0/24"


def edgeferry(*args: str, home: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGEFERRY_HOME": str(home), "COLUMNS": "200"}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [str(BIN / "edgeferry"), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=800,
        **kwargs,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("lab-home")


@pytest.fixture(scope="module")
def lab(home):
    # a killed earlier run leaves lab `itest` behind, owned by its workspace: remove it by name
    leftover = edgeferry("lab", "down", "--name", LAB, home=home)
    assert leftover.returncode == 0, leftover.stdout + leftover.stderr
    first = edgeferry("lab", "up", "--name", LAB, "--subnet", SUBNET, "--edges", "3", home=home)
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        yield first
    finally:
        edgeferry("lab", "down", "--name", LAB, home=home)


def test_first_up_builds_hosts_and_records_measured_bandwidth(lab, home):
    assert "changed" in lab.stdout
    state = json.loads((home / ".edgeferry/labs/itest/state.json").read_text())
    assert set(state["hosts"]) == {"control", "edge1", "edge2", "edge3"}
    assert [state["hosts"][h]["profile"] for h in ("edge1", "edge2", "edge3")] == [
        "x86", "x86", "jetson"]
    assert set(state["bandwidth"]) == {"edge1", "edge2", "edge3"}
    for host, entry in state["bandwidth"].items():
        for direction in ("up", "down"):
            measured = entry[direction]
            assert len(measured["samples_bps"]) >= 3
            assert measured["stdev_bps"] >= 0
            error = abs(measured["mean_bps"] - entry["configured_bps"]) / entry["configured_bps"]
            assert error <= BANDWIDTH_TOLERANCE, (host, direction, measured["mean_bps"])


def test_every_host_answers_ansible_ping(lab, home):
    inventory = home / "inventory" / LAB
    result = subprocess.run(
        [str(BIN / "ansible"), "-i", str(inventory), "all", "-m", "ansible.builtin.ping", "-o"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for host in ("control", "edge1", "edge2", "edge3"):
        assert f"{host} | SUCCESS" in result.stdout


def test_hosts_have_their_limits_and_own_identity(lab, home):
    client = docker.from_env()
    edge = client.containers.get("ef-itest-edge3")  # the jetson-class edge
    control = client.containers.get("ef-itest-control")
    spec = load_spec(edges=3)
    assert edge.attrs["HostConfig"]["NanoCpus"] == int(spec.profiles["jetson"].cpus * 1e9)
    assert edge.attrs["HostConfig"]["Memory"] == spec.profiles["jetson"].memory_bytes
    assert edge.attrs["HostConfig"]["Memory"] < control.attrs["HostConfig"]["Memory"]
    keys = {
        c.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).output for c in (edge, control)
    }
    assert len(keys) == 2, "every host must generate its own SSH host key"
    assert edge.exec_run(["systemctl", "is-system-running"]).output.strip() in (
        b"running",
        b"degraded",
    )


def test_second_up_changes_nothing(lab, home):
    again = edgeferry("lab", "up", "--name", LAB, "--subnet", SUBNET, "--edges", "3", home=home)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert "changed " not in again.stdout.replace("nothing changed", "")


def test_status_shows_hosts_and_measured_rates(lab, home):
    status = edgeferry("lab", "status", "--name", LAB, home=home)
    assert status.returncode == 0, status.stderr
    for fragment in ("control", "edge1", "edge3", "10.252.0.11", "jetson", "40.0 Mbit/s", "±"):
        assert fragment in status.stdout
    # the jetson-class edge3's workloads run as arm64, emulated; the x86 hosts' natively (the
    # table may wrap a cell over two lines: its row shows the platform, the one emulated host
    # the only "qemu-user"; `--json` gives the values whole)
    edge3 = next(line for line in status.stdout.splitlines() if "edge3" in line)
    assert "linux/arm64" in edge3 and status.stdout.count("qemu-user") == 1, status.stdout
    doc = json.loads(edgeferry("lab", "status", "--name", LAB, "--json", home=home).stdout)
    assert {h: (v["workload_platform"], v["emulation"]) for h, v in doc["hosts"].items()} == {
        "control": ("", "native"), "edge1": ("", "native"), "edge2": ("", "native"),
        "edge3": ("linux/arm64", "qemu-user")}


def test_address_clash_is_refused_before_anything_starts(lab, home):
    clash = edgeferry("lab", "up", "--name", "clash", "--subnet", "10.252.0.0/25", home=home)
    assert clash.returncode == 2
    assert "overlaps Docker network 'ef-itest'" in clash.stderr
    assert len(clash.stderr.strip().splitlines()) == 1
    assert not docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_LAB}=clash"})


def test_another_workspace_cannot_take_over_the_lab(lab, home, tmp_path):
    other = edgeferry("lab", "up", "--name", LAB, "--subnet", SUBNET, "--edges", "3", home=tmp_path)
    assert other.returncode == 2, other.stdout + other.stderr
    assert f"already up from the workspace {home}" in other.stderr
    assert f"`edgeferry lab down --name {LAB}` removes it" in other.stderr
    key = (
        docker.from_env()
        .containers.get("ef-itest-edge1")
        .exec_run(["cat", "/root/.ssh/authorized_keys"])
    )
    assert (
        key.output.decode().strip()
        == (home / ".edgeferry/labs/itest/id_ed25519.pub").read_text().strip()
    )


def test_down_leaves_nothing_behind(lab, home):
    # Runs last in this module (pytest keeps file order): tear down and look for leftovers.
    client = docker.from_env()
    veths = [
        c.exec_run(["cat", "/sys/class/net/eth0/iflink"]).output.decode().strip()
        for c in client.containers.list(filters={"label": f"{LABEL_LAB}={LAB}"})
    ]
    down = edgeferry("lab", "down", "--name", LAB, home=home)
    assert down.returncode == 0, down.stderr
    os.environ["EDGEFERRY_HOME"] = str(home)
    try:
        assert EmulatedLab(load_spec(name=LAB, subnet=SUBNET, edges=3)).leftovers() == []
    finally:
        del os.environ["EDGEFERRY_HOME"]
    assert LabState.path_for(LAB).exists() is False
    assert not (home / "inventory" / LAB).exists()
    present = {p.read_text().strip() for p in Path("/sys/class/net").glob("*/ifindex")}
    assert not present & set(veths), "the shaped veths (and their qdiscs) must be gone"
    again = edgeferry("lab", "down", "--name", LAB, home=home)
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_not_root_is_refused(monkeypatch, capsys, tmp_path):
    from edgeferry.cli.main import main

    monkeypatch.setenv("EDGEFERRY_HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "up", "--name", "nr"]) == 3
    assert "needs root" in capsys.readouterr().err


def test_cli_errors_are_one_line_with_exit_codes(tmp_path):
    bad = edgeferry("lab", "up", "--bandwidth", "fast", home=tmp_path)
    assert bad.returncode == 2 and "does not parse" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    prof = edgeferry("lab", "up", "--edge-profile", "cray", home=tmp_path)
    assert prof.returncode == 2 and "unknown profile 'cray'" in prof.stderr
    nodocker = edgeferry(
        "lab", "up", "--name", "nod", home=tmp_path, env={"DOCKER_HOST": "unix:///nonexistent.sock"}
    )
    assert nodocker.returncode == 3 and "Docker engine not reachable" in nodocker.stderr
    status = edgeferry("lab", "status", "--name", "never", home=tmp_path)
    assert status.returncode == 2 and "is not up" in status.stderr
