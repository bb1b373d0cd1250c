"""The edgeferry_agent role checks the host's python3 before building or installing anything
(the agents need pyproject's requires-python; JetPack 5 ships 3.8, JetPack 6 3.10). Runs the
role's own check tasks with ansible-playbook on this machine, as the example inventory's control
host (its `python3` is the one checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]


ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
EXAMPLE = REPO_ROOT / "inventory" / "example-hardware"
PLAYBOOK = """\
- name: Check the host's python3 with the edgeferry_agent role
  hosts: control
  gather_facts: false
  connection: local
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: The role's check
      ansible.builtin.include_role:
        name: edgeferry_agent
        tasks_from: python.yml
"""


def run_check(tmp_path: Path, minimum: str) -> subprocess.CompletedProcess[str]:
    book = tmp_path / "check.yml"
    book.write_text(PLAYBOOK)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
           "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(EXAMPLE), str(book),
                           "-e", f"edgeferry_agent_python_min={minimum}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False)


def host_python3() -> str:
    out = subprocess.run(["python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_host_python_older_than_the_minimum_stops_the_deploy_with_the_version_found(
        tmp_path: Path) -> None:
    found = host_python3()
    done = run_check(tmp_path, "99.0")
    assert done.returncode != 0
    assert re.search(rf"the agents need Python >= 99\.0,\s+found python3 {re.escape(found)}",
                     re.sub(r"\s+", " ", done.stdout)), done.stdout[-2000:]


def test_a_host_python_at_the_minimum_passes(tmp_path: Path) -> None:
    major, minor, _ = host_python3().split(".")
    done = run_check(tmp_path, f"{major}.{minor}")
    assert done.returncode == 0, done.stdout[-2000:]


def test_the_role_minimum_is_pyprojects_requires_python() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    defaults = yaml.safe_load((REPO_ROOT / "roles" / "edgeferry_agent" / "defaults" /
                               "main.yml").read_text())
    assert project["requires-python"] == ">=" + defaults["edgeferry_agent_python_min"]
