"""The deployment manifests the edgeferry_agent role hands the controller, and their loader.

``manifests/ctl01.json`` and ``manifests/xavier01.json`` were written by the role itself
(`render_with_the_role` below on the example-hardware inventory, with a made-up wheel and ledger
authority key): the exact files a deploy leaves in ``.edgeferry/state/<inventory>/manifests/``.
`test_the_role_renders_what_the_loader_reads` renders them afresh from the current role and
catalog, so the loader is checked against the role and not against itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from edgeferry.deploy.manifest import (
    HostManifest,
    ManifestError,
    SecretMount,
    Workload,
    load_manifest,
    manifest_path,
    parse_manifest,
    ui_urls,
)

REPO_ROOT = Path(__file__).resolve().parents[3]

FIXTURES = Path(__file__).parent / "manifests"
EXAMPLE = REPO_ROOT / "inventory" / "example-hardware"
CATALOG = REPO_ROOT / "roles" / "edgeferry" / "defaults" / "main.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
NMS_KEY = SecretMount("/run/secrets/nms.key", PurePosixPath("/etc/edgeferry/nms.key"), 65534)
NMS_SECRETS = (
    NMS_KEY,
    SecretMount("/run/secrets/nms.crt", PurePosixPath("/etc/edgeferry/nms-tls.crt"), 65534),
    SecretMount("/run/secrets/nms-tls.key", PurePosixPath("/etc/edgeferry/nms-tls.key"), 65534),
)

# Runs the role's own manifest tasks (what tasks/main.yml includes after configuring the
# instances) with every placed instance deployed and no host contacted.
RENDER_PLAYBOOK = """\
- name: Render the deployment manifests with the edgeferry_agent role
  hosts: control:edge
  gather_facts: false
  connection: local
  vars:
    __edgeferry_agent_deploy: "{{ edgeferry_host_agents }}"
    __edgeferry_agent_catalog: "{{ edgeferry_agent_catalog }}"
    __edgeferry_agent_missing: []
    __edgeferry_agent_wheel:
      wheel_name: edgeferry-0.1.0-py3-none-any.whl
      sha256: 5f0c6a2e9d7b41c38e1f0a6b2d4c8e9f7a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d
      source: e47fba1c0ffee0ddba11c0ffee0ddba11c0ffee0
  tasks:
    - name: Assemble the manifest
      ansible.builtin.include_role:
        name: edgeferry_agent
        tasks_from: manifest.yml
    - name: Give it to the controller
      ansible.builtin.include_role:
        name: edgeferry_agent
        tasks_from: manifest_to_controller.yml
"""


def controller_with(tmp_path: Path, manifests: dict[str, Any]) -> tuple[Path, Path]:
    """A controller root whose inventory ``lab`` has these manifests (name -> JSON text or
    document); returns (root, inventory)."""
    inventory = tmp_path / "inventory" / "lab"
    inventory.mkdir(parents=True)
    for host, doc in manifests.items():
        path = manifest_path(inventory, host, root=tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return tmp_path, inventory


def fixture(host: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{host}.json").read_text()))


def catalog() -> dict[str, Any]:
    return dict(yaml.safe_load(CATALOG.read_text())["edgeferry_agent_catalog"])


# -- the manifests as the role writes them -------------------------------------------------
def test_loader_reads_the_manifest_of_the_smf_host(tmp_path: Path) -> None:
    root, inventory = controller_with(tmp_path, {"ctl01": fixture("ctl01")})
    m = load_manifest(inventory, "ctl01", root=root)
    assert m.host == "ctl01" and m.path == manifest_path(inventory, "ctl01", root=root)
    assert m.container_owner == "container-owner"
    assert list(m.agents) == ["bare", "smf", "ras", "audit", "ledger-validator",
                              "blockcache-origin", "composer", "ui"]
    assert [a for a in m.agents if m.agent(a).protocol == "https"] == ["ui"]
    assert m.agent("ui").url == "https://192.0.2.10:8443/"
    smf = m.agent("smf")
    assert (smf.address, smf.port) == ("192.0.2.10", 50051)
    assert smf.setting("audit", "owner_token_file") == "/etc/edgeferry/smf-owner.token"
    assert m.workloads() == {
        "nms": Workload("nms", "nms", 7070, NMS_SECRETS),
        "synthetic": Workload("synthetic", "synthetic", 8080),
    }


def test_loader_reads_the_rasp_maximum_of_an_edge(tmp_path: Path) -> None:
    root, inventory = controller_with(tmp_path, {"xavier01": fixture("xavier01")})
    m = load_manifest(inventory, "xavier01", root=root)
    assert m.rasp_maximum() == {"cpu": 4000, "memory": 4096, "storage": 100000, "network": 40}
    assert m.agent("node").port == 50056


def test_an_inventory_file_files_its_manifests_under_its_folder(tmp_path: Path) -> None:
    root, inventory = controller_with(tmp_path, {"ctl01": fixture("ctl01")})
    hosts_file = inventory / "hosts.yml"
    hosts_file.write_text("all: {}\n")
    assert load_manifest(hosts_file, "ctl01", root=root).container_owner == "container-owner"


def test_the_deployed_interpreter_is_in_the_venv_the_role_recorded() -> None:
    m = parse_manifest(json.dumps(fixture("xavier01")), Path("xavier01.json"), "xavier01")
    assert m.python() == PurePosixPath("/opt/edgeferry/venv/bin/python")
    doc = fixture("xavier01")
    doc["venv"] = "/srv/ef/venv"
    assert parse_manifest(json.dumps(doc), Path("x.json"), "xavier01").python() == PurePosixPath(
        "/srv/ef/venv/bin/python")


# -- errors --------------------------------------------------------------------------------
def test_no_manifest_says_deploy_first(tmp_path: Path) -> None:
    root, inventory = controller_with(tmp_path, {})
    with pytest.raises(ManifestError, match=r"no deployment manifest of host 'edge1' \(.*"
                                            r"edge1\.json\): deploy first"):
        load_manifest(inventory, "edge1", root=root)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", r"is not JSON"),
    ("[1, 2]", r"is not a JSON object"),
    (json.dumps({"host": "ctl01", "agents": []}), r"lacks 'container_owner' .*older"),
    (json.dumps({"host": "ctl01", "container_owner": "o"}), r"lacks 'agents'"),
    (json.dumps({"host": "x", "container_owner": "o", "agents": []}),
     r"is the manifest of host 'x', not 'ctl01'"),
    (json.dumps({"host": "ctl01", "container_owner": "", "agents": []}),
     r"container_owner is empty"),
    (json.dumps({"host": "ctl01", "container_owner": "o", "agents": {}}), r"agents is not a list"),
    (json.dumps({"host": "ctl01", "container_owner": "o",
                 "agents": [{"name": "smf", "address": "a", "port": 1}]}),
     r"agents\[0\] lacks 'settings'"),
    (json.dumps({"host": "ctl01", "container_owner": "o",
                 "agents": [{"name": "smf", "address": "a", "port": "1", "settings": {}}]}),
     r"port '1' is not a port"),
])
def test_a_malformed_manifest_names_the_host_and_the_problem(tmp_path: Path, text: str,
                                                              message: str) -> None:
    root, inventory = controller_with(tmp_path, {"ctl01": text})
    with pytest.raises(ManifestError, match=message) as err:
        load_manifest(inventory, "ctl01", root=root)
    assert "'ctl01'" in str(err.value) and str(manifest_path(inventory, "ctl01", root)) in str(
        err.value)


def test_a_manifest_without_a_venv_says_deploy_again_and_a_bad_one_is_refused() -> None:
    doc = fixture("xavier01")
    del doc["venv"]
    m = parse_manifest(json.dumps(doc), Path("xavier01.json"), "xavier01")
    assert m.rasp_maximum()  # what does not need the venv still reads
    with pytest.raises(ManifestError, match=r"host 'xavier01' .* lacks 'venv' \(written by an "
                                            r"older edgeferry_agent role\?\); deploy again"):
        m.python()
    doc["venv"] = "venv"
    with pytest.raises(ManifestError, match=r"venv 'venv' is not an absolute path"):
        parse_manifest(json.dumps(doc), Path("xavier01.json"), "xavier01")


def test_a_manifest_from_before_settings_were_recorded_says_deploy_again() -> None:
    doc = fixture("xavier01")
    for agent in doc["agents"]:
        del agent["settings"]
    with pytest.raises(ManifestError, match=r"host 'xavier01'.*agents\[0\] lacks 'settings' "
                                            r"\(written by an older edgeferry_agent role\?\)"):
        parse_manifest(json.dumps(doc), Path("xavier01.json"), "xavier01")


def test_a_missing_agent_names_what_is_deployed_there() -> None:
    m = parse_manifest(json.dumps(fixture("xavier01")), Path("xavier01.json"), "xavier01")
    with pytest.raises(ManifestError, match=r"host 'xavier01' .* lacks agent 'smf' \(deployed "
                                            r"there: bare, node, ledger-peer, blockcache\)"):
        m.workloads()


def test_a_missing_setting_names_its_path() -> None:
    doc = fixture("xavier01")
    node = next(a for a in doc["agents"] if a["name"] == "node")
    del node["settings"]["rasp_endpoint"]["maximum"]
    m = parse_manifest(json.dumps(doc), Path("xavier01.json"), "xavier01")
    with pytest.raises(ManifestError, match=r"host 'xavier01' .* lacks "
                                            r"settings\.rasp_endpoint\.maximum of agent 'node'"):
        m.rasp_maximum()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda w: w["nms"].pop("container_port"),
     r"workloads\.nms\.container_port of agent 'smf' is missing"),
    (lambda w: w["nms"].update(workload=""), r"workloads\.nms\.workload of agent 'smf' is missing"),
    (lambda w: w["nms"]["secrets"][0].pop("uid"), r"workloads\.nms\.secrets\[0\]\.uid"),
    (lambda w: w["nms"]["secrets"][0].update(container_path="run/x"),
     r"secrets\[0\]\.container_path of agent 'smf' is missing or not absolute"),
    (lambda w: w.update(synthetic=[]), r"workloads\.synthetic of agent 'smf' is not a mapping"),
])
def test_a_broken_workload_names_its_setting(mutate: Any, message: str) -> None:
    doc = fixture("ctl01")
    smf = next(a for a in doc["agents"] if a["name"] == "smf")
    mutate(smf["settings"]["container"]["workloads"])
    m = parse_manifest(json.dumps(doc), Path("ctl01.json"), "ctl01")
    with pytest.raises(ManifestError, match=r"host 'ctl01' .*" + message):
        m.workloads()


@pytest.mark.parametrize("maximum", [{"cpu": -1}, {"cpu": 1.5}, {"gpu": 1}, {"cpu": True}, []])
def test_a_bad_rasp_maximum_is_refused(maximum: Any) -> None:
    doc = fixture("xavier01")
    node = next(a for a in doc["agents"] if a["name"] == "node")
    node["settings"]["rasp_endpoint"]["maximum"] = maximum
    m = parse_manifest(json.dumps(doc), Path("xavier01.json"), "xavier01")
    with pytest.raises(ManifestError, match=r"rasp_endpoint\.maximum"):
        m.rasp_maximum()


# -- the role renders what the loader reads ------------------------------------------------
@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return render_with_the_role(tmp_path_factory.mktemp("controller"))


def render_with_the_role(tmp_path: Path) -> tuple[Path, Path]:
    """Run the role's manifest tasks on a copy of the example-hardware inventory (no host is
    contacted); returns (controller root, inventory) holding the manifests it wrote."""
    inventory = tmp_path / "inventory" / "example"
    shutil.copytree(EXAMPLE, inventory)
    playbook = tmp_path / "playbooks" / "render.yml"
    playbook.parent.mkdir()
    playbook.write_text(RENDER_PLAYBOOK)
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
             "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return tmp_path, inventory


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, node


def test_the_role_renders_what_the_loader_reads(rendered: tuple[Path, Path]) -> None:
    root, inventory = rendered
    written = sorted(p.stem for p in manifest_path(inventory, "x", root=root).parent.iterdir())
    assert written == ["ctl01", "x86edge01", "xavier01", "xavier02"]
    loaded: dict[str, HostManifest] = {h: load_manifest(inventory, h, root=root) for h in written}
    spec = catalog()
    smf_settings = spec["smf"]["settings"]["container"]["workloads"]
    workloads = loaded["ctl01"].workloads()
    assert set(workloads) == set(smf_settings)
    for service, w in workloads.items():
        assert (w.name, w.container_port) == (smf_settings[service]["workload"],
                                              smf_settings[service]["container_port"])
    assert workloads["nms"].secrets == NMS_SECRETS
    owner = yaml.safe_load((REPO_ROOT / "roles" / "edgeferry_agent" / "defaults" / "main.yml")
                           .read_text())["edgeferry_agent_container_owner"]
    for host in ("xavier01", "xavier02", "x86edge01"):
        m = loaded[host]
        # MAX is measured by the node agent (cgroup limits, else the machine): not rendered
        assert "maximum" not in spec["node"]["settings"]["rasp_endpoint"]
        assert m.agent("node").setting("rasp_endpoint", "name") == host
        assert m.agent("node").address == yaml.safe_load(
            (EXAMPLE / "hosts.yml").read_text())["all"]["children"]["edge"]["hosts"][host][
                "edgeferry_address"]
        assert m.container_owner == owner
    for m in loaded.values():  # the role's edgeferry_agent_venv, where the agents run from
        assert m.python() == PurePosixPath("/opt/edgeferry/venv/bin/python")
    # the committed fixtures have the shape the role writes now
    for host in ("ctl01", "xavier01"):
        fresh = json.loads(manifest_path(inventory, host, root=root).read_text())
        old = fixture(host)
        assert sorted(fresh) == sorted(old)
        assert [sorted(a) for a in fresh["agents"]] == [sorted(a) for a in old["agents"]]


def test_manifests_name_secret_files_by_path_only(rendered: tuple[Path, Path]) -> None:
    root, inventory = rendered
    state = manifest_path(inventory, "x", root=root).parent.parent
    password = (state / "registry-password").read_text().strip()
    assert password
    public = {"authority_key"}  # the ledger authority's public key
    checked = set()
    for path in sorted((state / "manifests").iterdir()):
        text = path.read_text()
        assert password not in text, path
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        for agent in json.loads(text)["agents"]:
            for where, value in _walk(agent["settings"]):
                leaf = re.split(r"[.\[]", where.split(".")[-1])[0]
                if re.search(r"password|token|secret|key", where) and leaf not in public:
                    assert isinstance(value, (int, str)), where
                    checked.add(leaf)
                    if leaf not in ("uid",):
                        assert str(value).startswith("/"), f"{path.name}: {agent['name']} " \
                            f"settings.{where} = {value!r} is not a path"
    assert {"password_file", "owner_token_file", "owner_token_key", "container_path",
            "path"} <= checked


def test_rendered_agent_settings_validate_against_the_agents_models(
        rendered: tuple[Path, Path]) -> None:
    """What the role deploys is what each agent's settings model accepts (no removed keys
    such as the old per-agent peer allow-lists: agents/*/policy.py decides who may call)."""
    from agents.audit.agent import AuditSettings
    from agents.blockcache.agent import BlockCacheSettings
    from agents.composer.agent import ComposerSettings
    from agents.ledger.agent import LedgerSettings
    from agents.node.agent import NodeSettings
    from agents.ras.agent import RasSettings
    from agents.smf.agent import SmfSettings
    from agents.ui.agent import UiSettings

    models = {"smf": SmfSettings, "ras": RasSettings, "audit": AuditSettings,
              "ledger-validator": LedgerSettings, "ledger-peer": LedgerSettings,
              "node": NodeSettings, "blockcache-origin": BlockCacheSettings,
              "blockcache": BlockCacheSettings, "composer": ComposerSettings, "ui": UiSettings}
    root, inventory = rendered
    seen = set()
    for path in manifest_path(inventory, "x", root=root).parent.iterdir():
        for agent in json.loads(path.read_text())["agents"]:
            model = models.get(agent["name"])
            if model is not None:
                model.model_validate(agent["settings"])
                seen.add(agent["name"])
    assert seen == set(models)


# -- the UI server's URL (`edgeferry lab status`) ------------------------------------------
def test_ui_urls_come_from_the_https_instance_ui(tmp_path: Path) -> None:
    edge = fixture("xavier01")
    root, inventory = controller_with(tmp_path, {"ctl01": fixture("ctl01"), "xavier01": edge,
                                                 "broken": "{not json"})
    assert ui_urls(inventory, root=root) == {"ctl01": "https://192.0.2.10:8443/"}
    # an older manifest (no protocol: every agent spoke gRPC) names no UI server
    doc = fixture("ctl01")
    for agent in doc["agents"]:
        del agent["protocol"]
    root2, inventory2 = controller_with(tmp_path / "old", {"ctl01": doc})
    assert ui_urls(inventory2, root=root2) == {}
    assert ui_urls(tmp_path / "inventory" / "nothing-deployed", root=tmp_path) == {}


def test_an_unknown_protocol_is_refused() -> None:
    doc = fixture("ctl01")
    doc["agents"][-1]["protocol"] = "http"
    with pytest.raises(ManifestError, match=r"agents\[\d+\] \(ui\): protocol 'http' is not one "
                                            r"of grpc, https"):
        parse_manifest(json.dumps(doc), Path("ctl01.json"), "ctl01")
