"""BloSM Algorithm 3 redirects with the neighbours' advertised FREE: nobody is asked at request
time; a neighbour without a fresh advertisement is asked (GetResources, which no longer samples
CPU for 100 ms)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents.node.core import NodeCore
from agents.node.domain import Resources
from agents.security.advertisement import AdvertTable, sign_advertisement
from agents.security.crypto import Identity
from tests.unit.node.test_core import FakeEngine, make_core

IDS = {n: Identity.generate(n) for n in ("near", "mid", "far")}


class RealNeighbour:
    """A neighbour backed by another NodeCore: free() is what its GetResources answers."""

    def __init__(self, core: NodeCore, name: str, distance: float) -> None:
        self.core, self.name, self.distance = core, name, distance
        self.asked = 0
        self.received: list[pb.SubmitRequestRequest] = []

    def free(self) -> Resources:
        self.asked += 1
        report = self.core.report()
        f = report.free
        return Resources(f.cpu_millicores, f.memory_bytes, f.storage_bytes, f.network_bps, f.gpu)

    def submit(self, request: pb.SubmitRequestRequest) -> pb.SubmitRequestResponse:
        self.received.append(request)
        return pb.SubmitRequestResponse(served_by=self.name, path=[self.name])


def neighbours(tmp_path: Path) -> list[RealNeighbour]:
    out = []
    for name, dist, cpu in (("near", 1.0, 100), ("mid", 2.0, 4000), ("far", 3.0, 4000)):
        core = make_core(tmp_path / name, FakeEngine())
        core._capacity = Resources(cpu_millicores=cpu, memory_bytes=1 << 30)
        out.append(RealNeighbour(core, name, dist))
    return out


REQ = pb.SubmitRequestRequest(request_id="r1", service="svc", hops_left=2,
                              required=common_pb2.Resources(cpu_millicores=2000))


def decision_ms(detail: str) -> float:
    found = re.search(r"decision ([0-9.]+) ms", detail)
    assert found is not None, detail
    return float(found.group(1))


def test_redirect_reads_advertised_free_and_asks_nobody(tmp_path: Path) -> None:
    for sub in ("here", "near", "mid", "far"):
        (tmp_path / sub).mkdir()
    links = neighbours(tmp_path)
    here = make_core(tmp_path / "here", neighbours=links)
    here.adverts = AdvertTable(lambda n: IDS[n].public if n in IDS else None)
    for seq, link in enumerate(links, start=1):
        advert = link.core.advertisement(link.name, seq, time.time())
        here.publish(*sign_advertisement(IDS[link.name], advert))
    out = here.submit_request(REQ)
    assert out.forwarded and out.served_by == "mid"  # near advertised only 100 m free
    assert [link.asked for link in links] == [0, 0, 0]
    assert "mid advertised" in out.timing.detail
    assert decision_ms(out.timing.detail) < 50


@pytest.mark.serial  # a wall-clock bound: run alone (README)
def test_neighbour_without_advertisement_is_asked_without_a_cpu_sample(tmp_path: Path) -> None:
    for sub in ("here", "near", "mid", "far"):
        (tmp_path / sub).mkdir()
    links = neighbours(tmp_path)
    here = make_core(tmp_path / "here", neighbours=links)
    started = time.perf_counter()
    out = here.submit_request(REQ)
    elapsed = time.perf_counter() - started
    assert out.served_by == "mid" and [link.asked for link in links] == [1, 1, 1]
    assert "mid asked" in out.timing.detail
    # three answers that each sampled CPU for 100 ms took >= 300 ms; none samples now
    assert elapsed < 0.25
