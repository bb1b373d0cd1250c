"""Seed-002 edge attributes come from the lab file / inventory, validated as the audit agent
validates them, over documented defaults; a hardware inventory states them the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agents.audit.domain import PolicyError
from edgeferry.auditpolicy import INVENTORY_VARIABLE, inventory_edge_attributes
from edgeferry.errors import ConfigError
from edgeferry.lab.config import load_spec
from edgeferry.lab.inventory import render_inventory, write_inventory

#: The documented defaults (edgeferry/auditpolicy.py, README), written out by hand.
X86_DEFAULT = {"eDAl": "jp", "eDAo": "caA", "eHRh": "deA", "eHRt": "docker", "eHRac": "-",
               "eHRaf": "-", "eHRc": "2.6", "eHRm": "3", "eHRgpu": "no"}
JETSON_DEFAULT = {**X86_DEFAULT, "eHRm": "1.5"}

LAB = """\
profiles:
  x86: {cpus: 1, memory: 2g}
  small: {class: jetson, cpus: 0.5, memory: 1g}
hosts:
- {name: control, role: control, profile: x86}
- {name: e1, role: edge, profile: x86}
- {name: e2, role: edge, profile: small, audit: {eDAl: us, eHRm: 8, eHRt: [docker, lxc]}}
- {name: e3, role: edge, profile: small, audit: {eHRgpu: "yes", eHRaf: "*"}}
"""


def _host_vars(spec_text: str, tmp_path: Path) -> dict[str, dict[str, object]]:
    lab = tmp_path / "lab.yaml"
    lab.write_text(spec_text)
    files = render_inventory(load_spec(lab), tmp_path / "k", tmp_path / "kh")
    hosts = yaml.safe_load(files["hosts.yml"])["all"]["children"]
    return {**hosts["control"]["hosts"], **hosts["edge"]["hosts"]}


def test_a_lab_file_states_attributes_over_the_defaults(tmp_path: Path) -> None:
    hv = _host_vars(LAB, tmp_path)
    assert INVENTORY_VARIABLE not in hv["control"]
    assert hv["e1"][INVENTORY_VARIABLE] == X86_DEFAULT
    assert hv["e2"][INVENTORY_VARIABLE] == {**JETSON_DEFAULT, "eDAl": "us", "eHRm": "8",
                                            "eHRt": "docker,lxc"}
    # "*": not declared (and rendered so, to read back the same)
    assert hv["e3"][INVENTORY_VARIABLE] == {**JETSON_DEFAULT, "eHRgpu": "yes", "eHRaf": "*"}


def test_edges_added_by_flag_take_the_defaults_of_their_class() -> None:
    spec = load_spec(edges=6)
    attrs = {h.name: spec.audit_attributes(h) for h in spec.edges}
    assert attrs["edge1"] == X86_DEFAULT
    assert attrs["edge3"] == JETSON_DEFAULT
    # new edges cycle the default lab's edge profiles: x86, x86, jetson
    assert [attrs[f"edge{i}"] for i in (4, 5, 6)] == [X86_DEFAULT, X86_DEFAULT,
                                                      JETSON_DEFAULT]


@pytest.mark.parametrize("audit, element, fragment", [
    ("{eDAx: jp}", "eDAx", "unknown edge attribute"),
    ("{cDAl: jp}", "cDAl", "that is a container requirement"),
    ("{eDAl: zz}", "eDAl", "unknown country code 'zz'"),
    ("{eDAl: 'jp,us'}", "eDAl", "takes exactly one value"),
    ("{eHRm: lots}", "eHRm", "lots"),
    ("{eHRgpu: maybe}", "eHRgpu", "'maybe' is not yes/no"),
])
def test_a_bad_element_is_refused_naming_the_host_and_the_element(
        tmp_path: Path, audit: str, element: str, fragment: str) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB.replace("{eHRgpu: \"yes\", eHRaf: \"*\"}", audit))
    with pytest.raises(ConfigError) as err:
        load_spec(lab)
    text = str(err.value)
    assert text.startswith(f"{lab}: hosts.3: host 'e3': audit: {element}: "), text
    assert fragment in text


def test_the_message_is_the_audit_agents_own(tmp_path: Path) -> None:
    """Same validation as `edgeferry audit` / the agent: its message, verbatim, in ours."""
    from agents.audit.domain import parse_edge

    with pytest.raises(PolicyError) as agent:
        parse_edge("e3", {"eDAl": "zz"})
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB.replace("{eHRgpu: \"yes\", eHRaf: \"*\"}", "{eDAl: zz}"))
    with pytest.raises(ConfigError) as ours:
        load_spec(lab)
    assert str(ours.value).endswith(str(agent.value))


def test_audit_on_the_control_host_is_refused(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB.replace("role: control, profile: x86}",
                               "role: control, profile: x86, audit: {eDAl: jp}}"))
    with pytest.raises(ConfigError, match=r"hosts.0: host 'control': audit: attributes are "
                                          r"for edge hosts only"):
        load_spec(lab)


# ------------------------------------------------------------------------ inventories
def _hardware_inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "hw"
    (inv / "group_vars" / "jetson").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "edge": {"hosts": {
            "x86edge01": {"edgeferry_profile": "x86",
                          INVENTORY_VARIABLE: {"eDAl": "fr", "eDAo": "caB"}},
            "xavier01": {"edgeferry_profile": "jetson"},
            "xavier02": {"edgeferry_profile": "jetson"}}},
        "jetson": {"hosts": {"xavier01": None, "xavier02": None}}}}}))
    (inv / "group_vars" / "jetson" / "audit.yml").write_text(
        f"{INVENTORY_VARIABLE}: {{eHRgpu: 'yes', eHRaf: tensorflow}}\n")
    (inv / "host_vars" / "xavier02.yml").write_text(
        f"{INVENTORY_VARIABLE}: {{eDAl: us, eHRgpu: 'yes', eHRaf: tensorflow}}\n")
    return inv


def test_a_hardware_inventory_states_the_same_variable(tmp_path: Path) -> None:
    inv = _hardware_inventory(tmp_path)
    got = inventory_edge_attributes(inv, ["x86edge01", "xavier01", "xavier02"])
    assert got["x86edge01"] == {**X86_DEFAULT, "eDAl": "fr", "eDAo": "caB"}
    assert got["xavier01"] == {**JETSON_DEFAULT, "eHRgpu": "yes", "eHRaf": "tensorflow"}
    # host_vars replace the group's value (Ansible's precedence; dicts are not merged)
    assert got["xavier02"] == {**JETSON_DEFAULT, "eDAl": "us", "eHRgpu": "yes",
                               "eHRaf": "tensorflow"}


def test_a_bad_inventory_value_names_the_inventory_host_and_element(tmp_path: Path) -> None:
    inv = _hardware_inventory(tmp_path)
    (inv / "host_vars" / "xavier02.yml").write_text(f"{INVENTORY_VARIABLE}: {{eHRc: fast}}\n")
    with pytest.raises(PolicyError) as err:
        inventory_edge_attributes(inv, ["x86edge01", "xavier02"])
    assert str(err.value).startswith(
        f"inventory {inv}: host xavier02: {INVENTORY_VARIABLE}: eHRc: ")


def test_the_rendered_lab_inventory_reads_back_the_same(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB)
    spec = load_spec(lab)
    write_inventory(tmp_path / "inv", render_inventory(spec, tmp_path / "k", tmp_path / "kh"))
    got = inventory_edge_attributes(tmp_path / "inv", [h.name for h in spec.edges])
    assert got == {h.name: spec.audit_attributes(h) for h in spec.edges}
    assert got["e1"] == X86_DEFAULT
