"""Figure 11 like the paper without a lab: the four costs and the link traffic they come from,
the ledger lab's cloud behind its own shaped link (and no peers on it), why the low host's
self-evaluation refuses and the high host's accepts, and refusals of a bad set-up."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from agents.ledger.decisions import NodeResources, self_evaluate
from agents.ledger.transactions import ContainerMetadata
from edgeferry.experiments.scenario import ScenarioContext, ScenarioUnavailable
from edgeferry.experiments.scenarios.ledger_migration import (
    CPU_NEED,
    LedgerMigration,
    Traffic,
    costs,
    mixture,
)
from edgeferry.experiments.workloads import LedgerMigrationWorkload
from edgeferry.lab.config import load_spec

REPO = Path(__file__).resolve().parents[3]


def test_each_cost_is_the_path_value_over_direct():
    direct = {"latency": 8.0, "throughput": 40e6, "storage": 50e6, "bandwidth": 41e6}
    ledger = {"latency": 4.0, "throughput": 20e6, "storage": 25e6, "bandwidth": 30e6}
    central = {"latency": 24.0, "throughput": 80e6, "storage": 150e6, "bandwidth": 82e6}
    got = costs({"direct": direct, "ledger": ledger, "central": central})
    assert got == pytest.approx({
        "latency_cost_ledger": 0.5, "throughput_cost_ledger": 0.5,
        "storage_cost_ledger": 0.5, "bandwidth_cost_ledger": 30 / 41,
        "latency_cost_central": 3.0, "throughput_cost_central": 2.0,
        "storage_cost_central": 3.0, "bandwidth_cost_central": 2.0})
    # the duplex reading only where the values carry it
    direct["throughput_duplex"] = 40e6
    ledger["throughput_duplex"], central["throughput_duplex"] = 20e6, 40e6
    got = costs({"direct": direct, "ledger": ledger, "central": central})
    assert got["throughput_duplex_cost_ledger"] == pytest.approx(0.5)
    assert got["throughput_duplex_cost_central"] == pytest.approx(1.0)


def test_a_path_mixes_its_high_and_low_destination_by_the_share():
    high = {"latency": 16.0, "storage": 64e6}
    low = {"latency": 0.2, "storage": 0.1e6}
    assert mixture(high, low, 0.5) == pytest.approx({"latency": 8.1, "storage": 32.05e6})
    assert mixture(high, low, 1.0) == high and mixture(high, low, 0.0) == low


def test_traffic_sums_links_counts_each_frame_once_and_finds_the_busiest():
    t = Traffic()
    # source sends 100 to the cloud; the cloud sends 100 on to the destination
    t.add({"edge1": (100, 5), "cloud": (3, 100), "control": (0, 0)})
    t.add({"cloud": (100, 4), "edge3": (2, 100), "edge1": (-7, 0)})  # a noop over-subtracted
    assert t.links == {"edge1": [100, 5], "cloud": [103, 104], "control": [0, 0],
                       "edge3": [2, 100]}
    assert t.total == 100 + 103 + 0 + 2  # what every host sent
    assert t.busiest == 207  # the cloud's link carried the container in and out
    assert t.busiest_direction == 104  # one direction of it


def test_the_ledger_lab_has_a_cloud_behind_its_own_shaped_link():
    spec = load_spec(REPO / "experiments" / "labs" / "ledgerlab.yaml")
    hosts = {h.name: h for h in spec.hosts}
    assert hosts["cloud"].role == "edge"
    assert spec.rate_bps(hosts["cloud"]) == 40_000_000
    assert spec.control.name == "control" and spec.rate_bps(spec.control) is None
    # the default workload's hosts are all in it, the destinations of both classes
    w = LedgerMigrationWorkload()
    assert {w.source, w.high, w.low, w.cloud} <= set(hosts)
    assert spec.host_class(hosts[w.high]) == "x86" and spec.host_class(hosts[w.low]) == "jetson"
    # the low host's CPU limit is below the container's declared need, the high host's is not
    assert spec.profiles[hosts[w.low].profile].cpus * 1000 < CPU_NEED
    assert spec.profiles[hosts[w.high].profile].cpus * 1000 > CPU_NEED


def test_algorithm2_refuses_the_low_host_and_takes_the_high_one():
    """Algorithm 2 tolerates one resource short; the low host lacks two."""
    meta = ContainerMetadata("10.254.0.11", "c1", 64_000_000, 0, CPU_NEED, "image-recog")
    low = NodeResources(16_000_000, 420, 0, ("image-recog",))  # resident load, 0.5 CPU
    high = NodeResources(2_100_000_000, 610, 0, ("image-recog",))  # CPU short only
    assert not self_evaluate(meta, low).accept
    assert self_evaluate(meta, high).accept


def test_the_cloud_hosts_no_peers_and_runs_the_central_service(tmp_path: Path):
    from edgeferry.experiments.ledger_lab import LabLedger

    roles = {"control": "control", "edge1": "edge", "edge2": "edge", "cloud": "edge"}
    lab = SimpleNamespace(name="ledgerlab", inventory=str(tmp_path),
                          hosts={h: {"role": r, "address": f"10.9.0.{i}"}
                                 for i, (h, r) in enumerate(roles.items(), 10)},
                          hosts_by_role=lambda role: [h for h, r in roles.items() if r == role])
    with_cloud = LabLedger(lab, lambda h: None, tmp_path, tmp_path, cloud="cloud")
    assert with_cloud.edges == ["edge1", "edge2"]
    assert with_cloud.central_host == "cloud"
    assert with_cloud.hosts == ["control", "edge1", "edge2", "cloud"]
    without = LabLedger(lab, lambda h: None, tmp_path, tmp_path)
    assert without.edges == ["edge1", "edge2", "cloud"] and without.central_host == "control"


def test_a_cloud_that_is_not_an_edge_role_host_is_refused(tmp_path: Path):
    from edgeferry.errors import OperationFailed
    from edgeferry.experiments.ledger_lab import LabLedger

    roles = {"control": "control", "edge1": "edge", "edge2": "edge"}
    lab = SimpleNamespace(name="l", inventory=str(tmp_path),
                          hosts={h: {"role": r, "address": "10.9.0.1"} for h, r in roles.items()},
                          hosts_by_role=lambda role: [h for h, r in roles.items() if r == role])

    def connect(host):
        raise AssertionError("nothing may run before the placement is checked")

    with pytest.raises(OperationFailed, match="cloud 'control' is not an edge-role host"):
        LabLedger(lab, connect, tmp_path, tmp_path, cloud="control").setup()


def test_the_workload_needs_four_distinct_hosts():
    with pytest.raises(ValueError, match="four hosts"):
        LedgerMigrationWorkload(high="edge3", low="edge3")


def test_the_scenario_is_refused_without_a_lab(tmp_path: Path):
    ctx = ScenarioContext(experiment="t", part="p", seed=1, workload={}, run_dir=tmp_path,
                          work_dir=tmp_path)
    with pytest.raises(ScenarioUnavailable, match="emulated lab"):
        LedgerMigration(LedgerMigrationWorkload()).prepare(ctx)


def test_the_shipped_experiment_compares_with_the_papers_values():
    import yaml

    doc = yaml.safe_load((REPO / "experiments" / "ledger-decision.yaml").read_text())
    part = next(p for p in doc["parts"] if p["scenario"] == "ledger-migration")
    refs = {(r["metric"], r["value"]) for r in part["references"]}
    assert ("latency_cost_ledger", 0.9) in refs and ("latency_cost_central", 1.5) in refs
    assert ("throughput_cost_ledger", 0.6) in refs and ("throughput_cost_central", 1.8) in refs
    assert part["parameters"]["nodes"] == 100 or 100 in part["parameters"]["nodes"]
    assert json.dumps(part).count("ablation") == 0  # the ablation is the other parts
    ablations = [p for p in doc["parts"] if p["scenario"] == "ledger-decision"]
    assert ablations and all("ablation" in p["note"] for p in ablations)


def test_the_noop_round_trip_is_the_median_per_direction_and_wire_bytes_sums_what_hosts_sent(
        tmp_path: Path):
    from edgeferry.experiments.ledger_lab import LabLedger

    roles = {"control": "control", "edge1": "edge"}
    lab = SimpleNamespace(name="l", inventory=str(tmp_path), hosts={},
                          hosts_by_role=lambda role: [h for h, r in roles.items() if r == role])
    ledger = LabLedger(lab, lambda h: None, tmp_path, tmp_path)
    # (sent, received) per host before and after each of three no-ops on edge1
    idle = (9, 9)
    readings = iter([{"edge1": (0, 0), "control": idle}, {"edge1": (250, 200), "control": idle},
                     {"edge1": (250, 200), "control": idle},
                     {"edge1": (520, 410), "control": idle},
                     {"edge1": (520, 410), "control": idle},
                     {"edge1": (780, 640), "control": idle}])
    ledger.link_counters = lambda: next(readings)  # type: ignore[method-assign]
    calls = []
    session = SimpleNamespace(call=lambda cmd: calls.append(cmd) or {})
    assert ledger.noop_link_bytes("edge1", session, samples=3) == (260, 210)
    assert calls == [{"op": "noop"}] * 3
    final = {"edge1": (780, 640), "control": (9, 1)}
    ledger.link_counters = lambda: final  # type: ignore[method-assign]
    assert ledger.wire_bytes() == 789
