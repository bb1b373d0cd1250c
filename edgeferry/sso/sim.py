"""Discrete-event simulation (SimPy) of seed 004's caching (Figs. 7-8) and composition
(Figs. 4-6) experiments, driving the SAME domain code as the lab agents: `BlockCache`,
`zipf_requests`, `parse_process`, `firing_order`, `assign`, `authorize`, `sample_cost_ms`.

Caching model (paper section 8.2: 3 cloud sites, 150 edges, 100 GB - 500 TB of files, up to
2 GB/s, caches of 5-20 TB, up to 1500 jobs)
-----------------------------------------------------------------------------------------
* Block and file sizes. The paper: "for a cache size of 5 TB, 2000 different sets of file
  blocks can be stored using BC, only 250 full files with FFC". So one block set is
  5 TB / 2000 = 2.5 GB and one file is 5 TB / 250 = 20 GB = 8 block sets (decimal units):
  `PAPER_BLOCK_BYTES` = 2.5e9, `PAPER_BLOCKS_PER_FILE` = 8. The default catalog is 500 TB,
  the top of the paper's range: 25 000 files of 20 GB.
* Size-only mode: the caches store sizes, never bytes (`admit(..., data=None)`); block names
  are `sim:<file>:<i>` (workload.sim_manifest).
* `cache_bytes` is each edge's cache. A job arrives at a uniformly drawn edge (Poisson
  arrivals, `job_rate_per_s`) and asks for one block (`requests_per_job`, default 1: "a block
  answers a single-file query"), drawn by `zipf_requests` (file rank Zipf(alpha), block within
  the file Zipf(block_alpha)). The edge looks it up in its cache (one request, eq. 16), then
  asks its `n_neighbours` ring neighbours (`holds`, no request counted), then the file's cloud
  site (file rank mod `cloud_sites`). After a local miss the edge admits what it fetched: the
  block (BC) or the whole file (FFC: the whole file is fetched and every block admitted).
* Warm start (`warm="popularity"`, the default for figures): before the jobs, every edge cache
  is filled with the most popular units by the workload's own distribution, least popular
  first (so LRU/LFU keep the popular ones longest): the top blocks by
  P(file) x P(block | file) for BC, the top files for FFC. This is the paper's section 4
  placement ("blocks selected for caching based on the file access requests", eq. 3), in the
  steady state a long request history would reach. `warm="none"` starts empty (what a short lab
  run sees; the lab/sim agreement test uses it).
* Delay: a transfer of B bytes takes B / bandwidth on the link it uses; each cloud site's
  uplink and each edge's uplink is a SimPy resource with `link_slots` concurrent transfers.
  `hit_ratio` is eq. 16 at the edge caches (local hits / requests); `fog_ratio` adds
  neighbour hits; `origin_ratio` is what went to the cloud.

Composition model (paper section 8.1)
-------------------------------------
`n_nodes` edge nodes offer `n_services` services; a node offers a service with probability
`offer_prob` (every service has at least one offer; node 0, the home, too), at a mean cost drawn
uniformly in [cost_lo_ms, cost_hi_ms], sd = `cost_cv` x mean. A request is a process
expression over the services (seq with a par in the middle), composed with `parse_process`,
checked with `check_soundness`, placed with `assign` and executed stage by stage: every
transition runs `actions_per_service` actions, each costing `sample_cost_ms` (normal,
truncated at 0) on its node, a SimPy resource (one action at a time per node). All
`n_requests` arrive at time 0; `delay_s` is the time until the last completes ("time needed to
complete the requests", Figs. 4-6). The secure strategy only uses nodes whose chi allows the
service (each node is allowed each offered service with probability `chi_prob`), authorizes the
WFs (`authorize`) and pays `secure_overhead_ms` per transition (grant signing + verification).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import simpy

from agents.sso.blocks import FileManifest
from agents.sso.cache import BlockCache, Granularity, Policy
from agents.sso.secure import SecureWorkflowNet, ServiceOffer, authorize
from agents.sso.strategies import Strategy, assign, home_offer, sample_cost_ms
from agents.sso.wfnet import Composition, check_soundness, firing_order, parse_process
from agents.sso.workload import BlockRequest, Catalog, file_id_of, sim_manifest, zipf_requests

TB = 10**12
GB = 10**9
PAPER_BLOCK_BYTES = 5 * TB // 2000          # 2.5 GB: 2000 block sets in 5 TB
PAPER_BLOCKS_PER_FILE = (5 * TB // 250) // PAPER_BLOCK_BYTES   # 20 GB files: 8 block sets
PAPER_CATALOG = Catalog(n_files=500 * TB // (PAPER_BLOCK_BYTES * PAPER_BLOCKS_PER_FILE),
                        blocks_per_file=PAPER_BLOCKS_PER_FILE, block_size=PAPER_BLOCK_BYTES)
#: the warm-up plan's seed is the trial's seed + this (the lab scenario replays the same plan)
WARMUP_SEED_OFFSET = 7919
PAPER_EDGES = 150
PAPER_CLOUD_SITES = 3
PAPER_MAX_JOBS = 1500
PAPER_CACHE_SIZES = (5 * TB, 10 * TB, 15 * TB, 20 * TB)
#: Zipf exponents for the figures (the paper gives none): files Zipf(0.8), blocks within a file
#: Zipf(1.5) (the main content block is asked for far more than subtitles or enhancements).
#: Chosen, not measured: with them BC's hit-ratio lead over FFC grows with the cache size as in
#: Fig. 7; with alpha = block_alpha = 1 the lead is about 3 points at every size.
PAPER_ALPHA = 0.8
PAPER_BLOCK_ALPHA = 1.5


# -- caching ----------------------------------------------------------------------------------

def job_plan(catalog: Catalog, n_jobs: int, edges: int, alpha: float, seed: int,
             block_alpha: float = 1.0, requests_per_job: int = 1
             ) -> list[tuple[int, list[BlockRequest]]]:
    """The jobs in arrival order: (edge index, its block requests). The requests are
    `zipf_requests(catalog, n_jobs * requests_per_job, alpha, seed, block_alpha)` cut into
    jobs in order; edges are drawn uniformly by random.Random(seed + 1) (the lab replays the
    same plan)."""
    if edges <= 0 or n_jobs < 0 or requests_per_job <= 0:
        raise ValueError("edges and requests_per_job must be > 0, n_jobs >= 0")
    reqs = zipf_requests(catalog, n_jobs * requests_per_job, alpha, seed, block_alpha)
    rng = random.Random(seed + 1)
    return [(rng.randrange(edges), reqs[k * requests_per_job:(k + 1) * requests_per_job])
            for k in range(n_jobs)]


def popularity_units(catalog: Catalog, granularity: Granularity, alpha: float,
                     block_alpha: float, capacity_bytes: int) -> list[tuple[int, int]]:
    """The units a warm cache holds, least popular first: (file rank, block index) for BC,
    (file rank, -1) for FFC; as many as `capacity_bytes` holds."""
    if granularity is Granularity.FILE:
        n = min(catalog.n_files, capacity_bytes // catalog.file_size)
        return [(r, -1) for r in range(n - 1, -1, -1)]
    n = min(catalog.n_files * catalog.blocks_per_file, capacity_bytes // catalog.block_size)
    if n <= 0:
        return []
    fw = [1.0 / (r + 1) ** alpha for r in range(catalog.n_files)]
    bw = [1.0 / (j + 1) ** block_alpha for j in range(catalog.blocks_per_file)]
    cands = sorted(((f * b, r, j) for r, f in enumerate(fw) for j, b in enumerate(bw)),
                   key=lambda x: (-x[0], x[1], x[2]))
    return [(r, j) for _, r, j in reversed(cands[:n])]


@dataclass
class _Edge:
    cache: BlockCache
    uplink: simpy.Resource


def simulate_caching(edges: int, cache_bytes: int, granularity: Granularity | str,
                     policy: Policy | str, catalog: Catalog, n_jobs: int, alpha: float,
                     seed: int, *, block_alpha: float = 1.0, requests_per_job: int = 1,
                     n_neighbours: int = 2, cloud_sites: int = PAPER_CLOUD_SITES,
                     warm: str = "popularity", edge_bw_bytes_s: float = 2 * GB,
                     cloud_bw_bytes_s: float = 2 * GB, link_slots: int = 4,
                     job_rate_per_s: float = 1.0, warmup_jobs: int = 0) -> dict[str, Any]:
    """Run the caching simulation (module docstring) and return its figures: hit_ratio and
    miss_ratio (eq. 16 over all edge caches), fog_ratio, neighbour_ratio, origin_ratio,
    requests, hits, evictions, bytes_from_cloud, bytes_from_neighbours, mean_delay_s,
    sim_time_s, wall_s and the parameters."""
    t0 = time.perf_counter()
    gran, pol = Granularity(granularity), Policy(policy)
    if warm not in ("popularity", "none"):
        raise ValueError(f"warm must be 'popularity' or 'none', got {warm!r}")
    if edges <= 0 or cloud_sites <= 0 or link_slots <= 0:
        raise ValueError("edges, cloud_sites and link_slots must be > 0")
    env = simpy.Environment()
    nodes = [_Edge(BlockCache(cache_bytes, pol, gran, catalog.block_size),
                   simpy.Resource(env, capacity=link_slots)) for _ in range(edges)]
    clouds = [simpy.Resource(env, capacity=link_slots) for _ in range(cloud_sites)]
    manifests: dict[str, FileManifest] = {}

    def manifest(fid: str) -> FileManifest:
        m = manifests.get(fid)
        if m is None:
            m = manifests[fid] = sim_manifest(catalog, fid)
        return m

    if warm == "popularity":
        units = popularity_units(catalog, gran, alpha, block_alpha, cache_bytes)
        for node in nodes:
            for rank, j in units:
                m = manifest(file_id_of(catalog, rank))
                for i in (range(len(m.blocks)) if j < 0 else (j,)):
                    node.cache.admit(m, i, None)
            node.cache.reset_stats()

    plan = job_plan(catalog, n_jobs, edges, alpha, seed, block_alpha, requests_per_job)
    counts = {"neighbour": 0, "origin": 0, "bytes_cloud": 0, "bytes_neighbour": 0}
    delays: list[float] = []
    half = max(0, min(n_neighbours, edges - 1))

    def neighbours_of(e: int) -> list[int]:
        out: list[int] = []
        for d in range(1, edges):
            for cand in ((e + d) % edges, (e - d) % edges):
                if cand != e and cand not in out and len(out) < half:
                    out.append(cand)
        return out

    def transfer(link: simpy.Resource, nbytes: int, bw: float) -> Any:
        with link.request() as req:
            yield req
            yield env.timeout(nbytes / bw)

    def serve(e: int, r: BlockRequest) -> Any:
        start = env.now
        node = nodes[e]
        m = manifest(r.file_id)
        digest = m.blocks[r.index]
        if node.cache.lookup(r.file_id, r.index, digest) is None:
            whole = gran is Granularity.FILE
            nbytes = m.size if whole else m.block_len(r.index)
            src = next((n for n in neighbours_of(e) if nodes[n].cache.holds(digest)), None)
            if src is not None and not whole:
                counts["neighbour"] += 1
                counts["bytes_neighbour"] += nbytes
                yield from transfer(nodes[src].uplink, nbytes, edge_bw_bytes_s)
            else:
                if src is not None:       # FFC: the neighbour holds the whole file
                    counts["neighbour"] += 1
                    counts["bytes_neighbour"] += nbytes
                    yield from transfer(nodes[src].uplink, nbytes, edge_bw_bytes_s)
                else:
                    counts["origin"] += 1
                    counts["bytes_cloud"] += nbytes
                    site = int(r.file_id.rsplit("-", 1)[1]) % cloud_sites
                    yield from transfer(clouds[site], nbytes, cloud_bw_bytes_s)
            for i in (range(len(m.blocks)) if whole else (r.index,)):
                node.cache.admit(m, i, None)
        delays.append(env.now - start)

    def job(e: int, reqs: list[BlockRequest]) -> Any:
        for r in reqs:
            yield from serve(e, r)

    def arrivals() -> Any:
        rng = random.Random(seed + 2)
        for e, reqs in plan:
            env.process(job(e, reqs))
            yield env.timeout(rng.expovariate(job_rate_per_s))

    if warmup_jobs > 0:  # an earlier request history fills the caches; then counting starts
        def history() -> Any:
            for e, reqs in job_plan(catalog, warmup_jobs, edges, alpha,
                                    seed + WARMUP_SEED_OFFSET, block_alpha, requests_per_job):
                yield from job(e, reqs)

        env.process(history())
        env.run()
        for node in nodes:
            node.cache.reset_stats()
        counts.update(dict.fromkeys(counts, 0))
        delays.clear()
    env.process(arrivals())
    env.run()
    stats = [n.cache.stats() for n in nodes]
    requests = sum(s.requests for s in stats)
    hits = sum(s.hits for s in stats)
    hit_ratio = hits / requests if requests else 0.0
    return {
        "hit_ratio": hit_ratio, "miss_ratio": 1.0 - hit_ratio if requests else 0.0,
        "fog_ratio": (hits + counts["neighbour"]) / requests if requests else 0.0,
        "neighbour_ratio": counts["neighbour"] / requests if requests else 0.0,
        "origin_ratio": counts["origin"] / requests if requests else 0.0,
        "requests": requests, "hits": hits, "evictions": sum(s.evictions for s in stats),
        "bytes_from_cloud": counts["bytes_cloud"],
        "bytes_from_neighbours": counts["bytes_neighbour"],
        "mean_delay_s": sum(delays) / len(delays) if delays else 0.0,
        "sim_time_s": env.now, "wall_s": time.perf_counter() - t0,
        "edges": edges, "cache_bytes": cache_bytes, "granularity": gran.value,
        "policy": pol.value, "n_jobs": n_jobs, "alpha": alpha, "block_alpha": block_alpha,
        "warm": warm, "catalog_bytes": catalog.total_bytes, "seed": seed,
    }


# -- composition ------------------------------------------------------------------------------

def make_offers(n_nodes: int, n_services: int, seed: int, *, offer_prob: float = 0.6,
                cost_lo_ms: float = 50.0, cost_hi_ms: float = 150.0, cost_cv: float = 0.1
                ) -> list[ServiceOffer]:
    """Random offers (module docstring): node k is `node-k`, service j is `svc-j`; every
    service is offered by at least one node, and node-0 (the home) offers at least one."""
    if n_nodes <= 0 or n_services <= 0:
        raise ValueError("n_nodes and n_services must be > 0")
    means: dict[tuple[int, int], float] = {}
    for k in range(n_nodes):          # one stream per node: node k's offers do not depend
        rng = random.Random(f"{seed}:node-{k}")   # on n_nodes (node-0 is the same home)
        for j in range(n_services):
            offered, mean = rng.random() < offer_prob, rng.uniform(cost_lo_ms, cost_hi_ms)
            if offered or (k == 0 and j == n_services - 1 and not any(means)):
                means[(k, j)] = mean
    fill = random.Random(f"{seed}:fill")
    for j in range(n_services):
        if not any((k, j) in means for k in range(n_nodes)):
            means[(fill.randrange(n_nodes), j)] = fill.uniform(cost_lo_ms, cost_hi_ms)
    return [ServiceOffer(f"node-{k}", f"svc-{j}", m, cost_cv * m)
            for (k, j), m in sorted(means.items())]


def make_chi(offers: Sequence[ServiceOffer], seed: int, chi_prob: float = 0.9,
             nodes: Sequence[str] = ()) -> dict[str, frozenset[str]]:
    """chi for `nodes` (+ every offering node): each node may run each service it offers with
    probability `chi_prob`; every offered service stays allowed on at least one node."""
    allowed: dict[str, set[str]] = {n: set() for n in nodes}
    allowed.update({o.node: set() for o in offers})
    for node in allowed:              # one stream per node: stable when nodes are added
        rng = random.Random(f"{seed}:chi:{node}")
        for o in sorted((o for o in offers if o.node == node), key=lambda o: o.service):
            if rng.random() < chi_prob:
                allowed[node].add(o.service)
    for svc in {o.service for o in offers}:
        if not any(svc in a for a in allowed.values()):
            o = min((o for o in offers if o.service == svc), key=lambda o: o.node)
            allowed[o.node].add(svc)
    return {n: frozenset(a) for n, a in allowed.items()}


def request_expression(services: Sequence[str], rng: random.Random, size: int = 4) -> object:
    """A composite request over `size` distinct services: seq(a, par(b, c), d, ...)."""
    picked = rng.sample(list(services), min(size, len(services)))
    if len(picked) < 3:
        return {"seq": picked}
    return {"seq": [picked[0], {"par": picked[1:3]}, *picked[3:]]}


def simulate_composition(strategy: Strategy | str, n_requests: int, n_nodes: int,
                         actions_per_service: int, seed: int, *, n_services: int = 6,
                         services_per_request: int = 4, offer_prob: float = 0.6,
                         chi_prob: float = 0.9, secure_overhead_ms: float = 1.0,
                         cost_lo_ms: float = 50.0, cost_hi_ms: float = 150.0,
                         cost_cv: float = 0.1) -> dict[str, Any]:
    """Run the composition simulation (module docstring); returns delay_s (time until all
    requests complete), mean_latency_s, per-node busy seconds, refused requests and the
    parameters. The offers, chi and requests depend on `seed` only, not on the strategy, so
    strategies compare on the same inputs."""
    t0 = time.perf_counter()
    strat = Strategy(strategy)
    offers = make_offers(n_nodes, n_services, seed, offer_prob=offer_prob,
                         cost_lo_ms=cost_lo_ms, cost_hi_ms=cost_hi_ms, cost_cv=cost_cv)
    chi = make_chi(offers, seed + 1, chi_prob, [f"node-{k}" for k in range(n_nodes)])
    services = sorted({o.service for o in offers})
    req_rng = random.Random(seed + 2)
    exprs = [request_expression(services, req_rng, services_per_request)
             for _ in range(n_requests)]
    env = simpy.Environment()
    nodes = {f"node-{k}": simpy.Resource(env, capacity=1) for k in range(n_nodes)}
    busy = dict.fromkeys(nodes, 0.0)
    cost_rng = random.Random(seed + 3)
    cache: dict[str, Composition] = {}
    latencies: list[float] = []
    refused: list[str] = []
    home = "node-0"
    load: dict[str, float] = {}       # mean cost assigned per node, across requests

    def offer_for(node: str, svc: str) -> ServiceOffer:
        if strat is Strategy.NON_COOPERATIVE:
            return home_offer(offers, home, svc)
        return min((o for o in offers if o.node == node and o.service == svc),
                   key=lambda o: o.cost_mean_ms)

    def run_task(node: str, svc: str, overhead_s: float) -> Any:
        with nodes[node].request() as req:
            yield req
            cost_s = overhead_s + sum(sample_cost_ms(offer_for(node, svc), cost_rng)
                                      for _ in range(actions_per_service)) / 1000.0
            busy[node] += cost_s
            yield env.timeout(cost_s)

    def request(k: int, expr: object) -> Any:
        key = repr(expr)
        comp = cache.get(key)
        if comp is None:
            comp = cache[key] = parse_process(expr, known_services=services)
            ok, why = check_soundness(comp)
            if not ok:
                raise RuntimeError(f"generated request {k} unsound: {why}")
        routing = assign(comp, offers, strat, home,
                         chi=chi if strat is Strategy.SECURE else None, load=load)
        overhead = 0.0
        if strat is Strategy.SECURE:
            swf = SecureWorkflowNet(comp, frozenset(nodes), dict(chi),
                                    frozenset(services), routing)
            problems = authorize(swf, [])
            if problems:
                refused.append(f"request {k}: {problems[0]}")
                return
            overhead = secure_overhead_ms / 1000.0
        start = env.now
        for stage in firing_order(comp):
            procs = [env.process(run_task(routing[t], comp.tasks[t], overhead)) for t in stage]
            yield env.all_of(procs)
        latencies.append(env.now - start)

    for k, expr in enumerate(exprs):
        env.process(request(k, expr))
    env.run()
    return {
        "delay_s": env.now, "mean_latency_s": sum(latencies) / len(latencies) if latencies
        else 0.0, "completed": len(latencies), "refused": refused,
        "busy_s": busy, "wall_s": time.perf_counter() - t0, "strategy": strat.value,
        "n_requests": n_requests, "n_nodes": n_nodes,
        "actions_per_service": actions_per_service, "seed": seed,
    }
