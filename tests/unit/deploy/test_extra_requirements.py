"""Per-instance requirements: pm4py (the composer's) and FastAPI/uvicorn (the UI server's)
reach only the hosts where a composer or a UI server is placed. Rendered by the edgeferry_agent
role's own defaults on the example-hardware inventory (no host contacted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PLAYBOOK = """\
- name: Render the extra requirements of each host
  hosts: control:edge
  gather_facts: false
  connection: local
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  roles:
    - role: edgeferry
  tasks:
    - name: Load the edgeferry_agent defaults
      ansible.builtin.include_vars:
        file: "{{ playbook_dir }}/agent_defaults.yml"
    - name: Write them
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/out-{{ inventory_hostname }}.json"
        content: "{{ {'extra': edgeferry_agent_extra_requirements,
                      'instances': edgeferry_agent_instances} | to_json }}"
        mode: "0600"
"""


def test_only_composer_and_ui_hosts_get_their_extras(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO_ROOT / "inventory" / "example-hardware", inventory)
    play = tmp_path / "play"
    play.mkdir()
    (play / "render.yml").write_text(PLAYBOOK)
    shutil.copy(REPO_ROOT / "roles" / "edgeferry_agent" / "defaults" / "main.yml",
                play / "agent_defaults.yml")
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(play / "render.yml")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
             "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    out = {p.stem.removeprefix("out-"): json.loads(p.read_text()) for p in play.glob("out-*.json")}
    # the composer's pm4py and the UI server's ASGI stack, sorted as Ansible's sort does
    ui_stack = ["fastapi>=0.115", "uvicorn>=0.30", "python-multipart>=0.0.9", "Jinja2>=3.1"]
    assert out["ctl01"]["extra"] == sorted(["pm4py>=2.7", *ui_stack], key=str.lower)
    assert {"composer", "ui"} <= set(out["ctl01"]["instances"])
    edges = [h for h in out if h != "ctl01"]
    assert edges and all(out[h]["extra"] == [] for h in edges)
    assert all("blockcache" in out[h]["instances"] for h in edges)
