"""`edgeferry verify` runs testinfra with an ansible.cfg that makes testinfra itself put a
ControlPath on its SSH commands (one connection per host instead of one per check). The
expectation is testinfra's own: the ssh command its backend builds from the inventory and the
config, not edgeferry's code."""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

import pytest
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

from edgeferry import resources
from edgeferry.deploy.verify import multiplexing_config


def ssh_command(inventory: Path, cfg: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANSIBLE_CONFIG", str(cfg))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    host = AnsibleRunner(str(inventory)).get_host("edge1")
    assert host is not None
    cmd, args = host.backend._build_ssh_command("true")  # type: ignore[attr-defined]
    return " ".join(cmd) % tuple(args)


@pytest.fixture()
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"edge1": {
        "ansible_host": "10.250.0.11", "ansible_user": "root",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes"}}}}))
    return path


def test_testinfra_multiplexes_each_host_under_the_verify_config(
        inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sockets = tmp_path / "cp"
    sockets.mkdir(mode=0o700)
    cfg = multiplexing_config(resources.ansible_cfg(), sockets, tmp_path)
    command = ssh_command(inventory, cfg, monkeypatch)
    assert "ControlMaster=auto" in command and "ControlPersist=15s" in command
    assert f"-o ControlPath={sockets}/%C" in command
    assert "StrictHostKeyChecking=yes" in command  # the inventory's own options are kept
    shipped, written = configparser.ConfigParser(interpolation=None), \
        configparser.ConfigParser(interpolation=None)
    shipped.read(resources.ansible_cfg())
    written.read(cfg)
    assert written.get("defaults", "forks") == shipped.get("defaults", "forks")


def test_under_the_shipped_config_alone_testinfra_opens_a_connection_per_command(
        inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the verify config exists: without a control path testinfra adds none."""
    command = ssh_command(inventory, resources.ansible_cfg(), monkeypatch)
    assert "ControlPath" not in command


def test_the_hosts_are_checked_by_several_workers_and_one_when_asked(tmp_path: Path):
    """The suite runs under pytest-xdist (a test extra) with VERIFY_WORKERS processes; a caller
    may ask for one process, and pytest's own arguments still come last."""
    import importlib.util

    from edgeferry.deploy.verify import VERIFY_WORKERS, pytest_command
    assert importlib.util.find_spec("xdist") is not None, "pytest-xdist is a test extra"
    inv, junit = tmp_path / "inv", tmp_path / "junit.xml"
    default = pytest_command(inv, junit, ["-k", "agents"])
    assert default[default.index("-n") + 1] == str(VERIFY_WORKERS) and VERIFY_WORKERS > 1
    assert default[-2:] == ["-k", "agents"]
    assert "-n" not in pytest_command(inv, junit, workers=1)
