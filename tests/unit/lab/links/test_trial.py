"""LinkShaper: which links a trial's rate touches, with what, and that restore puts them back
(the lab's side; the runner's errors around it: tests/unit/experiments/test_links.py)."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from edgeferry.lab.errors import NotAnEdge
from edgeferry.lab.links import trial as shaping


class Result:
    def __init__(self, stdout: str = "") -> None:
        self.stdout, self.stderr, self.exited = stdout, "", 0


class Conn:
    def __init__(self, host: str, log: list) -> None:
        self.host, self.log = host, log

    def run(self, command, **kwargs):
        if command.startswith("cat "):
            return Result({"edge1": "11", "edge2": "12"}[self.host] + "\n")
        self.log.append((self.host, command))
        return Result()


@pytest.fixture
def setup(tmp_path, monkeypatch):
    log: list = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: (
        log.append(("controller", " ".join(argv))), SimpleNamespace(returncode=0, stderr=""))[1])
    net = tmp_path / "net"
    for dev, index in (("lo", "1"), ("veth11", "11"), ("veth12", "12")):
        (net / dev).mkdir(parents=True)
        (net / dev / "ifindex").write_text(index + "\n")
    real = shaping.local_veth
    monkeypatch.setattr(shaping, "local_veth", lambda iflink: real(iflink, net))
    lab = SimpleNamespace(name="lab", hosts={
        "control": {"role": "control"},
        "edge1": {"role": "edge", "configured_bps": 40_000_000},
        "edge2": {"role": "edge", "configured_bps": 40_000_000}})
    conns: dict = {}
    return lab, lambda h: conns.setdefault(h, Conn(h, log)), log


def test_a_rate_shapes_both_directions_once_and_restore_puts_the_lab_rate_back(setup):
    lab, connect, log = setup
    links = shaping.LinkShaper(lab, connect)
    assert links.ensure(["edge1", "edge2"], None)["rate_bps"] is None and log == []
    assert links.ensure(["edge1", "edge2"], "40mbit")["changed"] == [] and log == []
    record = links.ensure(["edge1", "edge2"], "10mbit")
    assert record["changed"] == ["edge1:eth0", "controller:veth11", "edge2:eth0",
                                 "controller:veth12"]
    assert [h for h, _ in log] == ["edge1", "controller", "edge2", "controller"]
    assert all("tbf rate 10000000bit" in cmd for _, cmd in log)
    log.clear()
    assert links.ensure(["edge1", "edge2"], "10mbit")["changed"] == [] and log == []
    assert links.restore() == []
    assert len(log) == 4 and all("tbf rate 40000000bit" in cmd for _, cmd in log)
    log.clear()
    assert links.restore() == [] and log == []


def test_an_unshaped_lab_link_is_unshaped_again_after_the_part(setup):
    lab, connect, log = setup
    lab.hosts["edge1"]["configured_bps"] = None
    links = shaping.LinkShaper(lab, connect)
    links.ensure(["edge1"], "5mbit")
    log.clear()
    links.restore()
    assert [cmd for _, cmd in log] == ["tc qdisc del dev eth0 root", "tc qdisc del dev veth11 root"]


def test_only_edges_are_shaped(setup):
    lab, connect, log = setup
    with pytest.raises(NotAnEdge, match="'control' is not an edge host of lab 'lab'"):
        shaping.LinkShaper(lab, connect).ensure(["control"], "10mbit")
    assert log == []


def test_untimed_set_up_runs_unshaped_and_the_rates_come_back_also_after_an_error(setup):
    lab, connect, log = setup
    lab.hosts["edge2"]["configured_bps"] = None  # an unshaped link is left alone
    links = shaping.LinkShaper(lab, connect)
    links.ensure(["edge1"], "10mbit")
    log.clear()
    with links.unshaped(["edge1", "edge2"]):
        assert [cmd for _, cmd in log] == ["tc qdisc del dev eth0 root",
                                           "tc qdisc del dev veth11 root"]
        log.clear()
    assert [h for h, _ in log] == ["edge1", "controller"]
    assert all("tbf rate 10000000bit" in cmd for _, cmd in log)
    log.clear()
    with pytest.raises(RuntimeError, match="pull failed"), links.unshaped(["edge1"]):
        raise RuntimeError("pull failed")
    assert len(log) == 4 and all("tbf rate 10000000bit" in cmd for _, cmd in log[2:])
    log.clear()
    assert links.restore() == []
    assert all("tbf rate 40000000bit" in cmd for _, cmd in log) and len(log) == 2
