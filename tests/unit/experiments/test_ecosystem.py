"""The ecosystem takes what was deployed from the deployment manifests, not from constants."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import pytest

from edgeferry.deploy.manifest import ManifestError, manifest_path
from edgeferry.experiments.ecosystem import Deployed, Ecosystem
from edgeferry.experiments.scenario import (
    Endpoints,
    ScenarioContext,
    ScenarioUnavailable,
    TLSMaterial,
)

FIXTURES = Path(__file__).parents[1] / "deploy" / "manifests"  # as the role writes them


def deployed_inventory(tmp_path: Path, hosts: tuple[str, ...]) -> Path:
    inventory = tmp_path / "inventory" / "lab"
    inventory.mkdir(parents=True)
    for host in hosts:
        path = manifest_path(inventory, host, root=tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / f"{host}.json", path)
    return inventory


def test_deployed_reads_workloads_and_owner(tmp_path: Path) -> None:
    inventory = deployed_inventory(tmp_path, ("ctl01", "xavier01"))
    d = Deployed.read(inventory, "ctl01", ["xavier01"], root=tmp_path)
    assert d.container_owner == "container-owner"
    nms, synthetic = d.workloads["nms"], d.workloads["synthetic"]
    assert (nms.name, nms.container_port) == ("nms", 7070)
    assert [(s.container_path, s.path, s.uid) for s in nms.secrets] == [
        ("/run/secrets/nms.key", PurePosixPath("/etc/edgeferry/nms.key"), 65534),
        ("/run/secrets/nms.crt", PurePosixPath("/etc/edgeferry/nms-tls.crt"), 65534),
        ("/run/secrets/nms-tls.key", PurePosixPath("/etc/edgeferry/nms-tls.key"), 65534)]
    assert (synthetic.name, synthetic.container_port, synthetic.secrets) == ("synthetic", 8080, ())


def test_deployed_needs_the_manifest_of_every_edge(tmp_path: Path) -> None:
    inventory = deployed_inventory(tmp_path, ("ctl01", "xavier01"))
    with pytest.raises(ManifestError, match="no deployment manifest of host 'xavier02'"):
        Deployed.read(inventory, "ctl01", ["xavier01", "xavier02"], root=tmp_path)
    with pytest.raises(ManifestError, match=r"host 'xavier01' .* lacks agent 'smf'"):
        Deployed.read(inventory, "xavier01", ["xavier01"], root=tmp_path)


def test_open_without_manifests_says_deploy_first(tmp_path: Path) -> None:
    inventory = tmp_path / f"never-deployed-{tmp_path.name}"  # no state under the checkout
    inventory.mkdir()
    tls = TLSMaterial(tmp_path / "ca.crt", tmp_path / "c.crt", tmp_path / "c.key")
    endpoints = Endpoints(agents={"smf": {"ctl01": "192.0.2.10:50051"},
                                  "node": {"xavier01": "192.0.2.21:50056"}}, tls=tls)
    ctx = ScenarioContext(experiment="t", part="p", seed=1, workload={}, run_dir=tmp_path,
                          work_dir=tmp_path, inventory=inventory, endpoints=endpoints,
                          connect=lambda host: None)
    with pytest.raises(ScenarioUnavailable, match=r"no deployment manifest of host 'ctl01' .*"
                                                  r"deploy first"):
        Ecosystem.open(ctx)
