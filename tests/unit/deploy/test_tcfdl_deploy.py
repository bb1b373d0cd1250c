"""TCFDL's deployment as the roles render it (no host contacted): with edgeferry_tcfdl_enabled
on the example-hardware inventory (ctl01 control; xavier01, xavier02, x86edge01 edges, and
x86edge01 moved to cluster a by a host variable), the role's manifest tasks place the instances,
their settings validate with the agents' own settings models, and the nats-server flags the
role passes to ``python -m agents.tcfdl_master nats-config`` give each cluster the users of its
own hosts, with the DNs the pki role's certificates carry (CN, OU = role, O = edgeferry).
Expectations are written out here from the paper's Fig. 5 placement, not taken from the role.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.tcfdl_manager.agent import ManagerSettings
from agents.tcfdl_master.agent import MasterSettings
from agents.tcfdl_master.natsconfig_cli import main as nats_config
from agents.tcfdl_proxy.agent import ProxySettings
from agents.tcfdl_worker.agent import WorkerSettings
from edgeferry.deploy.manifest import load_manifest

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = REPO_ROOT / "inventory" / "example-hardware"
DEFAULTS = REPO_ROOT / "roles" / "edgeferry" / "defaults" / "main.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
NATS_ARGS = REPO_ROOT / "roles" / "edgeferry_agent" / "templates" / "tcfdl-nats-args.j2"

PLAYBOOK = """\
- name: Render TCFDL's placement, settings and nats-server flags
  hosts: control:edge
  gather_facts: false
  connection: local
  roles: [edgeferry]  # its defaults (the catalog, the edgeferry_tcfdl_* derivations) in scope
  vars:
    __edgeferry_agent_deploy: "{{ edgeferry_host_agents }}"
    __edgeferry_agent_catalog: "{{ edgeferry_agent_catalog }}"
    __edgeferry_agent_missing: []
    __edgeferry_agent_wheel: {wheel_name: w.whl, sha256: "00", source: "00"}
    edgeferry_agent_listen_address: "{{ edgeferry_address }}"
    edgeferry_agent_pki_dir: /etc/edgeferry/pki
    edgeferry_agent_config_dir: /etc/edgeferry
    __edgeferry_agent_nats_store: /var/lib/edgeferry/tcfdl-nats
  tasks:
    - name: Assemble the manifest
      ansible.builtin.include_role:
        name: edgeferry_agent
        tasks_from: manifest.yml
    - name: Give it to the controller
      ansible.builtin.include_role:
        name: edgeferry_agent
        tasks_from: manifest_to_controller.yml
    - name: Write what else the roles derive
      ansible.builtin.copy:
        dest: "OUT/{{ inventory_hostname }}.json"
        content: "{{ {'certificates': edgeferry_tcfdl_certificates,
                      'nats': (lookup('ansible.builtin.template', 'ARGS') | from_yaml)
                              if 'tcfdl-master' in edgeferry_host_agents else []} | to_json }}"
        mode: "0600"
      delegate_to: localhost
"""


def _render(tmp: Path, enabled: bool) -> tuple[Path, Path, Path]:
    inventory = tmp / "inventory" / "example"
    shutil.copytree(EXAMPLE, inventory)
    if enabled:
        (inventory / "group_vars" / "all" / "tcfdl.yml").write_text(
            "---\nedgeferry_tcfdl_enabled: true\n")
        (inventory / "host_vars").mkdir(exist_ok=True)
        (inventory / "host_vars" / "x86edge01.yml").write_text(
            "---\nedgeferry_tcfdl_cluster: a\n")
    out = tmp / "out"
    out.mkdir()
    playbook = tmp / "playbooks" / "render.yml"
    playbook.parent.mkdir()
    playbook.write_text(PLAYBOOK.replace("OUT", str(out)).replace("ARGS", str(NATS_ARGS)))
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
             "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return tmp, inventory, out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _render(tmp_path_factory.mktemp("tcfdl-deploy"), enabled=True)


def _agents(rendered: tuple[Path, Path, Path], host: str) -> dict[str, Any]:
    root, inventory, _ = rendered
    m = load_manifest(inventory, host, root=root)
    return {name: a for name, a in m.agents.items() if name.startswith("tcfdl-")}


def _derived(rendered: tuple[Path, Path, Path], host: str) -> dict[str, Any]:
    return dict(json.loads((rendered[2] / f"{host}.json").read_text()))


def test_off_by_default(tmp_path: Path) -> None:
    assert yaml.safe_load(DEFAULTS.read_text())["edgeferry_tcfdl_enabled"] is False
    off = _render(tmp_path, enabled=False)
    for host in ("ctl01", "xavier01", "xavier02", "x86edge01"):
        assert _agents(off, host) == {}
        assert _derived(off, host) == {"certificates": [], "nats": []}


def test_placement_follows_the_clusters(rendered: tuple[Path, Path, Path]) -> None:
    assert set(_agents(rendered, "ctl01")) == {"tcfdl-manager", "tcfdl-master", "tcfdl-proxy",
                                               "tcfdl-worker"}
    assert set(_agents(rendered, "xavier01")) == {"tcfdl-master", "tcfdl-proxy", "tcfdl-worker"}
    assert set(_agents(rendered, "xavier02")) == {"tcfdl-worker"}
    assert set(_agents(rendered, "x86edge01")) == {"tcfdl-worker"}
    # certificates: every instance's (the pki role issues by name), the nats-servers' on the
    # master hosts and the offloading client's on the hub's master host
    assert _derived(rendered, "ctl01")["certificates"] == ["tcfdl-nats", "tcfdl-client"]
    assert _derived(rendered, "xavier01")["certificates"] == ["tcfdl-nats"]
    assert _derived(rendered, "xavier02")["certificates"] == []


def test_settings_validate_with_the_agents_models(rendered: tuple[Path, Path, Path]) -> None:
    models = {"tcfdl-manager": ManagerSettings, "tcfdl-master": MasterSettings,
              "tcfdl-proxy": ProxySettings, "tcfdl-worker": WorkerSettings}
    parsed: dict[tuple[str, str], Any] = {}
    for host in ("ctl01", "xavier01", "xavier02", "x86edge01"):
        for name, agent in _agents(rendered, host).items():
            parsed[(host, name)] = models[name].model_validate(dict(agent.settings))
    manager = parsed[("ctl01", "tcfdl-manager")]
    assert {(n.cn, n.cluster) for n in manager.nodes} == {
        ("tcfdl-master.ctl01", "a"), ("tcfdl-proxy.ctl01", "a"), ("tcfdl-worker.ctl01", "a"),
        ("tcfdl-client.ctl01", "a"), ("tcfdl-worker.x86edge01", "a"),
        ("tcfdl-master.xavier01", "b"), ("tcfdl-proxy.xavier01", "b"),
        ("tcfdl-worker.xavier01", "b"), ("tcfdl-worker.xavier02", "b")}
    master_b = parsed[("xavier01", "tcfdl-master")]
    assert (master_b.cluster, master_b.nats, master_b.manager, master_b.proxy) == (
        "b", "tls://192.0.2.21:4222", "192.0.2.10:50070", "192.0.2.21:50072")
    worker = parsed[("xavier02", "tcfdl-worker")]
    assert (worker.cluster, worker.nats, worker.master, worker.proxy) == (
        "b", "tls://192.0.2.21:4222", "192.0.2.21:50071", "tcfdl-proxy.xavier01")
    # Fig. 5: Case 1 on master a's host, Case 2 on a worker of cluster a, Case 3 on master b's
    assert {h: parsed[(h, "tcfdl-worker")].functions for h in
            ("ctl01", "x86edge01", "xavier01", "xavier02")} == {
        "ctl01": {"c1": "mlp", "pipe1": "mlp-stage1"}, "x86edge01": {"c2": "mlp"},
        "xavier01": {"c3": "mlp", "pipe2": "mlp-stage2"}, "xavier02": {"mlp": "mlp"}}


def _nats_conf(rendered: tuple[Path, Path, Path], host: str, tmp_path: Path) -> str:
    args = list(_derived(rendered, host)["nats"])
    args[args.index("--out") + 1] = str(tmp_path / f"{host}.conf")
    assert nats_config(args) == 0
    return (tmp_path / f"{host}.conf").read_text()


def test_nats_config_of_each_cluster(rendered: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a = _nats_conf(rendered, "ctl01", tmp_path)
    b = _nats_conf(rendered, "xavier01", tmp_path)
    for cn in ("tcfdl-master.ctl01", "tcfdl-worker.ctl01", "tcfdl-worker.x86edge01",
               "tcfdl-client.ctl01"):
        assert f'"CN={cn},OU={cn.split(".")[0]},O=edgeferry"' in a, cn
        assert cn not in b, cn
    for cn in ("tcfdl-master.xavier01", "tcfdl-worker.xavier01", "tcfdl-worker.xavier02"):
        assert f'"CN={cn},OU={cn.split(".")[0]},O=edgeferry"' in b, cn
        assert cn not in a, cn
    # TLS verifying client certificates, no password and no anonymous user
    for conf in (a, b):
        assert "verify_and_map: true" in conf
        assert "password" not in conf and "no_auth_user" not in conf
    # cluster a is the hub: it admits b's server (its certificate) as a leaf node
    assert 'host: "192.0.2.10"' in a and "port: 7422" in a
    assert '"CN=tcfdl-nats.xavier01,OU=tcfdl-nats,O=edgeferry"' in a
    assert 'url: "tls://192.0.2.10:7422"' in b and "remotes" not in a
