"""The UI server as the roles deploy it (issue 15), rendered on the example-hardware inventory
with no host contacted: its configuration file and systemd unit from the edgeferry_agent role's
own templates, its deployment manifests, and its certificate issued by the pki role's own tasks
(a real lab CA on the controller side, in a temporary folder).

The expectations come from the inventory (the control host's address), the agents' own settings
models and loaders (`agents.common.config.load_config`, `agents.ui.agent.UiSettings`) and X.509
as `cryptography` reads it, not from the role's templates.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeferry.deploy.manifest import load_manifest, manifest_path, ui_urls
from edgeferry.pki import LabCA

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = REPO_ROOT / "inventory" / "example-hardware"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PORT = 9443  # not the default: shows edgeferry_ui_port reaches the config, unit and manifest
EXTRA_SAN = "audit.lab.example"

# The role's templates and manifest tasks for the placed instances; the pki role's
# certificate of the ui instance (its issue.yml, as the pki role's main.yml imports it).
RENDER_PLAYBOOK = """\
- name: Render the UI server's deployment
  hosts: ctl01:xavier01
  gather_facts: false
  connection: local
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    __edgeferry_agent_deploy: "{{ edgeferry_host_agents }}"
    __edgeferry_agent_catalog: "{{ edgeferry_agent_catalog }}"
    __edgeferry_agent_missing: []
    __edgeferry_agent_wheel:
      wheel_name: edgeferry-0.1.0-py3-none-any.whl
      sha256: 5f0c6a2e9d7b41c38e1f0a6b2d4c8e9f7a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d
      source: e47fba1c0ffee0ddba11c0ffee0ddba11c0ffee0
    __pki_revoked_serials: []
    __pki_crl_entries: []
  roles:
    - role: edgeferry
  tasks:
    - name: Load the edgeferry_agent defaults
      ansible.builtin.include_vars:
        file: "{{ playbook_dir }}/agent_defaults.yml"
    - name: Render the configuration and unit of each instance placed on the host
      ansible.builtin.template:
        src: "{{ playbook_dir }}/../roles/edgeferry_agent/templates/{{ item[1] }}.j2"
        dest: "{{ playbook_dir }}/out/{{ inventory_hostname }}/{{ item[0] }}.{{ item[1] }}"
        mode: "0600"
      loop: >-
        {{ edgeferry_host_agents | select('in', ['ui', 'audit', 'node'])
           | product(['agent.yaml', 'agent.service']) | list }}
      vars:
        edgeferry_agent_name: "{{ item[0] }}"
    - name: Assemble the manifest
      ansible.builtin.include_role:
        name: edgeferry_agent
        tasks_from: manifest.yml
    - name: Give it to the controller
      ansible.builtin.include_role:
        name: edgeferry_agent
        tasks_from: manifest_to_controller.yml
    - name: Issue the UI server's certificate
      ansible.builtin.include_role:
        name: pki
        tasks_from: issue.yml
      vars:
        pki_certificate_names: [ui]
      when: inventory_hostname == 'ctl01'
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A controller root holding the rendered files (out/<host>/), the manifests and the PKI."""
    root = tmp_path_factory.mktemp("controller")
    inventory = root / "inventory" / "example"
    shutil.copytree(EXAMPLE, inventory)
    play = root / "playbooks"
    for host in ("ctl01", "xavier01"):
        (play / "out" / host).mkdir(parents=True)
    (play / "render.yml").write_text(RENDER_PLAYBOOK)
    shutil.copy(REPO_ROOT / "roles" / "edgeferry_agent" / "defaults" / "main.yml",
                play / "agent_defaults.yml")
    (root / "roles").symlink_to(REPO_ROOT / "roles")
    LabCA.create(root / ".edgeferry" / "pki" / "example" / "ca")
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(play / "render.yml"),
         "-e", json.dumps({"edgeferry_ui_port": PORT,
                           "edgeferry_ui_extra_sans": [f"DNS:{EXTRA_SAN}"]})],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
             "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"), "ANSIBLE_NOCOLOR": "1",
             "EDGEFERRY_CONTROLLER_DIR": str(root / ".edgeferry")})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return root


def control_address() -> str:
    hosts = yaml.safe_load((EXAMPLE / "hosts.yml").read_text())["all"]["children"]
    return str(hosts["control"]["hosts"]["ctl01"]["edgeferry_address"])


def catalog_port(instance: str) -> int:
    doc = yaml.safe_load((REPO_ROOT / "roles/edgeferry/defaults/main.yml").read_text())
    return int(doc["edgeferry_agent_catalog"][instance]["port"])


def unit_settings(text: str) -> dict[str, str]:
    """The [Service] section's Key=Value lines (the last one wins, as systemd reads them)."""
    out: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def test_only_the_control_host_runs_the_ui_server(rendered: Path) -> None:
    inventory = rendered / "inventory" / "example"
    ctl = load_manifest(inventory, "ctl01", root=rendered)
    assert ctl.agent("ui").protocol == "https"
    assert {n for n, a in ctl.agents.items() if a.protocol == "https"} == {"ui"}
    edge = load_manifest(inventory, "xavier01", root=rendered)
    assert "ui" not in edge.agents and all(a.protocol == "grpc" for a in edge.agents.values())
    assert not (rendered / "playbooks" / "out" / "xavier01" / "ui.agent.yaml").exists()
    assert (rendered / "playbooks" / "out" / "xavier01" / "node.agent.yaml").exists()
    assert ui_urls(inventory, root=rendered) == {"ctl01": f"https://{control_address()}:{PORT}/"}


def test_the_rendered_configuration_is_what_the_ui_server_loads(rendered: Path) -> None:
    from agents.common.config import load_config
    from agents.ui.agent import UiSettings

    config = load_config(rendered / "playbooks" / "out" / "ctl01" / "ui.agent.yaml")
    address = control_address()
    assert (config.listen_host, config.listen_port) == (address, PORT)
    assert config.tls is not None
    assert (str(config.tls.cert), str(config.tls.key)) == ("/etc/edgeferry/pki/ui.crt",
                                                           "/etc/edgeferry/pki/ui.key")
    assert str(config.tls.ca_cert) == "/etc/edgeferry/pki/ca.crt"
    settings = config.settings_as(UiSettings)
    assert settings.audit_address == f"{address}:{catalog_port('audit')}"
    assert settings.smf is not None and settings.smf.address == f"{address}:{catalog_port('smf')}"
    assert settings.smf.services == {}
    assert str(settings.owner_token_key) == "/etc/edgeferry/ui-owner.key"
    assert settings.https_cert is None  # the lab CA's ui certificate serves HTTPS
    assert (settings.session_ttl_s, settings.max_failed_logins, settings.lockout_s) == (
        28800, 5, 300)


def test_the_unit_runs_the_ui_module_as_ef_ui_hardened_like_the_others(rendered: Path) -> None:
    out = rendered / "playbooks" / "out" / "ctl01"
    ui = unit_settings((out / "ui.agent.service").read_text())
    assert ui["User"] == ui["Group"] == "ef-ui"
    assert ui["ExecStart"] == ("/opt/edgeferry/venv/bin/python -m agents.ui "
                               "--config /etc/edgeferry/ui.yaml")
    assert ui["CapabilityBoundingSet"] == "" and "AmbientCapabilities" not in ui
    assert "SupplementaryGroups" not in ui  # no docker group
    hardening = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                 "PrivateTmp": "yes", "UMask": "0077", "Restart": "on-failure"}
    assert {k: ui.get(k) for k in hardening} == hardening
    # the same hardening as the audit agent's unit, user and command aside
    audit = unit_settings((out / "audit.agent.service").read_text())
    differ = {"User", "Group", "ExecStart", "SyslogIdentifier", "StateDirectory"}
    assert {k: v for k, v in ui.items() if k not in differ} == {
        k: v for k, v in audit.items() if k not in differ}


def test_the_ui_reads_only_its_own_copy_of_the_owner_token_key(rendered: Path) -> None:
    inventory = rendered / "inventory" / "example"
    doc: dict[str, Any] = json.loads(manifest_path(inventory, "ctl01", root=rendered).read_text())
    assert {p for p, agent in doc["secrets"].items() if agent == "ui"} == {
        "/etc/edgeferry/ui-owner.key"}
    assert doc["secrets"]["/etc/edgeferry/audit-owner.key"] == "audit"
    ui = next(a for a in doc["agents"] if a["name"] == "ui")
    assert ui["user"] == "ef-ui" and ui["key"] == "/etc/edgeferry/pki/ui.key"


def test_the_ui_certificate_is_a_lab_ca_server_and_client_certificate(rendered: Path) -> None:
    pki = rendered / ".edgeferry" / "pki" / "example"
    ca = x509.load_pem_x509_certificate((pki / "ca" / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((pki / "hosts" / "ctl01" / "ui.crt").read_bytes())
    assert oct((pki / "hosts" / "ctl01" / "ui.key").stat().st_mode & 0o777) == "0o600"
    # signed by the lab CA (a browser that trusts ca.crt accepts it)
    assert cert.issuer == ca.subject
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(cert.signature, cert.tbs_certificate_bytes,
                  ec.ECDSA(cert.signature_hash_algorithm))  # raises when it is not
    # its CN is the mTLS role ui (agents.common.authz reads the role from it)
    from agents.common.authz import principal_from_cn

    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert principal_from_cn(str(cn)).role == "ui"
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address(control_address()) in san.get_values_for_type(x509.IPAddress)
    assert {"ctl01", "ui", EXTRA_SAN} <= set(san.get_values_for_type(x509.DNSName))


def test_the_experiment_runner_reads_every_placed_port_the_ui_servers_included() -> None:
    """The controller reads the catalog without Ansible: the UI server's port, given as
    "{{ edgeferry_ui_port }}", is that variable's default (8443), every port an int."""
    from edgeferry.deploy.experiment import _catalog, agent_endpoints

    catalog, placement = _catalog()
    endpoints = agent_endpoints(EXAMPLE, catalog, placement)
    assert endpoints["ui"] == {"ctl01": f"{control_address()}:8443"}
    assert endpoints["audit"] == {"ctl01": f"{control_address()}:50053"}
