"""RASP and SSP over mutual TLS on loopback, and the cost of sealed capabilities.

Real agents in this process (RAS agent, two edge hosts each hosting a RASP endpoint and an SSP
chosen server, SMF agent), each with its own AgentServer, mTLS certificates from a throw-away
lab CA, SQLite stores and persistent replay caches, exactly as the tests run them.

1. RASP: ``--runs`` full runs (steps 1-12) relayed as the SMF relays them (prepare, advertise,
   deliver each step to its receiver, step 12 to the registry). Wall time per run and per
   stage (1: step 1; 2: steps 2-7; 3: steps 8-11; 4: step 12) with a monotonic clock, and the
   time the receivers spent handling (decode, verify, decrypt, build the reply).
2. Migrate Service through the SMF (capability check + RASP + location commit), ``--runs``
   times, alternating the direction.
3. SSP: ``--runs`` application sessions: Request Service (steps 3-6, the SMF calling the
   server), session start (7-8), one service request (9-10), session end (11).
4. Capabilities: issue (master; timed private proxy) and verify with the sealed scheme
   (HMAC-SHA256 tag, SQLite revocation store as deployed), the paper's plain 16-bit hash for
   comparison; mean over ``--ops`` operations.

    .venv/bin/python benchmarks/bench_protocols.py [--runs 200] [--ops 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.common.logging import configure_logging  # noqa: E402
from agents.common.store import SqliteRevocationStore, Store  # noqa: E402
from agents.security.capability import (  # noqa: E402
    CapType,
    ObjectId,
    PaperCapabilityScheme,
    SealedCapabilityAuthority,
    SysFlags,
)
from agents.security.rasp import Resources  # noqa: E402
from edgeferry.pki import LabCA  # noqa: E402
from edgeferry.stats import p50, p99  # noqa: E402
from tests.adversarial.harness import Lab  # noqa: E402
from tests.conftest import LOCAL_DNS, LOCAL_IPS, LabPKI  # noqa: E402

TINY = Resources(cpu=1, memory=1, storage=1, network=1)


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50_ms": p50(ms), "p99_ms": p99(ms),
            "mean_ms": statistics.fmean(ms), "max_ms": max(ms)}


def make_pki(root: Path) -> LabPKI:
    ca = LabCA.create(root / "ca")
    foreign = LabCA.create(root / "foreign-ca", "foreign CA")
    return LabPKI(root=root, ca=ca,
                  server=ca.issue("bare.localhost", root / "issued", dns_names=LOCAL_DNS,
                                  ip_addresses=LOCAL_IPS),
                  client=ca.issue_client("controller", root / "issued"), foreign_ca=foreign,
                  foreign_client=foreign.issue_client("controller", root / "foreign"),
                  foreign_server=foreign.issue("bare.localhost", root / "foreign",
                                               dns_names=LOCAL_DNS, ip_addresses=LOCAL_IPS))


def bench_rasp(lab: Lab, runs: int) -> dict[str, Any]:
    totals: list[float] = []
    handle: list[float] = []
    stages: dict[int, list[float]] = {s: [] for s in (1, 2, 3, 4)}
    src, dst = lab.edges["edge1"].rasp.public, lab.edges["edge2"].rasp.public
    relay = lab.relay("edge1", "edge2")
    for i in range(runs + 5):
        t0 = time.perf_counter()
        hs = relay.handshake(f"bench-{i}", source=src, destination=dst, requirement=TINY,
                             transfer=lab.transfer())
        relay.location_update(hs)
        total = time.perf_counter() - t0
        if i < 5:  # warm-up: channels, caches
            continue
        totals.append(total)
        for s, v in hs.timings.stage_s.items():
            stages[s].append(v)
        handle.append(sum(hs.timings.handle_s.values()))
    return {"full_run": summary(totals),
            "stages": {f"stage{s}": summary(v) for s, v in stages.items()},
            "receivers_handling": summary(handle),
            "message_bytes": dict(hs.timings.message_bytes)}


def bench_migrate(lab: Lab, runs: int) -> dict[str, Any]:
    who = lab.principal("Bench", "Mark")
    smf = lab.smf_client()
    totals = []
    for i in range(runs + 2):
        dest = "edge2" if i % 2 == 0 else "edge1"
        t0 = time.perf_counter()
        report = smf.migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                             who.device_cap, dest)
        elapsed = time.perf_counter() - t0
        if not report.migrated:
            raise SystemExit(f"migration failed: {report.error_message}")
        if i >= 2:
            totals.append(elapsed)
    return {"migrate_service": summary(totals)}


def bench_ssp(lab: Lab, runs: int) -> dict[str, Any]:
    who = lab.principal("Sess", "Ion")
    totals, stage2, stage3, request = [], [], [], []
    for i in range(runs + 5):
        t0 = time.perf_counter()
        with lab.app_session(who) as session:
            session.open("nms", "1")
            t1 = time.perf_counter()
            session.request(b"read block 7")
            t2 = time.perf_counter()
        total = time.perf_counter() - t0
        if i < 5:
            continue
        totals.append(total)
        stage2.append(session.timings["stage2"])
        stage3.append(session.timings["stage3"])
        request.append(t2 - t1)
    return {"session": summary(totals), "stage2_request_service": summary(stage2),
            "stage3_session_start": summary(stage3), "stage4_one_request": summary(request)}


def per_op(fn: Callable[[int], object], ops: int) -> float:
    t0 = time.perf_counter()
    for i in range(ops):
        fn(i)
    return (time.perf_counter() - t0) / ops * 1e6


def bench_capabilities(root: Path, ops: int) -> dict[str, float]:
    store = Store.open(root / "caps.sqlite3")
    auth = SealedCapabilityAuthority("smf", secrets.token_bytes(32),
                                     store=SqliteRevocationStore(store, "bench"),
                                     master_types=list(CapType))
    user = auth.issue_master(CapType.USER, ObjectId.from_name("u"), 3)
    dev = auth.issue_master(CapType.DEVICE, ObjectId.from_name("d"), 0)
    serv = auth.issue_master(CapType.SERVICE, ObjectId.from_name("s"), 0xFFF, change=True)
    timed = auth.derive_proxy(serv, ttl_s=60, subjects=[user, dev])
    paper = PaperCapabilityScheme()
    pcap = paper.issue(CapType.USER, SysFlags.MASTER, 3, ObjectId.from_name("u"))
    return {
        "sealed_issue_master_us": per_op(
            lambda i: auth.issue_master(CapType.USER, ObjectId(i), 3), ops),
        "sealed_issue_timed_proxy_us": per_op(
            lambda i: auth.derive_proxy(serv, ttl_s=60, subjects=[user, dev]), ops),
        "sealed_verify_master_us": per_op(lambda i: auth.verify(user), ops),
        "sealed_verify_timed_proxy_us": per_op(
            lambda i: auth.verify(timed, subjects=[user, dev]), ops),
        "paper_issue_us": per_op(
            lambda i: paper.issue(CapType.USER, SysFlags.MASTER, 3, ObjectId(i)), ops),
        "paper_verify_us": per_op(lambda i: paper.verify(pcap), ops),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="RASP runs / SSP sessions")
    ap.add_argument("--ops", type=int, default=20000, help="capability operations")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    configure_logging("bench", "WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lab = Lab(make_pki(root / "pki"), root / "lab").start()
        try:
            lab.scenario()
            results: dict[str, Any] = {"rasp": bench_rasp(lab, args.runs)}
            results["smf"] = bench_migrate(lab, max(10, args.runs // 4))
            results["ssp"] = bench_ssp(lab, args.runs)
        finally:
            lab.close()
        results["capabilities"] = bench_capabilities(root, args.ops)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": __import__("os").cpu_count(), "runs": args.runs, "ops": args.ops,
            "transport": "gRPC + mutual TLS on 127.0.0.1, agents in one process"}
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return 0
    print(f"# protocols over mTLS on loopback ({meta['python']}, {meta['machine']}, "
          f"{meta['cpus']} cpus, {args.runs} runs)")
    row = "{:<36} {:>9} {:>9} {:>9}"
    print(row.format("measurement", "p50 ms", "p99 ms", "mean ms"))

    def line(name: str, s: dict[str, float]) -> None:
        print(row.format(name, f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}",
                         f"{s['mean_ms']:.2f}"))

    line("RASP full run (steps 1-12)", results["rasp"]["full_run"])
    for name, s in results["rasp"]["stages"].items():
        line(f"  RASP {name}", s)
    line("  receivers' handling (sum)", results["rasp"]["receivers_handling"])
    line("Migrate Service via SMF", results["smf"]["migrate_service"])
    line("SSP session (steps 3-11, 1 request)", results["ssp"]["session"])
    for name in ("stage2_request_service", "stage3_session_start", "stage4_one_request"):
        line(f"  SSP {name}", results["ssp"][name])
    print("\n# capabilities (mean per operation)")
    for name, us in results["capabilities"].items():
        print(f"{name:<36} {us:>9.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
