"""edgeferry from its wheel, without the checkout: the wheel carries the playbooks, roles and
definitions (setup.py), resources.py finds them there, state goes to the workspace, and the
agents' wheel for the hosts is the installed distribution repacked (edgeferry_package.py).

The expectations come from the checkout itself (git's file list and the files' bytes) and from
the wheel pip built, never from the code under test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HELPER = REPO / "roles/edgeferry_agent/files/edgeferry_package.py"
#: what the wheel must carry under edgeferry/_ansible/ (setup.py's SHIPPED, as git lists it)
SHIPPED = ["playbooks", "roles", "ansible.cfg", "inventory/example-hardware", "experiments",
           "collections/requirements.yml"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel pip builds from this checkout, a folder it is installed into)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps",
                    "--no-build-isolation", "--no-index", "-q", "-w", str(tmp / "dist")],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = sorted((tmp / "dist").glob("edgeferry-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--target", str(tmp / "site"), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return wheel, tmp / "site"


def _run(site: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGEFERRY_HOME")}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False,
                          env={**clean, "PYTHONPATH": str(site), **env})


def test_the_wheel_carries_every_shipped_file_byte_for_byte(installed: tuple[Path, Path]) -> None:
    wheel, _site = installed
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--", *SHIPPED],
                             check=True, capture_output=True).stdout.decode().split("\0")
    tracked = [t for t in tracked if t and (REPO / t).is_file()]
    assert "playbooks/site.yml" in tracked and "experiments/quick.yaml" in tracked
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        missing = [t for t in tracked if f"edgeferry/_ansible/{t}" not in names]
        differ = [t for t in tracked if f"edgeferry/_ansible/{t}" in names
                  and archive.read(f"edgeferry/_ansible/{t}") != (REPO / t).read_bytes()]
    assert missing == [] and differ == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_installed_package_finds_its_files_and_keeps_state_in_the_workspace(
        installed: tuple[Path, Path], tmp_path: Path) -> None:
    _wheel, site = installed
    home = tmp_path / "home"
    (home / "inventory" / "lab1").mkdir(parents=True)
    probe = (
        "import json, sys, edgeferry; from edgeferry import resources; "
        "from edgeferry.deploy import runner, manifest, stamp; "
        "from pathlib import Path; inv = Path(sys.argv[1]); "
        "print(json.dumps({'module': edgeferry.__file__,"
        " 'no_checkout': resources.checkout() is None,"
        " 'playbooks': str(resources.playbook_dir()), 'cfg': str(resources.ansible_cfg()),"
        " 'agent_source': resources.agent_source(), 'stamp_path': stamp.stamp_path(),"
        " 'manifest': str(manifest.manifest_path(inv, 'h')),"
        " 'run_dir': str(runner.new_run_dir(inv, 'site.yml'))}))"
    )
    out = _run(site, tmp_path, "-c", probe, str(home / "inventory" / "lab1"),
               EDGEFERRY_HOME=str(home))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    pkg = (site / "edgeferry").resolve()
    assert Path(got["module"]).resolve() == pkg / "__init__.py"
    assert got["no_checkout"] is True
    assert Path(got["playbooks"]) == pkg / "_ansible" / "playbooks"
    assert Path(got["cfg"]).read_bytes() == (REPO / "ansible.cfg").read_bytes()
    assert got["agent_source"] == ""
    assert got["stamp_path"].startswith("/")
    assert Path(got["manifest"]) == home.resolve() / ".edgeferry/state/lab1/manifests/h.json"
    assert Path(got["run_dir"]).parent == home.resolve() / ".edgeferry/runs/lab1"
    # the CLI validates a shipped definition from an unrelated folder
    quick = pkg / "_ansible" / "experiments" / "quick.yaml"
    check = _run(site, tmp_path, "-m", "edgeferry.cli.main", "run", str(quick), "--check", "--json")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["valid"] is True
    assert not list(site.rglob(".edgeferry"))  # nothing written into the package


def test_the_hosts_wheel_is_the_installed_distribution_repacked(
        installed: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, site = installed
    out = tmp_path / "out"
    first = _run(site, tmp_path, str(HELPER), "wheel", "--installed", "--out", str(out))
    assert first.returncode == 0, first.stderr
    built = json.loads(first.stdout)
    assert built["dirty"] is False and built["changed"] is True
    assert built["source"].startswith("installed edgeferry 0.1.0 (intact; repacked wheel sha256 ")
    assert built["sha256"] in built["source"]
    # pip recorded the archive it installed from (direct_url.json): the wheel pip built
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert f"installed from an archive with sha256 {digest}" in built["source"]
    assert "agents.smf" in built["agent_modules"]
    # the same files with the same bytes as the wheel pip built (only RECORD is written anew)
    with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(built["wheel"]) as b:
        original = {n: a.read(n) for n in a.namelist() if not n.endswith("/RECORD")}
        repacked = {n: b.read(n) for n in b.namelist() if not n.endswith("/RECORD")}
        assert b.testzip() is None
    assert repacked == original
    # unchanged installation: the same bytes again
    again = json.loads(_run(site, tmp_path, str(HELPER), "wheel", "--installed", "--out",
                            str(out)).stdout)
    assert again["changed"] is False and again["sha256"] == built["sha256"]
    # an edited installed file makes it dirty (and a different wheel)
    target = site / "agents" / "__init__.py"
    target.write_text(target.read_text() + "# edited\n")
    edited = json.loads(_run(site, tmp_path, str(HELPER), "wheel", "--installed", "--out",
                             str(out)).stdout)
    assert edited["dirty"] is True and edited["changed_files"] == ["agents/__init__.py"]
    assert edited["sha256"] != built["sha256"] and "1 files changed" in edited["source"]
