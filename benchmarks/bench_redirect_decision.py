"""Redirect decision time of BloSM Algorithm 3 at one node with three neighbours, in process.

Each neighbour is a real `NodeCore` (fake engine); "asking" it runs its `report()`, which is
what its GetResources servicer answers (the gRPC round trip, ~1 ms on loopback, is not
included). Modes: ``asked`` (every neighbour asked at request time, the only mode before the
advertisements) and ``advertised`` (their signed advertisements are in the node's table). Run it
against any tree::

    PYTHONPATH=/path/to/tree python benchmarks/bench_redirect_decision.py

Prints the median and p90 of the submit_request wall time of a redirect (ms, 20 runs), via
edgeferry.stats.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents.node.domain import Resources
from edgeferry.stats import median, p90
from tests.unit.node.test_core import FakeEngine, make_core

RUNS = 20


class Link:
    def __init__(self, core: object, name: str, distance: float) -> None:
        self.core, self.name, self.distance = core, name, distance

    def free(self) -> Resources:
        f = self.core.report().free  # type: ignore[attr-defined]
        return Resources(f.cpu_millicores, f.memory_bytes, f.storage_bytes, f.network_bps,
                         f.gpu)

    def submit(self, request: pb.SubmitRequestRequest) -> pb.SubmitRequestResponse:
        return pb.SubmitRequestResponse(served_by=self.name, path=[self.name])


def main() -> None:
    root = Path(tempfile.mkdtemp())
    links = []
    for name, dist in (("n1", 1.0), ("n2", 2.0), ("n3", 3.0)):
        (root / name).mkdir()
        core = make_core(root / name, FakeEngine())
        core._capacity = Resources(cpu_millicores=100 if name != "n3" else 4000)
        links.append(Link(core, name, dist))
    (root / "here").mkdir()
    here = make_core(root / "here", neighbours=links)
    req = pb.SubmitRequestRequest(request_id="r", service="svc", hops_left=2,
                                  required=common_pb2.Resources(cpu_millicores=2000))
    modes = {"asked": None}
    try:
        from agents.security.advertisement import AdvertTable, sign_advertisement
        from agents.security.crypto import Identity

        ids = {link.name: Identity.generate(link.name) for link in links}
        modes["advertised"] = (AdvertTable, sign_advertisement, ids)  # type: ignore[assignment]
    except ImportError:
        pass  # a tree without advertisements
    for mode, tools in modes.items():
        if tools is not None:
            table_cls, sign, ids = tools  # type: ignore[misc]
            here.adverts = table_cls(lambda n, ids=ids: ids[n].public)
            for seq, link in enumerate(links, start=1):
                here.publish(*sign(ids[link.name],
                                   link.core.advertisement(link.name, seq, time.time())))
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            out = here.submit_request(req)
            times.append((time.perf_counter() - t0) * 1000)
            assert out.served_by == "n3"
        print(f"{mode}: redirect median {median(times):.2f} ms, p90 {p90(times):.2f} ms "
              f"({RUNS} runs, 3 neighbours)")


if __name__ == "__main__":
    main()
