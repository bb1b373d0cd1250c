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


class _Publishing(Ecosystem):
    """publish_for's choices with the node agents' answers and the registry calls faked (unit
    test only): ``hosts`` maps a host to the platform its node agent reports."""

    def __init__(self, hosts: dict[str, str]) -> None:  # no lab: nothing else is used
        self.hosts, self.published, self.indexes = hosts, [], []

    def workload_platform(self, host):  # type: ignore[no-untyped-def,override]
        from edgeferry.images.multiarch import platform_of

        plat = platform_of(self.hosts[host])
        return plat, "native" if plat.architecture == "amd64" else "qemu-user"

    def publish(self, local_tag):  # type: ignore[no-untyped-def,override]
        self.published.append(local_tag)
        return f"reg:5000/{local_tag}"

    def publish_multiarch(self, builds):  # type: ignore[no-untyped-def,override]
        from edgeferry.images.index_push import PublishedIndex

        self.indexes.append({str(p): tag for p, tag in builds.items()})
        return PublishedIndex("reg:5000/img:multi-x", "sha256:" + "1" * 64,
                              {str(p): "sha256:" + "2" * 64 for p in builds})


def test_publish_for_native_hosts_is_one_image_and_mixed_hosts_one_index(monkeypatch) -> None:
    from edgeferry.images import multiarch
    from edgeferry.images.multiarch import AMD64

    monkeypatch.setattr(multiarch, "controller_platform", lambda: AMD64)
    built: list[str] = []

    def build(plat):  # type: ignore[no-untyped-def]
        built.append(str(plat))
        return f"img:{plat.architecture}"

    eco = _Publishing({"edge1": "linux/amd64", "edge2": "linux/amd64", "edge3": "linux/arm64"})
    assert eco.publish_for(["edge1", "edge2"], build) == ("reg:5000/img:amd64", None)
    assert built == ["linux/amd64"] and eco.indexes == []

    ref, index = eco.publish_for(["edge1", "edge3"], build)
    assert ref == "reg:5000/img:multi-x" and index is not None
    assert eco.indexes == [{"linux/amd64": "img:amd64", "linux/arm64": "img:arm64"}]
    # an arm64-only pair still gets the controller's platform in its index: the image must
    # run where the service is first deployed and on the way back
    eco.indexes.clear()
    eco.publish_for(["edge3"], build)
    assert eco.indexes == [{"linux/amd64": "img:amd64", "linux/arm64": "img:arm64"}]


class _Asking(Ecosystem):
    """workload_platform against node agents faked as GetResources answers (unit test only);
    ``asked`` counts the calls per host."""

    def __init__(self, answers: dict[str, tuple[str, str]]) -> None:  # no lab
        self.answers, self.asked, self._platforms = answers, {}, {}

    def node(self, host):  # type: ignore[no-untyped-def,override]
        from types import SimpleNamespace

        def get_resources(request, timeout):  # type: ignore[no-untyped-def]
            self.asked[host] = self.asked.get(host, 0) + 1
            plat, arch = self.answers[host]
            return SimpleNamespace(platform=plat, architecture=arch)
        return SimpleNamespace(GetResources=get_resources)


def test_each_node_agent_is_asked_its_platform_once() -> None:
    eco = _Asking({"e1": ("linux/amd64", "x86_64"), "e3": ("linux/arm64", "x86_64")})
    first = {h: eco.workload_platform(h) for h in ("e1", "e3")}
    again = {h: eco.workload_platform(h) for h in ("e3", "e1", "e3")}
    assert eco.asked == {"e1": 1, "e3": 1}
    assert again == first
    assert (str(first["e1"][0]), first["e1"][1]) == ("linux/amd64", "native")
    assert (str(first["e3"][0]), first["e3"][1]) == ("linux/arm64", "qemu-user")
