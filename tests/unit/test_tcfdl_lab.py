"""TCFDL on the lab, the parts that need no lab: a task's phases as trial phases
(edgeferry.tcfdl), the lab file's switch (tcfdl: true, per-host tcfdl_cluster) in the generated
inventory, the nats-server users' DNs for the pki role's certificates, and the case study's
split model against an independent float64 forward pass."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.tcfdl_master.natsconf import ClusterNats, dn, render
from agents.tcfdl_worker import mlp
from edgeferry.lab.config import load_spec
from edgeferry.lab.inventory import render_inventory
from edgeferry.tcfdl import (
    PHASES,
    PhaseError,
    bound_s,
    crypto_metrics,
    framework_s,
    overhead_s,
    trial_phases,
)

REPO = Path(__file__).resolve().parents[2]

# A Case 3 task under HSE as the client reports it (ns; the trace order: master a, then b)
CASE3_HSE = {"client.encrypt": 12_000, "client.decrypt": 3_000,
             "master-a.route": 40_000, "master-a.proxy_rpc": 900_000,
             "master-a.reencrypt": 50_000, "master-a.publish": 0,
             "master-b.route": 30_000, "master-b.proxy_rpc": 700_000,
             "master-b.reencrypt": 45_000, "master-b.publish": 0,
             "worker.decrypt": 11_000, "worker.process": 2_000_000, "worker.encrypt": 4_000,
             "deliver": 5_000_000}


def test_case3_phases_add_up_to_the_total() -> None:
    phases = trial_phases(CASE3_HSE)
    names = [p for p, _ in phases]
    assert names == ["client-encrypt", "m1-route", "m1-proxy", "m1-publish", "m2-route",
                     "m2-proxy", "m2-publish", "worker-decrypt", "worker-process",
                     "worker-encrypt", "client-decrypt", "deliver"]
    assert names == list(PHASES)
    # re-encryption is inside its master's proxy call: the total counts it once
    total_ns = 12_000 + 3_000 + 40_000 + 900_000 + 30_000 + 700_000 + 11_000 + 2_000_000 \
        + 4_000 + 5_000_000
    assert sum(s for _, s in phases) == pytest.approx(total_ns / 1e9)
    assert dict(phases)["m2-proxy"] == pytest.approx(700e-6)


def test_masters_named_by_position_not_by_cluster() -> None:
    # a client in cluster b sending to cluster a: b's master is m1
    renamed = {k.replace("master-a", "master-x").replace("master-b", "master-a")
               .replace("master-x", "master-b"): v for k, v in CASE3_HSE.items()}
    order = ["client.encrypt", "master-b.route", "master-b.proxy_rpc", "master-b.reencrypt",
             "master-a.route", "master-a.proxy_rpc", "master-a.reencrypt", "deliver"]
    phases = dict(trial_phases({k: renamed[k] for k in order}))
    assert phases["m1-proxy"] == pytest.approx(900e-6)  # master-b, first on the path
    assert phases["m2-proxy"] == pytest.approx(700e-6)  # master-a, second


def test_case1_has_one_master() -> None:
    task = {"client.encrypt": 0, "client.decrypt": 0, "master-a.route": 10_000,
            "master-a.publish": 0, "worker.process": 5_000, "deliver": 100_000}
    assert [p for p, _ in trial_phases(task)] == ["client-encrypt", "m1-route", "m1-publish",
                                                   "worker-process", "client-decrypt",
                                                   "deliver"]
    assert framework_s(task) == pytest.approx(10e-6)


@pytest.mark.parametrize("bad", [{"master-a.teleport": 1}, {"client.route": 1},
                                 {"deliver": -1},
                                 {"master-a.route": 1, "master-b.route": 1,
                                  "master-c.route": 1}])
def test_malformed_phases_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(PhaseError):
        trial_phases(bad)


def test_crypto_and_framework_metrics() -> None:
    m = crypto_metrics(CASE3_HSE)
    # client 12 + 3, proxies 50 + 45, worker 11 + 4 (µs), in seconds
    assert m["crypto_s"] == pytest.approx(125e-6)
    assert m["reencrypt_s"] == pytest.approx(95e-6)
    assert (m["m1_reencrypt_s"], m["m2_reencrypt_s"]) == (pytest.approx(50e-6),
                                                         pytest.approx(45e-6))
    assert framework_s(CASE3_HSE) == pytest.approx((40 + 900 + 30 + 700) * 1e-6)


def test_overhead_is_the_total_less_the_bare_round_trip_and_the_function() -> None:
    # a 48.0 ms task whose bare round trip took 30.5 ms and whose MLP ran 2 ms (CASE3_HSE)
    assert overhead_s(48_000_000, 30_500_000, CASE3_HSE) == pytest.approx(15.5e-3)
    # a bare round trip slower than the task (noise) gives a negative overhead, kept as is
    assert overhead_s(10_000_000, 12_000_000, {}) == pytest.approx(-2e-3)


def test_bound_is_bytes_over_each_link() -> None:
    # 4 MiB out and 16 KiB back over a 1 Gbit/s and a 40 Mbit/s link
    task, result = 4 * 1024 * 1024, 16 * 1024
    expected = (task + result) * 8 / 1e9 + (task + result) * 8 / 40e6
    assert bound_s(task, result, [1e9, 40e6]) == pytest.approx(expected)
    with pytest.raises(ValueError):
        bound_s(task, result, [])


# -- the lab file ------------------------------------------------------------------------------
def test_tcfdllab_enables_tcfdl_in_its_inventory() -> None:
    spec = load_spec(REPO / "experiments" / "labs" / "tcfdllab.yaml")
    assert (spec.name, spec.subnet, spec.tcfdl) == ("tcfdllab", "10.244.0.0/24", True)
    files = render_inventory(spec, Path("/k"), Path("/kh"))
    lab = yaml.safe_load(files["group_vars/all/lab.yml"])
    assert lab["edgeferry_tcfdl_enabled"] is True
    hosts = yaml.safe_load(files["hosts.yml"])["all"]["children"]
    clusters = {h: v.get("edgeferry_tcfdl_cluster") for role in ("control", "edge")
                for h, v in hosts[role]["hosts"].items()}
    assert clusters == {"control": "a", "edge1": "a", "edge2": "b"}


def test_a_lab_without_tcfdl_renders_nothing_of_it() -> None:
    spec = load_spec(REPO / "experiments" / "labs" / "ledgerlab.yaml")
    files = render_inventory(spec, Path("/k"), Path("/kh"))
    assert "tcfdl" not in "".join(files.values())
    # and its fingerprint ignores the new, unset fields (a running lab is not "changed")
    doc = spec.model_dump(mode="json")
    doc.pop("tcfdl")
    for host in doc["hosts"]:
        host.pop("tcfdl_cluster")
    import hashlib
    import json
    blob = json.dumps(doc, sort_keys=True).encode()
    assert spec.fingerprint() == hashlib.sha256(blob).hexdigest()[:16]


def test_lab_file_refuses_a_bad_cluster_name(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "experiments" / "labs" / "tcfdllab.yaml").read_text())
    doc["hosts"][1]["tcfdl_cluster"] = "Cluster A"
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(Exception, match="tcfdl_cluster"):
        load_spec(path)


# -- nats-server users for the deployment's certificates ---------------------------------------
def test_dn_with_the_role_as_organizational_unit() -> None:
    assert dn("tcfdl-worker.edge1", "edgeferry", role_unit=True) == \
        "CN=tcfdl-worker.edge1,OU=tcfdl-worker,O=edgeferry"
    assert dn("tcfdl-worker.edge1") == "CN=tcfdl-worker.edge1,O=edgeferry lab"
    conf = render(ClusterNats("a", "10.0.0.1:4222", Path("/c"), Path("/k"), Path("/ca"),
                              Path("/s"), masters=["tcfdl-master.ctl"], organization="edgeferry",
                              role_unit=True))
    assert '"CN=tcfdl-master.ctl,OU=tcfdl-master,O=edgeferry"' in conf


# -- the case study's split model --------------------------------------------------------------
def test_two_stages_equal_an_independent_unsplit_forward_pass() -> None:
    m = mlp.model()
    data = os.urandom(256 * 37 + 11)
    x = np.zeros(-(-len(data) // mlp.IN_DIM) * mlp.IN_DIM)
    x[:len(data)] = np.frombuffer(data, dtype=np.uint8) / 255.0
    h = np.maximum(x.reshape(-1, mlp.IN_DIM) @ m.w1.astype(np.float64) + m.b1, 0)
    reference = bytes(np.argmax(h @ m.w2.astype(np.float64) + m.b2, axis=1).astype(np.uint8))
    hidden = mlp.stage(1, data)
    assert len(hidden) == 38 * mlp.HIDDEN * 4
    assert mlp.stage(2, hidden) == reference
    with pytest.raises(ValueError, match="float32"):
        mlp.stage(2, b"\0" * 5)
    with pytest.raises(ValueError, match="stages"):
        mlp.stage(3, data)
