"""TCFDL through real NATS on loopback (seed 003, Fig. 6 / 7 shape): latency of one offloaded
task per case and scheme at 1 KB / 256 KB / 4 MB, and a bare NATS request/reply of the same
bytes through the same two servers (the framework overhead is Case 3 minus that).

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
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.tcfdl_master import bus
from agents.tcfdl_master.natsconf import Subjects
from edgeferry.pki import LabCA
from edgeferry.stats import median, p99
from tests.conftest import LabPKI
from tests.integration.tcfdl_lab import ECHO, MASTERS, TcfdlLab

SIZES = {"1KB": 1024, "256KB": 256 * 1024, "4MB": 4 * 1024 * 1024}
SCHEMES = ("none", "hse", "eae-umbral", "eae-p256")


def bare(lab: TcfdlLab, data: bytes, runs: int) -> list[int]:
    """A plain request/reply, cluster a -> cluster b, echoing the bytes."""
    async def go() -> list[int]:
        def conn(cn: str, cluster: str) -> Any:
            c = lab.cert(cn)
            ctx = bus.tls_context(lab.pki.ca.cert_path, c.cert_path, c.key_path)
            return bus.connect(lab.nats_url(cluster), ctx, name=cn, server_name="localhost")
        echo, req = await conn(ECHO, "b"), await conn(MASTERS["a"], "a")

        async def respond(msg: Any) -> None:
            await msg.respond(msg.data)
        await echo.subscribe(Subjects.instance(ECHO), cb=respond)
        await echo.flush()
        await asyncio.sleep(0.3)
        out = []
        for i in range(runs + 2):
            t0 = time.perf_counter_ns()
            await req.request(Subjects.instance(ECHO), data, timeout=20)
            if i >= 2:
                out.append(time.perf_counter_ns() - t0)
        await echo.close()
        await req.close()
        return out
    return list(lab.run(go(), timeout=300))


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
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
