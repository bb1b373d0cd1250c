"""EmulatedLab and its parts against a fake Docker engine (no containers, no root needed)."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace
from typing import Any

import pytest

from edgeferry.errors import ConfigError, OperationFailed
from edgeferry.lab import engine
from edgeferry.lab.config import load_spec
from edgeferry.lab.links import lab as links_lab
from edgeferry.lab.links.lab import LabLinks
from edgeferry.lab.network import LabNetwork
from edgeferry.lab.provider import EmulatedLab
from edgeferry.lab.state import LabState, spec_of_running_lab


class FakeContainer:
    def __init__(self, name: str, outputs: dict[str, str] | None = None) -> None:
        self.name, self.outputs, self.ran = name, outputs or {}, []
        self.status = "running"
        self.removed = False

    def exec_run(self, cmd: list[str], demux: bool = False) -> Any:
        line = " ".join(cmd)
        self.ran.append(line)
        return SimpleNamespace(exit_code=0, output=self.outputs.get(line, "").encode())

    def remove(self, **kwargs: Any) -> None:
        self.removed = True


class Listing:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def list(self, **kwargs: Any) -> list[Any]:
        names = kwargs.get("names")
        return [i for i in self.items if names is None or i.name in names]

    def get(self, name: str) -> Any:
        import docker.errors

        for item in self.items:
            if item.name == name:
                return item
        raise docker.errors.NotFound(name)


class Removable(SimpleNamespace):
    def remove(self, **kwargs: Any) -> None:
        self.removed = True


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFERRY_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def local(monkeypatch):
    """Commands run on this machine (tc on the veths) and the veth lookup."""
    ran: list[str] = []
    shown: dict[str, str] = {}

    def fake_run(cmd, **kwargs):
        ran.append(" ".join(cmd))
        return SimpleNamespace(returncode=0, stdout=shown.get(" ".join(cmd), ""), stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(links_lab, "local_veth", lambda index: f"veth{index}")
    return ran, shown


def test_names_and_paths_are_those_of_the_lab(home):
    lab = EmulatedLab(load_spec(name="t"), client=SimpleNamespace())
    assert lab.network_name == "ef-t"
    assert lab.container_name("edge1") == "ef-t-edge1"
    assert lab.volume_name("edge1") == "ef-t-edge1-docker"
    assert lab.private_key == lab.state_dir / "id_ed25519"
    assert lab.known_hosts == lab.state_dir / "known_hosts"
    assert str(lab.state_dir).startswith(str(home))


def test_shaping_is_reconciled_both_ways(local):
    ran, _ = local
    spec = load_spec(name="t")
    edge = spec.edges[0]
    rate = spec.rate_bps(edge)
    assert rate
    box = FakeContainer("ef-t-edge1", {"cat /sys/class/net/eth0/iflink": "17\n"})
    links, changes = LabLinks(spec, log=lambda _: None), []
    links.ensure_shaping(edge, box, (rate, int(rate * 1.005)), changes)  # within 1 %: nothing
    assert changes == [] and ran == [] and not any("tc" in c for c in box.ran)
    links.ensure_shaping(edge, box, (None, rate), changes)
    assert box.ran[-1].startswith(f"tc qdisc replace dev eth0 root tbf rate {rate}bit")
    assert ran == [f"tc qdisc replace dev veth17 root tbf rate {rate}bit burst 65536b latency 50ms"]
    assert changes == [f"shaped edge1 to {rate / 1e6:g} Mbit/s both ways (tbf)"]


def test_an_unshaped_host_loses_a_leftover_shaping(local):
    ran, _ = local
    spec = load_spec(name="t")
    control = spec.control
    assert spec.rate_bps(control) is None
    box = FakeContainer("ef-t-control", {"cat /sys/class/net/eth0/iflink": "9\n"})
    changes: list[str] = []
    LabLinks(spec, log=print).ensure_shaping(control, box, (None, None), changes)
    assert changes == [] and ran == []
    LabLinks(spec, log=print).ensure_shaping(control, box, (None, 5), changes)
    assert box.ran[-1] == "tc qdisc del dev eth0 root" and ran == ["tc qdisc del dev veth9 root"]
    assert changes == ["removed shaping on control"]


def test_current_rates_read_both_ends(local):
    _, shown = local
    shown["tc qdisc show dev veth3"] = "qdisc tbf 8001: root refcnt 2 rate 20Mbit burst 64Kb"
    box = FakeContainer("h", {"cat /sys/class/net/eth0/iflink": "3",
                              "tc qdisc show dev eth0": "qdisc noqueue 0: root refcnt 2"})
    assert LabLinks(load_spec(name="t"), log=print).current_rates(box) == (None, 20_000_000)


def test_a_missing_veth_names_the_container(monkeypatch):
    def no_veth(index: str) -> str:
        raise OperationFailed(f"no local interface has ifindex {index}")

    monkeypatch.setattr(links_lab, "local_veth", no_veth)
    box = FakeContainer("ef-t-edge1", {"cat /sys/class/net/eth0/iflink": "42\n"})
    with pytest.raises(OperationFailed, match=r"bridge-side veth of ef-t-edge1 \(ifindex 42\)"):
        LabLinks(load_spec(name="t"), log=print).veth_of(box)


def test_bandwidth_outside_the_tolerance_is_refused(home):
    spec = load_spec(name="t")
    state = LabState(name="t", spec={}, fingerprint="f", image="i", network="n", bandwidth={
        "edge1": {"configured_bps": 40e6, "up": {"mean_bps": 30e6}, "up_ok": False,
                  "down": {"mean_bps": 40e6}, "down_ok": True}})
    with pytest.raises(OperationFailed, match=r"edge1 up: 30.0 vs 40 Mbit/s"):
        LabLinks.assert_bandwidth(state)
    links = LabLinks(spec, log=print)
    assert not links.bandwidth_current(state)
    state.bandwidth = {h.name: {"configured_bps": spec.rate_bps(h)} for h in spec.edges}
    assert links.bandwidth_current(state)
    # a failed measurement at the configured rates is not current: `lab up` measures again
    state.bandwidth = {h.name: {"configured_bps": spec.rate_bps(h), "up": {"mean_bps": 40e6},
                                "up_ok": True, "down": {"mean_bps": 20e6}, "down_ok": False}
                       for h in spec.edges}
    assert not links.bandwidth_current(state)
    state.bandwidth["edge1"]["down_ok"] = True
    assert not links.bandwidth_current(state)  # the other edges still failed
    for entry in state.bandwidth.values():
        entry["down_ok"] = True
    assert links.bandwidth_current(state)


def test_a_subnet_clash_is_refused(monkeypatch):
    spec = load_spec(name="t", subnet="10.77.0.0/24")
    other = SimpleNamespace(name="other", attrs={"IPAM": {"Config": [{"Subnet": "10.77.0.0/16"}]}})
    client = SimpleNamespace(networks=Listing([other]))
    with pytest.raises(ConfigError, match="overlaps Docker network 'other'"):
        LabNetwork(spec, client).check_subnet_free()  # type: ignore[arg-type]
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: SimpleNamespace(
        stdout="default via 10.0.0.1 dev eth0\n10.77.0.0/20 dev br0 scope link\n"))
    client = SimpleNamespace(networks=Listing([]))
    with pytest.raises(ConfigError, match="overlaps the host route"):
        LabNetwork(spec, client).check_subnet_free()  # type: ignore[arg-type]


def test_down_removes_everything_of_the_lab_and_leaves_nothing(home, monkeypatch):
    monkeypatch.setattr(engine.os, "geteuid", lambda: 0)
    spec = load_spec(name="t")
    boxes = [FakeContainer("ef-t-control"), FakeContainer("ef-t-edge1")]
    net = Removable(name="ef-t", removed=False)
    vol = Removable(name="ef-t-edge1-docker", removed=False)
    client = SimpleNamespace(containers=Listing(boxes), networks=Listing([net]),
                             volumes=Listing([vol]))
    lab = EmulatedLab(spec, client=client)  # type: ignore[arg-type]
    LabState(name="t", spec=spec.model_dump(mode="json"), fingerprint=spec.fingerprint(),
             image="i", network="ef-t").save()
    assert spec_of_running_lab("t") == spec
    assert lab.leftovers() == ["ef-t-control", "ef-t-edge1", "ef-t", "ef-t-edge1-docker",
                               str(lab.state_dir)]
    removed = lab.down()
    assert removed == ["container ef-t-control", "container ef-t-edge1", "network ef-t",
                       "volume ef-t-edge1-docker", f"lab state {lab.state_dir}"]
    assert all(b.removed for b in boxes) and net.removed and vol.removed
    assert spec_of_running_lab("t") is None


def test_host_status_reports_absent_hosts(local):
    spec = load_spec(name="t")
    client = SimpleNamespace(containers=Listing([]))
    status = EmulatedLab(spec, client=client).host_status()  # type: ignore[arg-type]
    assert status[spec.control.name] == {"container": "absent", "shaped_up_bps": None,
                                         "shaped_down_bps": None}
