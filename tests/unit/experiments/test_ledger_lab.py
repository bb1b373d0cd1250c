"""The ledger's lab placement without a lab: peer distribution, ports, rendered configs (through
the agent's own config loader), the scenario's refusal without a lab, the steps' host/agent
needs, and Figure 11's values read from the seed's text."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from agents.common.config import load_config
from agents.ledger.agent import LedgerSettings, peer_ids
from edgeferry.experiments import registry
from edgeferry.experiments.ledger_lab import (
    ROLE_OFFSETS,
    agent_config,
    destination_peer,
    distribute,
    peer_prefix,
    peer_settings,
    port_of,
)
from edgeferry.experiments.scenario import ScenarioContext, ScenarioUnavailable
from edgeferry.experiments.scenarios.ledger_decision import LedgerDecision
from edgeferry.experiments.schema import Experiment, parse_experiment
from edgeferry.experiments.steps import _agents, _uses_hosts
from edgeferry.experiments.workloads import LedgerWorkload

EDGES = ["edge1", "edge2", "edge3"]


@pytest.mark.parametrize("peers, expected", [(10, [4, 3, 3]), (50, [17, 17, 16]),
                                             (99, [33, 33, 33]), (100, [34, 33, 33])])
def test_peers_are_split_evenly_over_the_three_edges(peers, expected):
    got = distribute(peers, EDGES)
    assert list(got.values()) == expected and list(got) == EDGES
    assert sum(got.values()) == peers


def test_hosts_without_a_peer_are_left_out_and_nonsense_is_refused():
    assert distribute(2, EDGES) == {"edge1": 1, "edge2": 1}
    with pytest.raises(ValueError):
        distribute(0, EDGES)
    with pytest.raises(ValueError):
        distribute(5, [])


def test_every_network_and_role_gets_its_own_port():
    ports = [port_of(50400, i, role) for i in range(3) for role in ROLE_OFFSETS]
    assert len(set(ports)) == len(ports) and min(ports) == 50400


def test_rendered_peer_config_is_what_the_agent_loads(tmp_path: Path):
    prefix = peer_prefix("edge2", 1)
    settings = peer_settings(prefix, 33, "10.254.0.10:50410", "ab" * 32)
    raw = agent_config("ledger", "10.254.0.12", 50413, "/tmp/edgeferry-ledger.x",
                       "net1-peers-data", settings, "ledger-peer")
    path = tmp_path / "peers.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path, {})
    assert (config.listen_host, config.listen_port) == ("10.254.0.12", 50413)
    assert str(config.tls.key) == "/tmp/edgeferry-ledger.x/tls/ledger-peer.key"
    assert str(config.resolved_data_dir) == "/tmp/edgeferry-ledger.x/net1-peers-data"
    s = config.settings_as(LedgerSettings)
    assert (s.role, s.peers, s.validator, s.node_id) == ("peers", 33, "10.254.0.10:50410",
                                                         "edge2-net1")
    # the destination queries an identity its own edge's process really hosts
    assert destination_peer(prefix, 33) == peer_ids(s.node_id, s.peers)[-1]


def test_validator_and_central_configs_load(tmp_path: Path):
    for name, settings in (("v", {"role": "validator", "node_id": "validator"}),
                           ("c", {"role": "central"})):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(agent_config("ledger", "10.254.0.10", 50400, "/tmp/d",
                                                    f"{name}-data", settings,
                                                    "ledger-validator")))
        assert load_config(path, {}).settings_as(LedgerSettings).role == settings["role"]


def test_lab_placement_is_refused_without_a_lab(tmp_path: Path):
    ctx = ScenarioContext(experiment="t", part="p", seed=1, workload={}, run_dir=tmp_path,
                          work_dir=tmp_path)
    scenario = LedgerDecision(LedgerWorkload(placement="lab"))
    with pytest.raises(ScenarioUnavailable, match="emulated lab"):
        scenario.prepare(ctx)


def _experiment(placement: str) -> Experiment:
    return parse_experiment({
        "name": "x", "description": "d", "target": {"lab": {}}, "scenario": "ledger-decision",
        "workload": {"placement": placement}, "parameters": {"nodes": [10]}}, "test")


def test_only_the_lab_placement_needs_hosts_and_the_deployed_ledger():
    spec = registry.spec_of("ledger-decision")
    assert not spec.part_uses_hosts({"placement": "loopback"})
    assert spec.part_uses_hosts({"placement": "lab"})
    assert not _uses_hosts(_experiment("loopback")) and _agents(_experiment("loopback")) == []
    assert _uses_hosts(_experiment("lab")) and _agents(_experiment("lab")) == ["ledger"]


def test_figure11_values_are_read_from_the_seed_text(tmp_path: Path):
    from benchmarks.bench_ledger_lab import paper_figure11

    (tmp_path / "001_x.txt").write_text(
        "The blockchain-based approach decreases the latency to 0.7 and the throughput cost to "
        "0.4 by ... the central cloud-based technique increases the latency to 2.5, and the "
        "throughput cost to 1.9. Moreover")
    got = paper_figure11((tmp_path,))
    assert got["ledger"] == {"latency": 0.7, "throughput": 0.4}
    assert got["central"] == {"latency": 2.5, "throughput": 1.9}
    assert not math.isnan(got["ledger"]["latency"])
    with pytest.raises(SystemExit, match="not found"):
        paper_figure11((tmp_path / "nowhere",))


VENV = "/srv/edgeferry/venv"  # not the role's default: the manifest is where it is read
PYTHON = f"{VENV}/bin/python"


def _lab_ledger(tmp_path: Path, run, manifests: dict[str, dict] | None = None):
    """A LabLedger over a fake three-host lab whose hosts answer `run(host, command)`; the
    deployment manifests (host -> JSON; default: every host with VENV) under tmp_path."""
    from types import SimpleNamespace

    from edgeferry.deploy.manifest import manifest_path
    from edgeferry.experiments.ledger_lab import LabLedger
    from edgeferry.pki import LabCA

    LabCA.create(tmp_path / "ca")
    roles = {"control": "control", "edge1": "edge", "edge2": "edge"}
    inventory = tmp_path / "inventory" / "lab"
    inventory.mkdir(parents=True)
    lab = SimpleNamespace(name="lab", inventory=str(inventory),
                          hosts={h: {"role": r, "address": f"10.9.0.{i}"}
                                 for i, (h, r) in enumerate(roles.items(), 10)},
                          hosts_by_role=lambda role: [h for h, r in roles.items() if r == role])
    if manifests is None:
        manifests = {h: {"host": h, "container_owner": "o", "agents": [], "venv": VENV}
                     for h in roles}
    for host, doc in manifests.items():
        path = manifest_path(inventory, host, tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))

    def connect(host):  # no put(): these tests copy nothing
        return SimpleNamespace(host=host, run=lambda command, **kw: run(host, command))

    return LabLedger(lab, connect, tmp_path / "ca", tmp_path / "work", manifest_root=tmp_path)


def test_hosts_without_the_deployed_agents_are_named_before_any_trial(tmp_path: Path):
    from types import SimpleNamespace

    from edgeferry.errors import OperationFailed

    commands = []

    def run(host, command):
        commands.append((host, command))
        return SimpleNamespace(exited=1, stdout="", stderr="")

    ledger = _lab_ledger(tmp_path, run)
    with pytest.raises(OperationFailed, match=f"control has no {PYTHON}.*--skip-deploy"):
        ledger.setup()
    assert commands == [("control", f"test -x {PYTHON}")]


def test_the_interpreter_is_the_one_the_deployment_manifest_names(tmp_path: Path):
    from edgeferry.deploy.manifest import ManifestError

    def run(host, command):
        raise AssertionError("nothing may run before the manifests are read")

    with pytest.raises(ManifestError, match=r"no deployment manifest of host 'control' .*"
                                            r"deploy first"):
        _lab_ledger(tmp_path / "none", run, manifests={}).setup()
    old = {"host": "control", "container_owner": "o", "agents": []}  # an older role: no venv
    with pytest.raises(ManifestError, match=r"host 'control' .* lacks 'venv' \(written by an "
                                            r"older edgeferry_agent role\?\); deploy again"):
        _lab_ledger(tmp_path / "old", run, manifests={"control": old}).setup()


def test_the_probe_is_the_deployed_agents_module_not_a_copied_file():
    from edgeferry.experiments.ledger_lab import probe_command

    remote = "/tmp/edgeferry-ledger.x"
    assert probe_command(remote, f"{remote}/probe-net0-source.json", PYTHON) == (
        f"cd {remote} && exec {PYTHON} -u -m agents.ledger.probe "
        f"{remote}/probe-net0-source.json 2> {remote}/probe-net0-source.json.log")


def test_an_edge_whose_agents_lack_the_probe_is_named_before_anything_is_copied(
        tmp_path: Path):
    from types import SimpleNamespace

    from edgeferry.errors import OperationFailed

    commands = []
    probe_help = f"{PYTHON} -m agents.ledger.probe --help"

    def run(host, command):  # no put(): nothing may be copied
        commands.append((host, command))
        return SimpleNamespace(exited=1 if command == probe_help else 0, stdout="", stderr="")

    ledger = _lab_ledger(tmp_path, run)
    missing = r"agents deployed on edge1 have no agents\.ledger\.probe.*skip-deploy"
    with pytest.raises(OperationFailed, match=missing):
        ledger.setup()
    assert commands == [("control", f"test -x {PYTHON}"), ("edge1", f"test -x {PYTHON}"),
                        ("edge1", probe_help)]
