"""The pure parts of edgeferry.experiments.measure: counters -> bytes per link, phases ->
manifest bytes per link, `docker port` output, the wire sampler and the link counters."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from edgeferry.experiments.measure import (
    Wire,
    WireSampler,
    manifest_links,
    parse_docker_port,
    wire_links,
)
from edgeferry.experiments.scenario import PhaseResult


def test_wire_links_takes_sent_bytes_at_the_source_and_received_at_the_destination() -> None:
    # (sent, received) per host
    first = {"edge1": (1_000, 50), "edge2": (70, 2_000)}
    stop = {"edge1": (3_000, 60), "edge2": (90, 9_000)}
    answer = {"edge1": (5_500, 65), "edge2": (95, 12_000)}
    last = {"edge1": (5_600, 99), "edge2": (99, 12_500)}
    push, pull = wire_links(first, last, stop, answer, "edge1", "edge2")
    assert push == (4_600, 2_500)  # 5600-1000, 5500-3000
    assert pull == (10_500, 3_000)  # 12500-2000, 12000-9000


def test_manifest_links_split_at_the_stop() -> None:
    def ph(name: str, n: int) -> PhaseResult:
        return PhaseResult(phase=name, wall_s=0.1, bytes=n)

    diff = [ph("audit", 0), ph("prepull", 500), ph("rasp", 0), ph("stop", 0), ph("commit", 0),
            ph("push", 40), ph("pull", 30), ph("start", 0)]
    assert manifest_links(diff) == ((40, 40), (530, 30))
    paper = [ph("audit", 0), ph("stop", 0), ph("push", 540), ph("rasp", 0), ph("pull", 530)]
    assert manifest_links(paper) == ((540, 540), (530, 530))


def test_parse_docker_port() -> None:
    assert parse_docker_port("0.0.0.0:32768\n[::]:32768\n") == 32768
    assert parse_docker_port("[::]:40001\n") == 40001
    assert parse_docker_port("") is None
    assert parse_docker_port("Error: No such container: x\n") is None


def test_wire_reads_the_bridge_side_counters(tmp_path: Path) -> None:
    net = tmp_path / "net"
    for dev, idx, rx, tx in (("vethA", "17", 111, 222), ("vethB", "23", 333, 444)):
        (net / dev / "statistics").mkdir(parents=True)
        (net / dev / "ifindex").write_text(f"{idx}\n")
        (net / dev / "statistics" / "rx_bytes").write_text(f"{rx}\n")
        (net / dev / "statistics" / "tx_bytes").write_text(f"{tx}\n")

    class Conn:
        def __init__(self, iflink: str) -> None:
            self.iflink = iflink

        def run(self, command: str, **_: object) -> object:
            assert command == "cat /sys/class/net/eth0/iflink"
            return type("R", (), {"exited": 0, "stdout": self.iflink + "\n", "stderr": ""})()

    links = {"edge1": "23", "edge2": "17"}
    wire = Wire(lambda h: Conn(links[h]), ["edge1", "edge2"], sys_class_net=net)
    assert wire.veth == {"edge1": "vethB", "edge2": "vethA"}
    assert wire.read() == {"edge1": (333, 444), "edge2": (111, 222)}


def test_wire_sampler_time_stamps_samples() -> None:
    count = {"n": 0}
    lock = threading.Lock()

    def read() -> dict[str, tuple[int, int]]:
        with lock:
            count["n"] += 1
            return {"h": (count["n"], 0)}

    with WireSampler(read, interval_s=0.01) as s:
        time.sleep(0.15)
        middle = time.monotonic()
        time.sleep(0.1)
    assert len(s.samples) >= 10
    assert s.times == sorted(s.times)
    assert s.first()["h"][0] == 1 and s.last()["h"][0] == len(s.samples)
    i = max(k for k, t in enumerate(s.times) if t <= middle)
    assert s.at(middle) == s.samples[i]
    assert s.at(s.times[0] - 1) == s.first()


class _Result:
    def __init__(self, stdout: str = "", exited: int = 0) -> None:
        self.stdout, self.stderr, self.exited = stdout, "", exited


class _Host:
    """A lab host's SSH connection: iperf3 clients wait at a barrier that only a second client
    running at the same time lets through, and answer with the host's own receiver rate."""

    def __init__(self, name: str, mbit: float, log: list[str], barrier: threading.Barrier):
        self.host, self.mbit, self.log, self.barrier = name, mbit, log, barrier

    def run(self, command: str, **_: object) -> _Result:
        self.log.append(f"{self.host}: {command}")
        if not command.startswith("iperf3 -c"):
            return _Result()
        self.barrier.wait()
        bps = self.mbit * 1e6
        interval = {"sum": {"bits_per_second": bps, "seconds": 0.5}}
        return _Result(json.dumps({"intervals": [interval] * 4,
                                   "end": {"sum_received": {"bits_per_second": bps}}}))


def test_both_links_are_measured_at_the_same_time_each_on_its_own_port() -> None:
    from edgeferry.experiments.measure import measure_links

    log: list[str] = []
    barrier = threading.Barrier(2, timeout=5)  # a second client never coming breaks it
    hosts = {"control": _Host("control", 0, log, barrier),
             "edge1": _Host("edge1", 38.2, log, barrier),
             "edge2": _Host("edge2", 39.1, log, barrier)}

    class Eco:
        def _registry_host(self) -> str:
            return "control"

        def address(self, _service: str, host: str) -> str:
            return {"control": "10.9.0.10:7443"}[host]

    class Ctx:
        def connection(self, host: str) -> _Host:
            return hosts[host]

    links = measure_links(Eco(), Ctx(), "edge1", "edge2", seconds=2)
    assert (links.push_bps, links.pull_bps) == (38.2e6, 39.1e6)
    servers = [line for line in log if "iperf3 -s" in line]
    assert servers == ["control: iperf3 -s -D -1 -p 5201 --bind 10.9.0.10",
                       "control: iperf3 -s -D -1 -p 5202 --bind 10.9.0.10"]
    assert "edge1: iperf3 -c 10.9.0.10 -p 5201 -J -t 2 -i 0.5" in log
    assert "edge2: iperf3 -c 10.9.0.10 -R -p 5202 -J -t 2 -i 0.5" in log
    assert log[-1] == "control: pkill -x iperf3"  # no server is left behind
    assert "edge1" in links.detail["push"]["method"] and "-R" in links.detail["pull"]["method"]
