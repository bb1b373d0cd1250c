"""Seed 004 on the lab: block caching through the edges' blockcache agents and service
composition through the composer, over the lab CA's mTLS, real bytes on the shaped links.

sso-caching (Figs. 7-8 measured): per trial every edge's cache is replaced (Configure: size,
policy, BC or FFC; empty), then the requests of `edgeferry.sso.sim.job_plan` (the simulator's
own plan: Zipf block requests, each to a uniformly drawn edge) go one by one to their edge's
Fetch, which looks the block up locally, then at the other edges, then at the origin on the
control host, verifying every block's hash. hit_ratio is eq. 16 (local hits / requests) from the
edges' own counters; the same counts recounted from every Fetch reply must agree
(`counters_agree`). A part of `sso-caching-sim` with `scale: lab` replays the same plan in the
simulator, so the two can be set side by side.

sso-composition (Figs. 4-6 measured): `n_requests` composite requests (a sequence of the
workload's services, each repeated `actions_per_service` times, over the first
`blocks_per_request` blocks of the workload's file: a block answers a single-file query) start
at once through the
composer's Run with one strategy and `nodes` cooperating edges; `delay_s` is the time until the
last completes (the paper's "time needed to complete the requests"). Edges run one execution at a
time and model each service's time with the paper's normal cost (the lab's hosts share this
machine's cores; the transformation of the bytes still runs). Per-request phases (compose,
soundness, assign, authorize, fetch, execute, return) are the composer's own timings.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from edgeferry.experiments.scenario import (
    PhaseTimer,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.experiments.workloads import SsoCachingLabWorkload, SsoCompositionLabWorkload


class _Agents:
    """mTLS channels to the deployed SSO agents, as the controller."""

    def __init__(self, ctx: ScenarioContext) -> None:
        if ctx.endpoints.tls is None:
            raise ScenarioUnavailable("the SSO agents' endpoints are unknown: deploy first "
                                      "(`edgeferry run` without --skip-deploy)")
        self.tls = ctx.endpoints.tls
        self.edges = dict(sorted(ctx.endpoints.of("blockcache").items()))
        self.origin = next(iter(ctx.endpoints.of("blockcache-origin").values()))
        self._channels: list[grpc.Channel] = []

    def channel(self, address: str) -> grpc.Channel:
        from agents.common.client import secure_channel

        ch = secure_channel(address, self.tls.ca_cert, self.tls.cert, self.tls.key)
        self._channels.append(ch)
        return ch

    def close(self) -> None:
        for ch in self._channels:
            ch.close()


def _catalog(w: SsoCachingLabWorkload) -> Any:
    from agents.sso.workload import Catalog

    return Catalog(n_files=w.n_files, blocks_per_file=w.blocks_per_file,
                   block_size=w.block_kib * 1024)


def _check_origin(origin: Any, catalog: Any) -> None:
    """The origin serves the catalog the workload names (else the plan asks for other files)."""
    from agents.sso.workload import file_id_of

    for rank in (0, catalog.n_files - 1):
        fid = file_id_of(catalog, rank)
        try:
            manifest = origin.manifest(fid)
        except grpc.RpcError as err:
            raise ScenarioUnavailable(
                f"the lab's blockcache origin has no {fid} ({err}); the workload's catalog "
                f"({catalog.n_files} files) must match edgeferry_sso_catalog") from None
        if len(manifest.blocks) != catalog.blocks_per_file or \
                manifest.size != catalog.file_size:
            raise ScenarioUnavailable(
                f"{fid} at the origin has {len(manifest.blocks)} blocks / {manifest.size} "
                f"bytes, the workload says {catalog.blocks_per_file} / {catalog.file_size}: "
                "make the workload's catalog match edgeferry_sso_catalog")


def place_popular(clients: Iterable[Any], catalog: Any, granularity: str, alpha: float,
                  block_alpha: float, capacity_bytes: int) -> tuple[int, int]:
    """The paper's placement on every edge (``clients``: their BlockCacheClients): each fetches
    the units `edgeferry.sso.sim.popularity_units` names (the simulator's own list: the most
    popular blocks for BC, files for FFC, as many as the cache holds), least popular first,
    then its counters start from zero. Returns (bytes fetched, units per edge)."""
    from agents.sso.cache import Granularity
    from agents.sso.workload import file_id_of
    from edgeferry.sso.sim import popularity_units

    units = popularity_units(catalog, Granularity(granularity), alpha, block_alpha,
                             capacity_bytes)
    moved = 0
    for client in clients:
        for rank, j in units:  # j < 0: a whole file (FFC); asking for its block 0 fetches it
            moved += client.fetch(file_id_of(catalog, rank), [max(j, 0)]).bytes_in
        client.reset_stats()
    return moved, len(units)


class SsoCachingLab(Scenario):
    """BC vs FFC through the deployed blockcache agents (module docstring)."""

    workload: SsoCachingLabWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        from agents.blockcache.client import BlockCacheClient

        self.agents = _Agents(ctx)
        self.catalog = _catalog(self.workload)
        self.edges = {name: BlockCacheClient(self.agents.channel(addr), timeout=60.0)
                      for name, addr in self.agents.edges.items()}
        _check_origin(BlockCacheClient(self.agents.channel(self.agents.origin)), self.catalog)
        self.rng = random.Random(ctx.seed)

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2 as pb
        from edgeferry.sso.sim import WARMUP_SEED_OFFSET, job_plan

        w = self.workload
        seed = self.rng.randrange(2**31)
        names = list(self.edges)
        plan = job_plan(self.catalog, params["n_jobs"], len(names), w.alpha, seed,
                        w.block_alpha)
        timer = PhaseTimer(ctx.progress)
        policy = {"lru": pb.CACHE_POLICY_LRU, "lfu": pb.CACHE_POLICY_LFU}[params["policy"]]
        gran = {"bc": pb.GRANULARITY_BLOCK, "ffc": pb.GRANULARITY_FILE}[params["granularity"]]
        # per request, where its block came from: local (a hit), else the origin when any block
        # of the fetch came from it, else the neighbours (FFC fetches the whole file)
        recount = {"hits": 0, "neighbour": 0, "origin": 0, "bytes_in": 0, "rejected": 0}
        latencies: list[float] = []
        try:
            with timer.phase("configure"):
                for client in self.edges.values():
                    client.configure(int(params["cache_mb"] * 1e6), policy, gran)
            if w.warm == "popularity":
                with timer.phase("placement") as ph:
                    ph.bytes, units = place_popular(
                        self.edges.values(), self.catalog, params["granularity"], w.alpha,
                        w.block_alpha, int(params["cache_mb"] * 1e6))
                    ph.detail = {"units_per_edge": units, "unit": params["granularity"]}
            if params.get("warmup_jobs"):
                with timer.phase("warm-up") as ph:
                    history = job_plan(self.catalog, params["warmup_jobs"], len(names), w.alpha,
                                       seed + WARMUP_SEED_OFFSET, w.block_alpha)
                    for edge, reqs in history:
                        for r in reqs:
                            ph.bytes += self.edges[names[edge]].fetch(r.file_id,
                                                                      [r.index]).bytes_in
                    for client in self.edges.values():
                        client.reset_stats()
            with timer.phase("requests") as ph:
                for edge, reqs in plan:
                    for r in reqs:
                        t0 = time.perf_counter()
                        reply = self.edges[names[edge]].fetch(r.file_id, [r.index])
                        latencies.append(time.perf_counter() - t0)
                        recount["hits"] += reply.hits
                        if not reply.hits:
                            recount["origin" if reply.from_origin else "neighbour"] += 1
                        recount["bytes_in"] += reply.bytes_in
                        recount["rejected"] += reply.rejected_corrupt
                ph.bytes = recount["bytes_in"]
            with timer.phase("stats") as ph:
                stats = {n: c.stats() for n, c in self.edges.items()}
                ph.detail = {n: {"requests": s.requests, "hits": s.hits,
                                 "from_neighbours": s.from_neighbours,
                                 "from_origin": s.from_origin, "evictions": s.evictions}
                             for n, s in stats.items()}
        except grpc.RpcError as err:
            raise TrialFailed(f"blockcache: {err.code().name}: {err.details()}",
                              timer.phases) from err
        requests = sum(s.requests for s in stats.values())
        hits = sum(s.hits for s in stats.values())
        agree = requests == len(latencies) and hits == recount["hits"]
        n = max(requests, 1)
        metrics = {"hit_ratio": hits / n, "miss_ratio": 1 - hits / n,
                   "fog_ratio": (hits + recount["neighbour"]) / n,
                   "origin_ratio": recount["origin"] / n,
                   "evictions": float(sum(s.evictions for s in stats.values())),
                   "mb_in": recount["bytes_in"] / 1e6,
                   "mean_request_ms": 1e3 * sum(latencies) / max(len(latencies), 1),
                   "counters_agree": 1.0 if agree else 0.0,
                   "corrupt_rejected": float(recount["rejected"])}
        return TrialResult(phases=timer.phases, metrics=metrics,
                           detail={"seed": seed, "edges": names, "requests": requests,
                                   "recount": recount})

    def teardown(self, ctx: ScenarioContext) -> None:
        if hasattr(self, "agents"):
            self.agents.close()


class SsoCompositionLab(Scenario):
    """Composite requests through the deployed composer (module docstring)."""

    workload: SsoCompositionLabWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        from agents.composer.client import ComposerClient

        self.agents = _Agents(ctx)
        self.composer = ComposerClient(
            self.agents.channel(next(iter(ctx.endpoints.of("composer").values()))),
            timeout=300.0)
        known = sorted({o.node for o in self.composer.offers().offers})
        if self.workload.home not in known:
            raise ScenarioUnavailable(f"home edge {self.workload.home!r} is not one of the "
                                      f"composer's edges ({', '.join(known)})")
        self.known = [self.workload.home] + [n for n in known if n != self.workload.home]

    def process(self, actions: int) -> str:
        steps = [s for s in self.workload.services for _ in range(actions)]
        return "{seq: [" + ", ".join(steps) + "]}"

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        w = self.workload
        if params["nodes"] > len(self.known):
            raise TrialFailed(f"nodes={params['nodes']} but the lab has {len(self.known)} "
                              "edges with the composer")
        nodes = self.known[:params["nodes"]]
        process = self.process(params["actions_per_service"])
        timer = PhaseTimer(ctx.progress)

        def one(k: int) -> Any:
            return self.composer.run(process, params["strategy"], w.home, w.file_id,
                                     request_id=f"r{k}-{time.time_ns() % 10**12}",
                                     nodes=nodes, indices=list(range(w.blocks_per_request)))

        try:
            with timer.phase("requests") as ph:
                with ThreadPoolExecutor(max_workers=params["n_requests"]) as pool:
                    replies = list(pool.map(one, range(params["n_requests"])))
                ph.bytes = sum(r.bytes_moved for r in replies)
        except grpc.RpcError as err:
            raise TrialFailed(f"composer: {err.code().name}: {err.details()}",
                              timer.phases) from err
        digests = {r.result_digest for r in replies}
        delay = timer.phases[0].wall_s
        metrics = {**self._request_phases(replies), "delay_s": delay,
                   "mean_latency_s": sum(r.total_ns for r in replies) / 1e9 / len(replies),
                   "grants": float(sum(r.grants for r in replies)),
                   "nodes_used": float(len({t.node for r in replies for t in r.tasks})),
                   "same_result": 1.0 if len(digests) == 1 else 0.0}
        return TrialResult(phases=timer.phases, metrics=metrics,
                           detail={"nodes": nodes, "process": process,
                                   "result_digest": sorted(digests)[:3],
                                   "serial_order": list(replies[0].serial_order),
                                   "assignment": {t.transition: t.node
                                                  for t in replies[0].tasks}})

    @staticmethod
    def _request_phases(replies: list[Any]) -> dict[str, float]:
        """The composer's per-request phases as metrics `<phase>_s`: the median over the
        trial's requests (execute = every execute:<transition> of a request summed)."""
        from edgeferry.stats import median

        names = ("compose", "soundness", "assign", "authorize", "fetch", "execute", "return")
        per: dict[str, list[float]] = {n: [] for n in names}
        for r in replies:
            sums = dict.fromkeys(names, 0.0)
            for p in r.phases:
                key = "execute" if p.name.startswith("execute:") else p.name
                if key in sums:
                    sums[key] += p.ns / 1e9
            for n in names:
                per[n].append(sums[n])
        return {f"{n}_s": median(v) for n, v in per.items()}

    def teardown(self, ctx: ScenarioContext) -> None:
        if hasattr(self, "agents"):
            self.agents.close()

