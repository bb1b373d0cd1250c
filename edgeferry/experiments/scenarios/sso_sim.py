"""Seed 004 at the paper's scale, simulated: caching (Figs. 7-8) and composition (Figs. 4-6).

Both scenarios call `edgeferry.sso.sim` (SimPy), which drives the same domain code the lab's
blockcache and composer agents run (`agents.sso`: BlockCache, zipf_requests, parse_process,
check_soundness, assign, authorize). A trial is one simulation with its own seed, drawn from the
part's seed; the phase `simulate` is the wall time the simulation took on this machine (the
issue's "paper scale in <= 60 s" goal), the metrics are the simulated figures.
"""

from __future__ import annotations

import random
from typing import Any

from edgeferry.experiments.scenario import PhaseTimer, Scenario, ScenarioContext, TrialResult
from edgeferry.experiments.workloads import SsoCachingSimWorkload, SsoCompositionSimWorkload


def _catalog(w: SsoCachingSimWorkload) -> Any:
    from agents.sso.workload import Catalog
    from edgeferry.sso.sim import PAPER_CATALOG

    if w.scale == "paper":
        return PAPER_CATALOG
    return Catalog(n_files=w.n_files, blocks_per_file=w.blocks_per_file,
                   block_size=w.block_kib * 1024)


class SsoCachingSim(Scenario):
    """BC vs FFC hit and miss ratio vs cache size (seed 004 Figs. 7-8), simulated."""

    workload: SsoCachingSimWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        self.rng = random.Random(ctx.seed)

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        from edgeferry.sso.sim import simulate_caching

        w = self.workload
        seed = self.rng.randrange(2**31)
        cache_bytes = int(params["cache_tb"] * 10**12) if params.get("cache_tb") is not None \
            else int(params["cache_mb"] * 10**6)
        timer = PhaseTimer(ctx.progress)
        with timer.phase("simulate") as ph:
            out = simulate_caching(
                params["edges"], cache_bytes, params["granularity"], params["policy"],
                _catalog(w), params["n_jobs"], w.alpha, seed, block_alpha=w.block_alpha,
                n_neighbours=w.neighbours, cloud_sites=w.cloud_sites, warm=w.warm,
                warmup_jobs=params.get("warmup_jobs", 0))
            ph.detail = {"simulated": True, "seed": seed}
        metrics = {k: float(out[k]) for k in ("hit_ratio", "miss_ratio", "fog_ratio",
                                              "origin_ratio")}
        metrics["evictions"] = float(out["evictions"])
        metrics["mb_from_origin"] = out["bytes_from_cloud"] / 1e6
        return TrialResult(phases=timer.phases, metrics=metrics,
                           detail={"simulated": True, "seed": seed, "cache_bytes": cache_bytes,
                                   "catalog_bytes": out["catalog_bytes"],
                                   "requests": out["requests"], "hits": out["hits"]})


class SsoCompositionSim(Scenario):
    """Composition delay of the three strategies (seed 004 Figs. 4-6), simulated."""

    workload: SsoCompositionSimWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        self.rng = random.Random(ctx.seed)

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        from edgeferry.sso.sim import simulate_composition

        w = self.workload
        seed = self.rng.randrange(2**31)
        timer = PhaseTimer(ctx.progress)
        with timer.phase("simulate") as ph:
            out = simulate_composition(
                params["strategy"], params["n_requests"], params["nodes"],
                params["actions_per_service"], seed, n_services=w.services,
                services_per_request=w.services_per_request, offer_prob=w.offer_prob,
                chi_prob=w.chi_prob, secure_overhead_ms=w.secure_overhead_ms)
            ph.detail = {"simulated": True, "seed": seed}
        metrics = {"delay_s": float(out["delay_s"]),
                   "mean_latency_s": float(out["mean_latency_s"]),
                   "completed": float(out["completed"]), "refused": float(len(out["refused"]))}
        return TrialResult(phases=timer.phases, metrics=metrics,
                           detail={"simulated": True, "seed": seed,
                                   "refused": list(out["refused"])[:20]})
