"""Seed 004 (issue 14) goals, in process: the soundness check of a 50-transition workflow net
(goal <= 100 ms) and the simulation of the paper's largest caching configuration (150 edges,
3 cloud sites, 20 TB caches, 1500 jobs, size-only; goal <= 60 s).

Run: .venv/bin/python benchmarks/bench_sso.py [--runs N]
Timing: time.perf_counter_ns around each call (edgeferry.stats.time_calls_ns, 3 warm-up calls
first, so pm4py's ~1 s import is not counted), median by edgeferry.stats. The net is
seq(s, 8 x par(s, s, choice(s, s)), s): 8 x (4 services + AND-split + AND-join) + 2 = 50
transitions. Both soundness engines are timed: the exact reachability engine (the default) and
pm4py's woflan (fewer runs: seconds each). The simulation is one run per granularity (BC, FFC),
wall time from the simulator, the slower of the two against the goal. Exits 1 when a goal is
missed.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

from agents.sso.wfnet import check_soundness, parse_process
from edgeferry.sso.sim import (
    PAPER_ALPHA,
    PAPER_BLOCK_ALPHA,
    PAPER_CACHE_SIZES,
    PAPER_CATALOG,
    PAPER_EDGES,
    PAPER_MAX_JOBS,
    simulate_caching,
)
from edgeferry.stats import median, time_calls_ns

GOAL_SOUNDNESS_MS = 100.0
GOAL_SIM_S = 60.0


def fifty_transition_expression() -> object:
    """seq(s, 8 x par(s, s, choice(s, s)), s): 50 transitions."""
    blocks = [{"par": [f"svc{k}a", f"svc{k}b", {"choice": [f"svc{k}c", f"svc{k}d"]}]}
              for k in range(8)]
    return {"seq": ["fetch", *blocks, "deliver"]}


def bench_soundness(runs: int, woflan_runs: int) -> float:
    """Median ms of check_soundness on the 50-transition net, per engine; returns the default
    engine's."""
    comp = parse_process(fifty_transition_expression())
    assert comp.n_transitions == 50, comp.n_transitions
    out = {}
    for engine, n in (("reachability", runs), ("woflan", woflan_runs)):
        ok, reason = check_soundness(comp, engine)
        assert ok, reason
        ms = median(time_calls_ns(lambda e=engine: check_soundness(comp, e), n)) / 1e6
        out[engine] = ms
        print(f"  check_soundness, 50 transitions, {engine:<12} n={n:<4} median={ms:9.2f} ms"
              f"  goal {GOAL_SOUNDNESS_MS:.0f} ms  ratio {ms / GOAL_SOUNDNESS_MS:6.2f}")
    return out["reachability"]


def bench_sim() -> float:
    """Wall seconds of the paper's largest caching configuration (BC and FFC); the max."""
    worst = 0.0
    for gran in ("bc", "ffc"):
        t0 = time.perf_counter()
        r = simulate_caching(PAPER_EDGES, PAPER_CACHE_SIZES[-1], gran, "lru", PAPER_CATALOG,
                             PAPER_MAX_JOBS, PAPER_ALPHA, seed=1, block_alpha=PAPER_BLOCK_ALPHA)
        wall = time.perf_counter() - t0
        worst = max(worst, wall)
        print(f"  caching sim {gran.upper():<3} 150 edges, 20 TB, 1500 jobs: {wall:6.1f} s  "
              f"goal {GOAL_SIM_S:.0f} s  ratio {wall / GOAL_SIM_S:5.2f}  "
              f"(hit ratio {r['hit_ratio']:.3f})")
    return worst


def main() -> None:
    """Run both figures, print them beside the goals; exit 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="soundness runs (reachability)")
    parser.add_argument("--woflan-runs", type=int, default=5, help="soundness runs (woflan)")
    args = parser.parse_args()
    print(f"# bench_sso  python {platform.python_version()}  {platform.machine()}")
    sound_ms = bench_soundness(args.runs, args.woflan_runs)
    sim_s = bench_sim()
    print("Goals:")
    missed = 0
    for text, got, goal, unit in (
            (f"soundness (50 transitions) <= {GOAL_SOUNDNESS_MS:.0f} ms", sound_ms,
             GOAL_SOUNDNESS_MS, "ms"),
            (f"paper-scale simulation <= {GOAL_SIM_S:.0f} s", sim_s, GOAL_SIM_S, "s")):
        ok = got <= goal
        missed += not ok
        print(f"  {text:<40} {got:>9.2f} {unit:<2}  ratio {got / goal:5.2f}  "
              f"{'met' if ok else 'MISSED'}")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
