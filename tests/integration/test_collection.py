"""The roles as an Ansible collection (galaxy.yml): `ansible-galaxy collection build` from the
repository root, `ansible-galaxy collection install` into a temporary collections path, and a
playbook outside the checkout that uses every role by its FQCN passes --syntax-check. The role
list and the collections the roles use come from the repository (folders, a grep of roles/),
not from galaxy.yml."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks" / "main.yml").is_file()
               or (p / "defaults" / "main.yml").is_file())
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built tarball, the collections path it is installed into)."""
    tmp = tmp_path_factory.mktemp("collection")
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path",
                    str(tmp / "dist"), str(REPO)], check=True, capture_output=True, timeout=120)
    (tarball,) = sorted((tmp / "dist").glob("edgeferry-edgeferry-*.tar.gz"))
    # --no-deps: the dependencies are checked against the roles below (no Galaxy access here)
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "-p",
                    str(tmp / "collections"), str(tarball)], check=True, capture_output=True,
                   timeout=120)
    return tarball, tmp / "collections"


def _syntax(playbook: Path, collections: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_ROLES_PATH=str(cwd / "none"),
               ANSIBLE_NOCOLOR="1")
    (cwd / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "hosts.yml", "--syntax-check",
                           str(playbook)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _playbook(path: Path, roles: list[str]) -> Path:
    path.write_text(yaml.safe_dump([{"name": "FQCN roles", "hosts": "all",
                                     "gather_facts": False, "roles": roles}]))
    return path


def test_the_collection_holds_every_role_and_no_python_package(
        collection: tuple[Path, Path]) -> None:
    tarball, _ = collection
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert len(ROLES) >= 10
    assert [r for r in ROLES if f"roles/{r}/meta/argument_specs.yml" not in names] == []
    assert "playbooks/site.yml" in names and "meta/runtime.yml" in names
    assert not [n for n in names if n.split("/")[0] in
                {"agents", "edgeferry", "tests", "inventory", "experiments", ".venv", ".edgeferry"}]


def test_every_role_is_usable_by_its_fqcn_from_the_installed_collection(
        collection: tuple[Path, Path], tmp_path: Path) -> None:
    _, installed = collection
    ok = _syntax(_playbook(tmp_path / "pb.yml", [f"edgeferry.edgeferry.{r}" for r in ROLES]),
                 installed, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    site = _syntax(Path("edgeferry.edgeferry.site"), installed, tmp_path)
    assert site.returncode == 0, site.stdout + site.stderr
    # the check can fail: a role the collection lacks, or the collection not installed
    bad = _syntax(_playbook(tmp_path / "bad.yml", ["edgeferry.edgeferry.no_such_role"]),
                  installed, tmp_path)
    assert bad.returncode != 0 and "no_such_role" in bad.stdout + bad.stderr
    absent = _syntax(tmp_path / "pb.yml", tmp_path / "empty", tmp_path)
    assert absent.returncode != 0


def test_requirements_list_every_collection_the_roles_use() -> None:
    used = set()
    for path in (REPO / "roles").rglob("*.yml"):
        for match in re.finditer(r"^\s*-?\s*([a-z_]+)\.([a-z_]+)\.[a-z0-9_]+:", path.read_text(),
                                 re.M):
            if match.group(1) != "ansible" or match.group(2) != "builtin":
                used.add(f"{match.group(1)}.{match.group(2)}")
    assert "community.crypto" in used  # the grep finds what it must
    listed = {c["name"] for c in yaml.safe_load(
        (REPO / "collections/requirements.yml").read_text())["collections"]}
    deps = set(yaml.safe_load((REPO / "galaxy.yml").read_text())["dependencies"])
    assert used == listed == deps


def test_the_collection_keeps_controller_state_out_of_the_collection(
        collection: tuple[Path, Path], tmp_path: Path) -> None:
    """The installed edgeferry role's edgeferry_controller_dir, evaluated by ansible in a play
    outside the checkout: EDGEFERRY_CONTROLLER_DIR, else EDGEFERRY_HOME, else the playbook's
    project (never the installed collection). (Its defaults are read as variables: the role's
    argument spec needs a full inventory.)"""
    _, installed = collection
    defaults = installed / "ansible_collections/edgeferry/edgeferry/roles/edgeferry/defaults"
    play = [{"name": "Where the controller state goes", "hosts": "localhost",
             "connection": "local", "gather_facts": False,
             "tasks": [{"name": "Read the role's defaults", "ansible.builtin.include_vars": {
                           "file": str(defaults / "main.yml")}},
                       {"name": "Show it", "ansible.builtin.debug": {
                           "msg": "DIR={{ edgeferry_controller_dir }}"}}]}]
    (tmp_path / "project" / "playbooks").mkdir(parents=True)
    book = tmp_path / "project" / "playbooks" / "where.yml"
    book.write_text(yaml.safe_dump(play))
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ANSIBLE_", "EDGEFERRY_"))}
    base.update(ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_NOCOLOR="1",
                ANSIBLE_ROLES_PATH=str(tmp_path / "none"))

    def where(**env: str) -> str:
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(book)],
                              cwd=tmp_path, env={**base, **env}, capture_output=True,
                              text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return re.findall(r"DIR=(\S+?)\"?$", proc.stdout, re.M)[0]

    assert where(EDGEFERRY_CONTROLLER_DIR="/srv/ef") == "/srv/ef"
    assert where(EDGEFERRY_HOME="/srv/home") == "/srv/home/.edgeferry"
    assert where() == str(tmp_path / "project" / ".edgeferry")
