"""TCFDL through real NATS on loopback (seed 003, Fig. 6 / 7 shape): latency of one offloaded
task per case and scheme at 1 KB / 256 KB / 4 MB, and a bare NATS request/reply through the
same two servers carrying the same bytes as a task: the task's size out, the MLP result's size
back. The framework overhead it prints is Case 3 (`none`) minus that bare request/reply minus the
instance's MLP time (its `process` phase), medians of the same run.

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_tcfdl_loopback.py [--runs N] [--cases c3]
Setup: tests/integration/tcfdl_lab.py (two nats-servers joined by a leaf node, TLS everywhere,
the manager and masters in this process, the TEE proxies as their own processes, MLP instances
in this process). Timing: time.perf_counter_ns around the client's offload call (encrypt, the
request and the reply's decryption), median and p99 by edgeferry.stats over N runs after 2
warm-up runs; phases are the per-hop trace the agents add (medians). All on one host: no link
delay, so this is the framework's own cost, not the paper's testbed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.tcfdl_worker import mlp
from edgeferry.pki import LabCA
from edgeferry.stats import median, p99
from edgeferry.tcfdl import overhead_s
from tests.conftest import LabPKI
from tests.integration.tcfdl_lab import WORKERS, TcfdlLab

SIZES = {"1KB": 1024, "256KB": 256 * 1024, "4MB": 4 * 1024 * 1024}
SCHEMES = ("none", "hse", "eae-umbral", "eae-p256")
GOAL_OVERHEAD_MS = 10.0  # issue 13
CASE3_INSTANCE = next(cn for cn, (_, fn) in WORKERS.items() if fn == "c3")


def bare(lab: TcfdlLab, data: bytes, runs: int) -> list[int]:
    """ns of bare requests from the client (cluster a) to Case 3's instance's probe (cluster
    b): `data` out, as many zero bytes back as the MLP's result of `data` (what a task's reply
    carries). No master, no cryptography, no function (WorkerService's probe)."""
    assert lab.client is not None
    size = len(mlp.infer(data))
    return [lab.run(lab.client.probe(CASE3_INSTANCE, data, size, timeout=20))
            for _ in range(runs + 2)][2:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--cases", default="c1,c2,c3")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tcfdl-bench-"))
    ca = LabCA.create(root / "ca")
    pki = LabPKI(root, ca, None, None, None, None, None)  # type: ignore[arg-type]
    lab = TcfdlLab(pki, root / "lab", witness=False).start()
    print(f"# TCFDL loopback, {args.runs} runs, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; ms (p50 / p99)")
    try:
        for name, size in SIZES.items():
            data = os.urandom(size)
            b = bare(lab, data, args.runs)
            print(f"{name:>6} bare-nats a->b        p50 {median(b) / 1e6:8.2f}  "
                  f"p99 {p99(b) / 1e6:8.2f}")
            for case in args.cases.split(","):
                for scheme in SCHEMES:
                    totals, phases = [], {}
                    for i in range(args.runs + 2):
                        r = lab.run(lab.client.offload(case, data, scheme=scheme, timeout=60))
                        if i >= 2:
                            totals.append(r.total_ns)
                            for k, v in r.phases.items():
                                phases.setdefault(k, []).append(v)
                    ph = " ".join(f"{k}={median(v) / 1e6:.2f}" for k, v in sorted(phases.items())
                                  if median(v) >= 10_000)
                    print(f"{name:>6} {case} {scheme:<11} p50 {median(totals) / 1e6:8.2f}  "
                          f"p99 {p99(totals) / 1e6:8.2f}  | {ph}")
                    if case == "c3" and scheme == "none":
                        process = int(median(phases.get("worker.process", [0])))
                        overhead = overhead_s(int(median(totals)), int(median(b)),
                                              {"worker.process": process}) * 1e3
                        print(f"{name:>6} framework overhead (c3 none - bare - process) "
                              f"{overhead:.2f} ms (goal <= {GOAL_OVERHEAD_MS:.0f} ms at 4 MB, "
                              f"ratio {overhead / GOAL_OVERHEAD_MS:.2f})")
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
