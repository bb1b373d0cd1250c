"""PoA ledger (seed 001, BloSM) on the emulated lab: time to 90 % and Figure 11's cost ratios.

The loopback benchmark (`bench_ledger.py`) on a deployed lab instead: the validator and the
central-cloud baseline on the control host, the peer identities split over the edge hosts (one
scale-mode ``python -m agents.ledger`` per edge, started over Fabric from the deployed venv),
the direct two-node baseline (cost 1) on the destination edge; the source's probe on
``--source``, the destination's on ``--destination``; mTLS from the lab CA; every byte crosses
the lab's shaped edge links (`edgeferry.experiments.ledger_lab` has the details).

1. Propagation, for each N in ``--peers``: ``--runs`` sequential writes from the source; time
   from just before signing until >= ceil(0.9 N) confirmations (Algorithm 1) and until all N,
   taken on the source edge; then the destination's self-evaluation (Algorithm 2: read its own
   replica, evaluate), timed on the destination edge.
2. Cost (Figure 11, 1 = direct), with the largest N:
   latency = median write (source) + median read-and-evaluate (destination) per path;
   throughput = ops/s of ``--ops`` writes from ``--concurrency`` threads on the source (ledger:
   each write waits for 90 %); bandwidth = Ethernet bytes sent by all lab hosts per item during
   the throughput run (bridge-side veth counters read on this machine, ledger: until every node
   confirmed; the probe's SSH round trip measured with a no-op and subtracted); storage = stored
   record bytes per item (ledger: validator + all replicas, also per node; central/direct: the
   signed records in their SQLite stores).

    .venv/bin/python benchmarks/bench_ledger_lab.py --lab ledgerlab [--peers 10,50,100]
        [--runs 20] [--ops 100] [--concurrency 8] [--source edge1] [--destination edge2] [--json]

Needs `edgeferry lab up --name LAB` and `edgeferry deploy -i inventory/LAB` first.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeferry.experiments.ledger_lab import LabLedger, ProbeSession
from edgeferry.hosts import connection_factory, hosts_from_lab
from edgeferry.stats import median, p90
from edgeferry.workspace import state_root

REPO = Path(__file__).resolve().parent.parent

TARGET_S = 1.0  # issue 7: 100 peers at 90 % in under 1 s
SEED_GLOB = "001_*.txt"
SEED_DIRS = (REPO / "seeds", Path("/work/shared/seeds"))
HIGH = [16 * 2**30, 8000, 1000, ["image-recognition"]]
_NUM = r"(\d+(?:\.\d+)?)"
_LEDGER_RE = re.compile(rf"decreases the latency to {_NUM} and the throughput cost to {_NUM}")
_CENTRAL_RE = re.compile(rf"increases the latency to {_NUM}, and the throughput cost to {_NUM}")


def paper_figure11(seed_dirs: tuple[Path, ...] = SEED_DIRS) -> dict[str, Any]:
    """Figure 11's values as the seed's text states them (the figure itself is an image:
    storage and bandwidth are only described, ledger better than central)."""
    for d in seed_dirs:
        for path in sorted(d.glob(SEED_GLOB)) if d.is_dir() else []:
            text = path.read_text(errors="replace")
            lm, cm = _LEDGER_RE.search(text), _CENTRAL_RE.search(text)
            if lm and cm:
                return {"source": str(path),
                        "ledger": {"latency": float(lm[1]), "throughput": float(lm[2])},
                        "central": {"latency": float(cm[1]), "throughput": float(cm[2])},
                        "storage": "no number: 'advantages in terms of storage utilization'",
                        "bandwidth": "no number: 'eliminating the bandwidth in the central "
                                     "node'"}
    raise SystemExit("bench_ledger_lab: seed 001 (BloSM) not found in "
                     + ", ".join(map(str, seed_dirs)) + "; Figure 11's values come from it")


def meta(lab: LabLedger, tag: str) -> dict[str, Any]:
    return {"source_ip": lab.address(lab.source), "container_id": f"bench-{tag}-"
            f"{os.urandom(4).hex()}", "total_size": 2_130_000_000, "gpu_usage": 500,
            "cpu_usage": 2000, "type": "image-recognition"}


def read(dst: ProbeSession, service: str, cid: str) -> dict[str, Any]:
    out = dst.call({"op": "read", "service": service, "container_id": cid, "resources": HIGH,
                    "timeout": 30})
    if not out["found"]:
        raise SystemExit(f"bench_ledger_lab: the destination never saw {cid} via {service}")
    return out


def write(src: ProbeSession, m: dict[str, Any]) -> dict[str, Any]:
    out = src.call({"op": "ledger_write", "meta": m, "quorum": 0.9, "timeout": 30})
    if not out["ok"]:
        raise SystemExit(f"bench_ledger_lab: Algorithm 1 failed: {out['reason']}")
    return out


def propagation(lab: LabLedger, net: Any, src: ProbeSession, dst: ProbeSession,
                runs: int) -> dict[str, Any]:
    for i in range(3):  # warm-up: the validator's channels to every peer host
        write(src, meta(lab, f"warm{i}"))
    net.items += 3
    t90, t100, ev = [], [], []
    for i in range(runs):
        m = meta(lab, f"p{i}")
        out = write(src, m)
        t90.append(out["t90_s"])
        if out.get("t100_s") is not None:
            t100.append(out["t100_s"])
        ev.append(read(dst, "replica", m["container_id"])["wall_s"])
    net.items += runs
    return {"peers": net.peers, "hosts": net.peer_hosts, "required": out["required"],
            "runs": runs, "t90_median_s": median(t90), "t90_p90_s": p90(t90),
            "t90_max_s": max(t90), "t100_median_s": median(t100) if t100 else None,
            "t100_reached": len(t100), "self_eval_median_s": median(ev),
            "self_eval_p90_s": p90(ev)}


def cost(lab: LabLedger, net: Any, src: ProbeSession, dst: ProbeSession, runs: int, ops: int,
         concurrency: int, noop: float) -> dict[str, Any]:
    writes: dict[str, list[float]] = {"direct": [], "central": [], "ledger": []}
    reads: dict[str, list[float]] = {"direct": [], "central": [], "ledger": []}
    for i in range(runs):
        m = meta(lab, f"l{i}")
        for path in ("direct", "central"):
            writes[path].append(src.call({"op": "put", "service": path, "meta": m})["wall_s"])
            reads[path].append(read(dst, path, m["container_id"])["wall_s"])
        writes["ledger"].append(write(src, m)["t90_s"])
        reads["ledger"].append(read(dst, "replica", m["container_id"])["wall_s"])
    net.items += runs
    latency = {k: median(writes[k]) + median(reads[k]) for k in writes}
    tput, wire = {}, {}
    for path in ("direct", "central", "ledger"):
        cmd = {"op": "throughput", "service": path, "ops": ops, "concurrency": concurrency,
               "meta": meta(lab, f"t-{path}"), "quorum": 0.9}
        out, raw = lab.measured(functools.partial(src.call, cmd))
        if path == "ledger" and not out.get("settled"):
            raise SystemExit("bench_ledger_lab: the ledger did not reach every node in 30 s")
        tput[path] = out["ops_s"]
        wire[path] = max(0.0, raw - noop) / ops
    net.items += ops
    stored = lab.storage(net)
    ledger_total = stored["ledger_validator"] + stored["ledger_replicas"]
    storage = {"direct": stored["direct"] / stored["direct_rows"],
               "central": stored["central"] / stored["central_rows"],
               "ledger": ledger_total / net.items}
    costs = {k: {"latency": latency[k] / latency["direct"],
                 "throughput": tput["direct"] / tput[k],
                 "storage": storage[k] / storage["direct"],
                 "bandwidth": wire[k] / wire["direct"]} for k in latency}
    return {"peers": net.peers, "latency_s": latency,
            "latency_parts_median_s": {k: {"write": median(writes[k]), "read": median(reads[k])}
                                       for k in writes},
            "throughput_ops_s": tput, "ops": ops, "concurrency": concurrency,
            "storage_bytes_per_item": storage,
            "ledger_storage_bytes_per_item_per_node": storage["ledger"] / (net.peers + 1),
            "stored": stored, "ledger_items": net.items,
            "wire_bytes_per_item": wire, "noop_wire_bytes": noop, "cost_vs_direct": costs,
            "ledger_over_central": {m: costs["ledger"][m] / costs["central"][m]
                                    for m in costs["ledger"]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", required=True, help="emulated lab name (edgeferry lab up --name)")
    ap.add_argument("--peers", default="10,50,100")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--ops", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--source", default="edge1")
    ap.add_argument("--destination", default="edge2")
    ap.add_argument("--port-base", type=int, default=50500)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    from edgeferry.lab.state import LabState

    state = LabState.load(args.lab)
    if state is None:
        raise SystemExit(f"bench_ledger_lab: no lab {args.lab!r}: run `edgeferry lab up "
                         f"--name {args.lab}` and `edgeferry deploy -i inventory/{args.lab}`")
    paper = paper_figure11()
    sizes = [int(x) for x in args.peers.split(",")]
    connect = connection_factory(hosts_from_lab(state))
    results: dict[str, Any] = {"lab": args.lab, "propagation": [], "paper_figure11": paper,
                               "method": "emulated lab over Fabric + mTLS; see the docstring"}
    log = (lambda m: None) if args.json else (lambda m: print(f"… {m}", flush=True))
    with tempfile.TemporaryDirectory(prefix="bench-ledger-lab-") as tmp:
        lab = LabLedger(state, connect, state_root() / "pki" / args.lab / "ca", Path(tmp),
                        source=args.source, destination=args.destination,
                        port_base=args.port_base, log=log)
        try:
            lab.setup()
            for index, n in enumerate(sizes):
                started = time.monotonic()
                net = lab.start(n, index)
                src = lab.probe(lab.source, net, "source")
                dst = lab.probe(lab.destination, net, "destination")
                noop = max(lab.noop_bytes(src), lab.noop_bytes(dst))
                r = propagation(lab, net, src, dst, args.runs)
                r["startup_s"] = time.monotonic() - started
                results["propagation"].append(r)
                if not args.json:
                    print(f"{n:4d} peers on {len(net.peer_hosts)} edges "
                          f"({', '.join(f'{h}:{c}' for h, (_a, c) in net.peer_hosts.items())})"
                          f": 90 % ({r['required']}) median {r['t90_median_s'] * 1000:7.1f} ms"
                          f"  p90 {r['t90_p90_s'] * 1000:7.1f} ms  max "
                          f"{r['t90_max_s'] * 1000:7.1f} ms; 100 % median "
                          f"{(r['t100_median_s'] or float('nan')) * 1000:7.1f} ms; "
                          f"self-evaluation median {r['self_eval_median_s'] * 1000:5.1f} ms",
                          flush=True)
                if n == max(sizes):
                    results["cost"] = cost(lab, net, src, dst, args.runs, args.ops,
                                           args.concurrency, noop)
        finally:
            problems = lab.close()
            connect.close_all()  # type: ignore[attr-defined]
            for p in problems:
                print(f"bench_ledger_lab: teardown: {p}", file=sys.stderr)
    largest = max(results["propagation"], key=lambda r: r["peers"])
    results["target"] = {"peers": largest["peers"], "t90_median_s": largest["t90_median_s"],
                         "limit_s": TARGET_S, "met": largest["t90_median_s"] < TARGET_S}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0 if results["target"]["met"] else 1
    c = results["cost"]
    print(f"\ncost vs direct two-node exchange (Figure 11, 1 = direct), {c['peers']} peers, "
          f"{args.source} -> {args.destination}:")
    print(f"{'':10s}{'latency':>10s}{'throughput':>12s}{'storage':>10s}{'bandwidth':>11s}"
          f"   paper latency / throughput")
    for k in ("direct", "central", "ledger"):
        v = c["cost_vs_direct"][k]
        ref = paper.get(k, {"latency": 1.0, "throughput": 1.0})
        print(f"{k:10s}{v['latency']:10.2f}{v['throughput']:12.2f}{v['storage']:10.2f}"
              f"{v['bandwidth']:11.2f}   {ref['latency']:.1f} / {ref['throughput']:.1f}")
    lo = c["ledger_over_central"]
    pl, pc = paper["ledger"], paper["central"]
    print(f"ledger/central: latency {lo['latency']:.2f} (paper "
          f"{pl['latency'] / pc['latency']:.2f}), throughput {lo['throughput']:.2f} (paper "
          f"{pl['throughput'] / pc['throughput']:.2f}), storage {lo['storage']:.2f}, "
          f"bandwidth {lo['bandwidth']:.2f} (paper: no numbers for storage and bandwidth)")
    print(f"paper values read from {paper['source']}")
    print("raw: latency (ms) " + ", ".join(f"{k} {v * 1000:.1f}" for k, v in c["latency_s"].items())
          + "; throughput (ops/s) " + ", ".join(
              f"{k} {v:.1f}" for k, v in c["throughput_ops_s"].items())
          + "; storage (B/item) " + ", ".join(
              f"{k} {v:.0f}" for k, v in c["storage_bytes_per_item"].items())
          + f" (ledger per node {c['ledger_storage_bytes_per_item_per_node']:.0f})"
          + "; wire (B/item) " + ", ".join(
              f"{k} {v:.0f}" for k, v in c["wire_bytes_per_item"].items())
          + f" (no-op round trip {c['noop_wire_bytes']:.0f} B subtracted)")
    t = results["target"]
    print(f"\ntarget: {t['peers']} peers at 90 % in {t['t90_median_s'] * 1000:.0f} ms "
          f"(limit {t['limit_s'] * 1000:.0f} ms): {'MET' if t['met'] else 'NOT MET'}")
    return 0 if t["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
