"""Data-audit decision time (seed 002) beside the paper's 0.026-0.212 ms.

In-process: `evaluate` / `choose_destination` on the shipped Tables 5-6 (App1 from Edge1), timed
with time.perf_counter_ns around each call, after a warm-up; p50 / p99 / mean over --runs calls.
gRPC (with --grpc): the Evaluate round trip to a real audit agent over mTLS on loopback (a
throw-away CA and agent in a temporary directory), which includes writing and fsyncing the
decision to the append-only audit log before the answer.

    .venv/bin/python benchmarks/bench_audit.py [--runs 20000] [--grpc] [--grpc-runs 500]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from agents.audit.domain import Target, choose_destination, evaluate
from agents.audit.tables import seed002_tables

PAPER_MS = (0.026, 0.212)
TARGET_P50_MS = 0.05


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] / 1e6  # noqa: E731
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "mean_ms": statistics.fmean(s) / 1e6,
            "n": len(s)}


def time_calls(fn: Callable[[int], Any], runs: int, warmup: int = 500) -> dict[str, float]:
    for i in range(warmup):
        fn(i)
    samples = []
    clock = time.perf_counter_ns
    for i in range(runs):
        t0 = clock()
        fn(i)
        samples.append(clock() - t0)
    return _percentiles(samples)


def in_process(runs: int) -> dict[str, dict[str, float]]:
    doc = seed002_tables()
    app = doc.containers["App1"]
    results: dict[str, dict[str, float]] = {}
    for name in ("Edge2", "Edge3"):  # a deny (country) and a permit
        edge, state = doc.edges[name], doc.states[name]
        results[f"evaluate {name}"] = time_calls(lambda _i, e=edge, s=state: evaluate(app, e, s),
                                                 runs)
    for label, target in (("region regionB", Target.region("regionB")),
                          ("any edge", Target.any())):
        results[label] = time_calls(
            lambda i, t=target: choose_destination(app, doc.edges, doc.states, t, seed=i), runs)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--grpc", action="store_true", help="also time Evaluate over mTLS")
    ap.add_argument("--grpc-runs", type=int, default=500)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    results = in_process(args.runs)
    if args.grpc:
        from benchmarks.bench_audit_grpc import grpc_round_trip
        results.update(grpc_round_trip(args.grpc_runs))
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "clock": "time.perf_counter_ns per call, after 500 warm-up calls",
            "paper_ms": list(PAPER_MS), "target_in_process_p50_ms": TARGET_P50_MS}
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
    else:
        print(f"data-audit decision time (paper: {PAPER_MS[0]}-{PAPER_MS[1]} ms per audit; "
              f"target in-process p50 <= {TARGET_P50_MS} ms)")
        print(f"{'case':<34}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'n':>8}")
        for name, r in results.items():
            print(f"{name:<34}{r['p50_ms']:>10.4f}{r['p99_ms']:>10.4f}{r['mean_ms']:>10.4f}"
                  f"{int(r['n']):>8}")
        print(f"({meta['clock']}; Python {meta['python']} on {meta['machine']})")
    worst = max(r["p50_ms"] for k, r in results.items() if k.startswith("evaluate"))
    return 0 if worst <= TARGET_P50_MS else 1


if __name__ == "__main__":
    sys.exit(main())
