"""The pure parts of edgeferry.experiments.measure: counters -> bytes per link, phases ->
manifest bytes per link, `docker port` output, the wire sampler and the link counters."""

from __future__ import annotations

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
