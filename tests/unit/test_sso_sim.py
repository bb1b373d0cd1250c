"""edgeferry.sso.sim: the SimPy caching and composition simulations against independent
recounts (the same request sequence fed to BlockCache by hand, work conservation)."""

from __future__ import annotations

import random

import pytest

from agents.sso.cache import BlockCache, Granularity, Policy
from agents.sso.workload import Catalog, sim_manifest, zipf_requests
from edgeferry.sso.sim import (
    PAPER_BLOCK_BYTES,
    PAPER_BLOCKS_PER_FILE,
    PAPER_CATALOG,
    TB,
    popularity_units,
    simulate_caching,
    simulate_composition,
)

CAT = Catalog(n_files=200, blocks_per_file=8, block_size=1000)


def test_paper_sizes_derivation() -> None:
    assert 5 * TB // PAPER_BLOCK_BYTES == 2000
    assert 5 * TB // (PAPER_BLOCK_BYTES * PAPER_BLOCKS_PER_FILE) == 250
    assert PAPER_CATALOG.total_bytes == 500 * TB


@pytest.mark.parametrize("gran", ["bc", "ffc"])
@pytest.mark.parametrize("policy", ["lru", "lfu"])
@pytest.mark.parametrize("edges", [1, 3])
def test_sim_hit_ratio_equals_direct_replay(gran: str, policy: str, edges: int) -> None:
    """The sim's local hits equal replaying the same zipf_requests through one BlockCache per
    edge (jobs to edges by random.Random(seed + 1), the documented plan), admitting the block
    (BC) or the whole file (FFC) after each miss."""
    seed, n = 5, 3000
    res = simulate_caching(edges, 40_000, gran, policy, CAT, n, alpha=0.9, seed=seed,
                           block_alpha=1.2, warm="none")
    caches = [BlockCache(40_000, Policy(policy), Granularity(gran), 1000) for _ in range(edges)]
    pick = random.Random(seed + 1)
    hits = 0
    for r in zipf_requests(CAT, n, 0.9, seed, 1.2):
        c = caches[pick.randrange(edges)]
        m = sim_manifest(CAT, r.file_id)
        if c.lookup(r.file_id, r.index, m.blocks[r.index]) is not None:
            hits += 1
            continue
        for i in (range(8) if gran == "ffc" else (r.index,)):
            c.admit(m, i, None)
    assert res["requests"] == n and res["hits"] == hits
    assert res["hit_ratio"] == pytest.approx(hits / n)
    assert res["origin_ratio"] + res["neighbour_ratio"] == pytest.approx(1 - hits / n)


def test_bc_hit_ratio_at_least_ffc_small_config() -> None:
    for cache in (16_000, 40_000, 80_000):
        bc = simulate_caching(5, cache, "bc", "lru", CAT, 1500, 0.8, 3, block_alpha=1.5)
        ffc = simulate_caching(5, cache, "ffc", "lru", CAT, 1500, 0.8, 3, block_alpha=1.5)
        assert bc["hit_ratio"] >= ffc["hit_ratio"]


def test_caching_deterministic_for_a_seed() -> None:
    a = simulate_caching(4, 30_000, "bc", "lfu", CAT, 800, 1.0, 11)
    b = simulate_caching(4, 30_000, "bc", "lfu", CAT, 800, 1.0, 11)
    c = simulate_caching(4, 30_000, "bc", "lfu", CAT, 800, 1.0, 12)
    for d in (a, b, c):
        d.pop("wall_s")
    assert a == b and a != c


def test_warm_units_and_warm_sim_equals_prefilled_replay() -> None:
    """alpha = block_alpha = 1: unit weight 1/((r+1)(j+1)); the 5 heaviest blocks are
    (0,0)=1, (0,1)=(1,0)=1/2, (0,2)=(2,0)=1/3 (ties by rank, then block), stored least
    popular first. A warm 1-edge sim then hits exactly as a cache pre-filled with them."""
    assert popularity_units(CAT, Granularity.BLOCK, 1.0, 1.0, 5000) == \
        [(2, 0), (0, 2), (1, 0), (0, 1), (0, 0)]
    assert popularity_units(CAT, Granularity.FILE, 1.0, 1.0, 16_999) == [(1, -1), (0, -1)]
    res = simulate_caching(1, 5000, "bc", "lru", CAT, 500, 1.0, 4, block_alpha=1.0)
    c = BlockCache(5000, Policy.LRU, Granularity.BLOCK, 1000)
    for r, j in [(2, 0), (0, 2), (1, 0), (0, 1), (0, 0)]:
        m = sim_manifest(CAT, f"file-{r:06d}")
        c.admit(m, j, None)
    hits = 0
    for req in zipf_requests(CAT, 500, 1.0, 4, 1.0):
        m = sim_manifest(CAT, req.file_id)
        if c.lookup(req.file_id, req.index, m.blocks[req.index]) is not None:
            hits += 1
        else:
            c.admit(m, req.index, None)
    assert res["hits"] == hits and hits > 0


def test_composition_non_cooperative_is_one_busy_node() -> None:
    """All requests at t=0 on one node: the node never idles, so the delay equals that node's
    busy time, and no other node works."""
    r = simulate_composition("non-cooperative", 20, 4, 2, seed=3)
    assert r["completed"] == 20
    assert r["delay_s"] == pytest.approx(r["busy_s"]["node-0"])
    assert all(v == 0 for k, v in r["busy_s"].items() if k != "node-0")


def test_composition_actions_scale_and_cooperation_helps() -> None:
    one = simulate_composition("non-cooperative", 20, 4, 1, seed=3)["delay_s"]
    three = simulate_composition("non-cooperative", 20, 4, 3, seed=3)["delay_s"]
    assert three == pytest.approx(3 * one, rel=0.1)
    for seed in range(3):
        nc = simulate_composition("non-cooperative", 30, 6, 1, seed)["delay_s"]
        for s in ("cooperative", "cooperative-secure"):
            res = simulate_composition(s, 30, 6, 1, seed)
            assert res["completed"] == 30 and res["delay_s"] < nc


def test_composition_deterministic() -> None:
    a = simulate_composition("cooperative-secure", 10, 5, 2, seed=9)
    b = simulate_composition("cooperative-secure", 10, 5, 2, seed=9)
    assert a["delay_s"] == b["delay_s"] and a["busy_s"] == b["busy_s"]


def test_a_warm_up_history_fills_the_caches_and_is_not_counted() -> None:
    """warmup_jobs: the caches are filled by an earlier plan (seed + WARMUP_SEED_OFFSET) through
    the same code, then the counting starts; recounted here with plain BlockCaches."""
    from agents.sso.cache import BlockCache, Granularity, Policy
    from agents.sso.workload import Catalog, sim_manifest
    from edgeferry.sso.sim import WARMUP_SEED_OFFSET, job_plan, simulate_caching

    cat = Catalog(20, 4, 1000)
    out = simulate_caching(1, 12_000, "bc", "lru", cat, 80, 0.9, 5, block_alpha=1.2,
                           n_neighbours=0, cloud_sites=1, warm="none", warmup_jobs=60)
    cache = BlockCache(12_000, Policy.LRU, Granularity.BLOCK, 1000)

    def replay(seed: int, n: int) -> None:
        for _e, reqs in job_plan(cat, n, 1, 0.9, seed, 1.2):
            for r in reqs:
                m = sim_manifest(cat, r.file_id)
                if cache.lookup(r.file_id, r.index, m.blocks[r.index]) is None:
                    cache.admit(m, r.index, None)

    replay(5 + WARMUP_SEED_OFFSET, 60)
    assert cache.stats().bytes_used == 12_000  # the history filled the cache
    cache.reset_stats()
    replay(5, 80)
    assert out["requests"] == 80
    assert out["hits"] == cache.stats().hits
