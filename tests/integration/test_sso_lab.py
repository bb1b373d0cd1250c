"""Seed 004 on the deployed emulated lab (the shared `deployed_lab`: control + three edges,
agents deployed by site.yml over the lab CA's mTLS, 40 Mbit/s links).

* a cooperative-secure composite request across the three edges: the file's blocks as the home
  edge serves them hash to the origin's manifest, which equals the digests of the file's own
  bytes split here; the result equals the transformations applied here (XOR 0x5A, zlib level 9,
  the subtitle bytes), each service on a different edge, one grant per execution;
* the simulator's own request plan replayed through the three edge agents gives the simulator's
  hit count (eq. 16) for BC and FFC at the lab's scale.

Needs root and Docker (CI is root with Docker).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

SUBTITLES = b"\n--- subtitles (en) ---\n00:00:01,000 --> 00:00:04,000\nedgeferry\n"
BS = 65536  # edgeferry_sso_catalog's block size (roles/edgeferry/defaults/main.yml)


@pytest.fixture(scope="module")
def sso(deployed_lab: Path) -> Iterator[dict[str, Any]]:
    from agents.blockcache.client import BlockCacheClient
    from agents.common.client import secure_channel
    from agents.composer.client import ComposerClient
    from edgeferry.deploy.experiment import deployed_endpoints

    ep = deployed_endpoints(deployed_lab, ["composer", "blockcache", "blockcache-origin"])
    tls = ep.tls
    assert tls is not None
    channels = []

    def channel(address: str) -> Any:
        ch = secure_channel(address, tls.ca_cert, tls.cert, tls.key)
        channels.append(ch)
        return ch

    edges = {n: BlockCacheClient(channel(a), timeout=120) for n, a in
             sorted(ep.of("blockcache").items())}
    yield {"edges": edges,
           "origin": BlockCacheClient(channel(next(iter(ep.of("blockcache-origin").values())))),
           "composer": ComposerClient(channel(next(iter(ep.of("composer").values()))),
                                      timeout=300)}
    for ch in channels:
        ch.close()


def test_cooperative_secure_request_across_three_edges_on_the_lab(sso: dict[str, Any]) -> None:
    from agents.sso.workload import Catalog, file_bytes

    edges = sso["edges"]
    assert len(edges) >= 3, list(edges)
    names = sorted(edges)[:3]
    file_id = "file-000007"
    original = file_bytes(Catalog(50, 16, BS), file_id, 4)  # edgeferry_sso_catalog's seed
    own = [hashlib.sha256(original[i:i + BS]).hexdigest() for i in range(0, len(original), BS)]
    assert list(sso["origin"].manifest(file_id).blocks) == own
    served = edges[names[0]].fetch(file_id, (), return_data=True)
    assert [hashlib.sha256(b.data).hexdigest() for b in served.blocks] == own
    assert served.rejected_corrupt == 0

    process = "{seq: [filter, transcode, subtitle-merge]}"
    reply = sso["composer"].run(process, "cooperative-secure", names[0], file_id,
                                request_id="lab-secure-1", return_result=True, nodes=names)
    expected = zlib.compress(bytes(b ^ 0x5A for b in original), 9) + SUBTITLES
    assert reply.result == expected
    assert reply.result_digest == hashlib.sha256(expected).hexdigest()
    services = {t.transition: t.service for t in reply.tasks}
    assert [services[t] for t in reply.serial_order] == ["filter", "transcode",
                                                          "subtitle-merge"]
    assert sorted(t.node for t in reply.tasks) == names  # one service on each edge
    assert reply.grants == 3
    # the home edge held the file (fetched above): its 16 blocks were local hits
    assert (reply.hits_local, reply.hits_neighbour, reply.from_origin) == (16, 0, 0)


@pytest.mark.parametrize("warm", ["none", "popularity"])
@pytest.mark.parametrize("granularity", ["bc", "ffc"])
def test_lab_and_simulation_agree_on_the_hit_ratio(sso: dict[str, Any],
                                                   granularity: str, warm: str) -> None:
    """Same plan through the agents and the simulator, from empty caches or after the paper's
    placement (the lab scenario's `place_popular` on the agents; the simulator admits its own
    list directly into its caches)."""
    from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2 as pb
    from agents.sso.workload import Catalog
    from edgeferry.experiments.scenarios.sso_lab import place_popular
    from edgeferry.sso.sim import job_plan, simulate_caching

    catalog = Catalog(50, 16, BS)
    names = sorted(sso["edges"])
    capacity = 3_000_000
    gran = {"bc": pb.GRANULARITY_BLOCK, "ffc": pb.GRANULARITY_FILE}[granularity]
    for name in names:
        sso["edges"][name].configure(capacity, pb.CACHE_POLICY_LRU, gran)
    if warm == "popularity":
        _, units = place_popular([sso["edges"][n] for n in names], catalog, granularity, 0.8,
                                 1.5, capacity)
        # 3 MB holds 45 blocks of 64 KiB, or 2 files of 16 blocks
        assert units == {"bc": 45, "ffc": 2}[granularity]
        assert all(sso["edges"][n].stats().requests == 0 for n in names)
    plan = job_plan(catalog, 120, len(names), 0.8, 21, 1.5)
    for edge, reqs in plan:
        for r in reqs:
            sso["edges"][names[edge]].fetch(r.file_id, [r.index])
    stats = [sso["edges"][n].stats() for n in names]
    sim = simulate_caching(len(names), capacity, granularity, "lru", catalog, 120, 0.8, 21,
                           block_alpha=1.5, n_neighbours=len(names) - 1, cloud_sites=1,
                           warm=warm)
    hits, requests = sum(s.hits for s in stats), sum(s.requests for s in stats)
    assert requests == sim["requests"] == 120
    assert 0 < hits < requests
    assert hits == sim["hits"], (hits, sim["hits"])
