"""Container migration through SMF.MigrateService on an emulated lab, warm vs cold, vs the bound.

For each size in ``--sizes`` (synthetic images: busybox base + one incompressible
``/dev/urandom`` layer of that size + the entrypoint, built on the controller and put into the
lab registry once) and each condition:

* warm: the destination's engine already holds the image's layers (pre-pulled untimed with the
  node agent's PrePullImage, as proactive mode or an earlier migration leaves them), so only the
  committed container diff has to move;
* cold: the destination's engine holds none of the image's layers (every image sharing a layer
  with it is removed there first, and this is checked);

``--runs`` trials migrate the ``synthetic`` service from ``--source`` to ``--destination`` through
the deployed SMF (audit, RASP, ledger, self-evaluation, stop, commit, push, pull, run, first
response, location updates, clean-up). Untimed set-up per trial: the service is moved back to the
source if needed and restarted from the trial's image; the destination is purged (and, warm,
pre-pulled); iperf3 (``--iperf-seconds``, first interval dropped) measures source -> registry host
(the push's link) and registry host -> destination (the pull's link) just before the migration.

Per trial: total = the SMF round trip; downtime = stop .. first response (SMF phases); bytes
pushed / pulled = compressed sizes of the layers the node agents moved (registry manifest);
wire bytes = Ethernet bytes the source sent / the destination received during the call (the
bridge-side veth counters on this machine, all traffic of the call included: TLS, gRPC, ledger);
bound = t_stop + t_commit + pushed / bw_src + pulled / bw_dst + t_start (same trial's phases and
iperf3 figures). Checks (medians per cell): total / bound <= 2 (must) and <= 1.25 (target);
destination wire bytes <= 1.05 x compressed size of the image's layers missing at the destination
before the trial (registry manifest + config diff ids vs the destination engine's layers) +
64 KB (must, every trial). Exit status 1 when a must is violated.

    .venv/bin/python benchmarks/bench_migration_lab.py --lab migbench [--sizes 50,264]
        [--runs 2] [--conditions warm,cold] [--source edge1] [--destination edge2] [--json]
        [--out FILE.json]

Needs `edgeferry lab up --name LAB` and `edgeferry deploy -i inventory/LAB` first.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import ssl
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb
from agents.node.domain import ImageRef
from edgeferry.experiments.ecosystem import Ecosystem, ServiceHandle
from edgeferry.experiments.scenario import ScenarioContext
from edgeferry.experiments.scenarios.container_migration import LAYER_MB, PURGE, SERVICE
from edgeferry.experiments.scenarios.migration_common import downtime_s, phases_of, reset_to
from edgeferry.hosts import connection_factory, hosts_from_lab, run
from edgeferry.images.synthetic import MB, SyntheticRecipe, synthetic_image
from edgeferry.lab.links.iperf import parse_iperf3_json
from edgeferry.lab.links.veth import local_veth
from edgeferry.stats import median

AGENTS = ["audit", "ledger", "node", "ras", "smf"]
MUST_RATIO, TARGET_RATIO = 2.0, 1.25
WIRE_FACTOR, WIRE_SLACK = 1.05, 64 * 1024
PAPER_264MB_S = 20.33  # BloSM (seed 001) Table 3: 264 MB at ~40 Mbit/s
PAPER_BPS = 40e6
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json"))


# -- hosts --------------------------------------------------------------------------------------
def layer_set(conn: Any) -> set[str]:
    """Diff ids of every layer of every image in a host's engine."""
    ids = run(conn, ["docker", "image", "ls", "-aq", "--no-trunc"], check=False).split()
    if not ids:
        return set()
    out = run(conn, ["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}",
                     *sorted(set(ids))], check=False)
    return {d for line in out.splitlines() if line.strip() for d in json.loads(line) or []}


def image_layers(conn: Any, ref: str) -> list[str]:
    out = run(conn, ["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", ref])
    return list(json.loads(out))


def make_cold(conn: Any, eco: Ecosystem, host: str, layers: list[str]) -> None:
    """Remove from ``host``'s engine every image that shares a layer with ``layers``."""
    eco.purge(host, PURGE)
    wanted = set(layers)
    ids = run(conn, ["docker", "image", "ls", "-aq", "--no-trunc"], check=False).split()
    doomed = [i for i in sorted(set(ids)) if wanted & set(image_layers(conn, i))]
    if doomed:
        run(conn, ["docker", "rmi", "-f", *doomed], check=False, timeout=300)
        run(conn, ["docker", "image", "prune", "-f"], check=False, timeout=300)


def iperf(eco: Ecosystem, ctx: ScenarioContext, edge: str, direction: str,
          seconds: int) -> tuple[float, str]:
    """iperf3 between ``edge`` and the registry host; "up" = edge sends, "down" = edge receives."""
    reg = eco._registry_host()
    reg_ip = eco.address("ras", reg).rsplit(":", 1)[0]
    server = ctx.connection(reg)
    run(server, ["pkill", "-x", "iperf3"], check=False)
    run(server, ["iperf3", "-s", "-D", "-1", "--bind", reg_ip])
    time.sleep(0.3)
    cmd = ["iperf3", "-c", reg_ip, "-J", "-t", str(seconds), "-i", "0.5"]
    if direction == "down":
        cmd.insert(3, "-R")
    out = run(ctx.connection(edge), cmd, check=False, timeout=seconds + 30)
    run(server, ["pkill", "-x", "iperf3"], check=False)
    method = f"{' '.join(cmd)} on {edge}, server on {reg}; first interval dropped"
    sample = parse_iperf3_json(out, direction, method=method, drop_first=True)
    return sample.mean_bps, method


class Wire:
    """Bridge-side veth counters of the lab hosts (rx = bytes the host sent, tx = received)."""

    def __init__(self, connect: Any, hosts: list[str]) -> None:
        self.veth = {h: local_veth(run(connect(h), ["cat", "/sys/class/net/eth0/iflink"]))
                     for h in hosts}

    def read(self) -> dict[str, tuple[int, int]]:
        def get(dev: str, what: str) -> int:
            return int(Path(f"/sys/class/net/{dev}/statistics/{what}_bytes").read_text())

        return {h: (get(d, "rx"), get(d, "tx")) for h, d in self.veth.items()}


# -- registry ----------------------------------------------------------------------------------
def registry_json(eco: Ecosystem, path: str, accept: str) -> dict[str, Any]:
    address, user, password = eco.registry()
    assert eco.endpoints.tls is not None
    ctx = ssl.create_default_context(cafile=str(eco.endpoints.tls.ca_cert))
    auth = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(f"https://{address}/v2/{path}",
                                 headers={"Authorization": auth, "Accept": accept})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def image_blobs(eco: Ecosystem, image_ref: str, digest: str) -> list[tuple[str, int]]:
    """(diff id, compressed size) per layer of the pushed image, from its manifest + config."""
    repo = ImageRef.parse(image_ref).repository
    manifest = registry_json(eco, f"{repo}/manifests/{digest}", MANIFEST_TYPES)
    config = registry_json(eco, f"{repo}/blobs/{manifest['config']['digest']}", "*/*")
    diff_ids = config["rootfs"]["diff_ids"]
    return [(d, int(m["size"])) for d, m in zip(diff_ids, manifest["layers"], strict=True)]


# -- one trial ---------------------------------------------------------------------------------
def trial(ctx: ScenarioContext, eco: Ecosystem, handle: ServiceHandle, image: str, size: int,
          condition: str, src: str, dst: str, wire: Wire, iperf_s: int) -> dict[str, Any]:
    reset_to(ctx, eco, handle, src)
    handle.image = image
    eco.run_workload(handle, src, replace=True)
    dconn = ctx.connection(dst)
    base_layers = image_layers(ctx.connection(src), image)
    if condition == "cold":
        make_cold(dconn, eco, dst, base_layers)
    else:
        eco.purge(dst, PURGE)
        eco.node(dst).PrePullImage(npb.PrePullImageRequest(image_ref=image), timeout=1800)
    present = layer_set(dconn)
    base_present = sum(1 for d in base_layers if d in present)
    if condition == "cold" and base_present:
        raise SystemExit(f"bench_migration_lab: {dst} still holds {base_present} of the "
                         f"image's layers after the clean-up")
    bw_src, src_method = iperf(eco, ctx, src, "up", iperf_s)
    bw_dst, dst_method = iperf(eco, ctx, dst, "down", iperf_s)
    eco.report_edge_state()
    before = wire.read()
    report = eco.migrate(handle, dst)
    after = wire.read()
    phases = phases_of(report)
    if not report.migrated:
        raise SystemExit(f"bench_migration_lab: MigrateService failed: {report.error_code} "
                         f"{report.error_message}")
    by = {p.phase: p for p in phases}
    commit_ref = str(by["commit"].detail.get("detail", "")).rsplit("; ", 1)[-1].strip()
    m = re.search(r"digest (sha256:[0-9a-f]{64})", str(by["push"].detail.get("detail", "")))
    if m is None or not commit_ref:
        raise SystemExit(f"bench_migration_lab: no image/digest in the commit/push phases: "
                         f"{by['commit'].detail} {by['push'].detail}")
    blobs = image_blobs(eco, commit_ref, m[1])
    missing = sum(sz for d, sz in blobs if d not in present)
    pushed = sum(p.bytes for p in phases if p.phase == "push")
    pulled = sum(p.bytes for p in phases if p.phase == "pull")
    t_stop, t_commit, t_start = by["stop"].wall_s, by["commit"].wall_s, by["start"].wall_s
    bound = t_stop + t_commit + pushed * 8 / bw_src + pulled * 8 / bw_dst + t_start
    total = float(report.round_trip_seconds)
    src_sent = after[src][0] - before[src][0]
    dst_recv = after[dst][1] - before[dst][1]
    limit = WIRE_FACTOR * missing + WIRE_SLACK
    return {
        "size_mb": size, "condition": condition, "total_s": total,
        "downtime_s": downtime_s(phases), "stop_s": t_stop, "commit_s": t_commit,
        "push_s": by["push"].wall_s, "pull_s": by["pull"].wall_s, "start_s": t_start,
        "pushed_bytes": pushed, "pulled_bytes": pulled, "bw_src_bps": bw_src,
        "bw_dst_bps": bw_dst, "bound_s": bound, "ratio": total / bound,
        "image_layers": len(blobs), "image_compressed_bytes": sum(sz for _d, sz in blobs),
        "base_layers_present": base_present, "missing_bytes": missing,
        "src_wire_bytes": src_sent, "dst_wire_bytes": dst_recv, "wire_limit_bytes": limit,
        "wire_ok": dst_recv <= limit, "image": commit_ref, "digest": m[1],
        "phases": {p.phase: round(p.wall_s, 4) for p in phases},
        "bandwidth_method": {"src": src_method, "dst": dst_method}}


# -- output ------------------------------------------------------------------------------------
def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def med(k: str) -> float:
        return float(median(r[k] for r in rows))

    keys = ("total_s", "downtime_s", "stop_s", "commit_s", "push_s", "pull_s", "start_s",
            "pushed_bytes", "pulled_bytes", "bw_src_bps", "bw_dst_bps", "bound_s", "ratio",
            "missing_bytes", "src_wire_bytes", "dst_wire_bytes", "wire_limit_bytes")
    out: dict[str, Any] = {k: med(k) for k in keys}
    out.update(runs=len(rows), size_mb=rows[0]["size_mb"], condition=rows[0]["condition"],
               wire_ok=all(r["wire_ok"] for r in rows), ratio_max=max(r["ratio"] for r in rows),
               must_ok=out["ratio"] <= MUST_RATIO and all(r["wire_ok"] for r in rows),
               target_ok=out["ratio"] <= TARGET_RATIO,
               phases_median_s={name: float(median(r["phases"].get(name, 0.0)
                                                              for r in rows))
                                for name in rows[0]["phases"]})
    return out


def print_table(cells: list[dict[str, Any]], lab_bw: dict[str, float]) -> None:
    head = (f"{'size':>5} {'cond':>4} {'n':>2} {'total':>7} {'down':>7} {'stop':>5} {'commit':>6}"
            f" {'start':>5} {'push MB':>8} {'pull MB':>8} {'bw src':>6} {'bw dst':>6}"
            f" {'bound':>7} {'ratio':>5}  {'wire->dst MB':>12} {'limit MB':>8}  verdict")
    print("\nmedians per cell (s, MB = 1e6 bytes, Mbit/s):")
    print(head)
    for c in cells:
        verdict = ("target met" if c["target_ok"] else "must met, target missed"
                   if c["must_ok"] else "MUST VIOLATED")
        print(f"{c['size_mb']:5d} {c['condition']:>4} {c['runs']:2d} {c['total_s']:7.2f}"
              f" {c['downtime_s']:7.2f} {c['stop_s']:5.2f} {c['commit_s']:6.2f}"
              f" {c['start_s']:5.2f} {c['pushed_bytes'] / 1e6:8.2f} {c['pulled_bytes'] / 1e6:8.2f}"
              f" {c['bw_src_bps'] / 1e6:6.1f} {c['bw_dst_bps'] / 1e6:6.1f} {c['bound_s']:7.2f}"
              f" {c['ratio']:5.2f}  {c['dst_wire_bytes'] / 1e6:12.3f}"
              f" {c['wire_limit_bytes'] / 1e6:8.3f}  {verdict}")
    print("phase medians (s):")
    for c in cells:
        print(f"{c['size_mb']:5d} {c['condition']:>4}: " + ", ".join(
            f"{k} {v:.2f}" for k, v in c["phases_median_s"].items()))
    print(f"ratio = total / bound, must <= {MUST_RATIO:g}, target <= {TARGET_RATIO:g}; bound = "
          "stop + commit + pushed/bw src + pulled/bw dst + start (same trial); limit = "
          f"{WIRE_FACTOR:g} x compressed layers missing at the destination + 64 KB (must, "
          "each trial)")
    print("bandwidth: iperf3 just before each trial (src: source -> registry host, dst: "
          "registry host -> destination); lab-up measurements for comparison: "
          + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in lab_bw.items()) + " Mbit/s")
    paper_mb = PAPER_BPS * PAPER_264MB_S / 8 / 1e6
    for c in cells:
        if c["size_mb"] == 264:
            print(f"264 MB {c['condition']}: {c['total_s']:.2f} s here vs BloSM Table 3 "
                  f"{PAPER_264MB_S} s ({c['total_s'] / PAPER_264MB_S:.2f}x); moved "
                  f"{(c['pushed_bytes'] + c['pulled_bytes']) / 1e6:.1f} MB (pushed + pulled)")
    print(f"note: at 40 Mbit/s a link carries at most {paper_mb:.1f} MB in {PAPER_264MB_S} s, so "
          "BloSM's 264 MB in 20.33 s cannot have pushed and pulled the whole image over such a "
          "link (base layers must have been present, or the link was faster)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", required=True, help="emulated lab name (edgeferry lab up --name)")
    ap.add_argument("--sizes", default="50,264", help="comma-separated image sizes in MB")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--conditions", default="warm,cold")
    ap.add_argument("--source", default="edge1")
    ap.add_argument("--destination", default="edge2")
    ap.add_argument("--iperf-seconds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--out", type=Path, help="also write the JSON document to this file")
    args = ap.parse_args(argv)
    from edgeferry.deploy.experiment import deployed_endpoints
    from edgeferry.lab.state import LabState

    state = LabState.load(args.lab)
    if state is None:
        raise SystemExit(f"bench_migration_lab: no lab {args.lab!r}: run `edgeferry lab up "
                         f"--name {args.lab}` and `edgeferry deploy -i inventory/{args.lab}`")
    conditions = [c.strip() for c in args.conditions.split(",")]
    if not set(conditions) <= {"warm", "cold"}:
        raise SystemExit("bench_migration_lab: --conditions takes warm and/or cold")
    sizes = [int(s) for s in args.sizes.split(",")]
    src, dst = args.source, args.destination
    inventory = Path(state.inventory)
    log = (lambda m: None) if args.json else (lambda m: print(f"… {m}", flush=True))
    connect = connection_factory(hosts_from_lab(state))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-migration-lab-") as tmp:
        ctx = ScenarioContext(experiment="bench-migration-lab", part="bench", seed=0,
                              workload={}, run_dir=Path(tmp), work_dir=Path(tmp), lab=state,
                              inventory=inventory,
                              endpoints=deployed_endpoints(inventory, AGENTS),
                              connect=connect, log=log)
        eco = Ecosystem.open(ctx)
        try:
            wire = Wire(connect, [src, dst])
            images = {}
            for size in sizes:
                recipe = SyntheticRecipe(total_bytes=size * MB,
                                         layers=max(1, math.ceil(size / LAYER_MB)))
                images[size] = eco.publish(synthetic_image(recipe, log=log).tag)
            handle = eco.ensure_service(SERVICE, images[sizes[0]], src)
            for size in sizes:
                for condition in conditions:
                    for i in range(args.runs):
                        log(f"{size} MB {condition} run {i + 1}/{args.runs}")
                        row = trial(ctx, eco, handle, images[size], size, condition, src, dst,
                                    wire, args.iperf_seconds)
                        rows.append(row)
                        log(f"  total {row['total_s']:.2f} s, downtime {row['downtime_s']:.2f}"
                            f" s, bound {row['bound_s']:.2f} s (ratio {row['ratio']:.2f}), "
                            f"pushed {row['pushed_bytes'] / 1e6:.2f} MB, pulled "
                            f"{row['pulled_bytes'] / 1e6:.2f} MB, wire to {dst} "
                            f"{row['dst_wire_bytes'] / 1e6:.3f} MB (limit "
                            f"{row['wire_limit_bytes'] / 1e6:.3f})")
        finally:
            eco.close()
            connect.close_all()  # type: ignore[attr-defined]
    cells = [summarise([r for r in rows if (r["size_mb"], r["condition"]) == key])
             for key in dict.fromkeys((r["size_mb"], r["condition"]) for r in rows)]
    lab_bw = {f"{h} {d}": float(state.bandwidth[h][d]["mean_bps"])
              for h in (src, dst) for d in ("up", "down") if h in state.bandwidth}
    ok = all(c["must_ok"] for c in cells)
    doc = json.dumps({"lab": args.lab, "source": src, "destination": dst, "trials": rows,
                      "cells": cells, "lab_bandwidth_bps": lab_bw, "must_ok": ok,
                      "paper_264mb_s": PAPER_264MB_S}, indent=2)
    if args.out:
        args.out.write_text(doc)
    if args.json:
        print(doc)
    else:
        print_table(cells, lab_bw)
        print(f"\nmust bounds: {'all met' if ok else 'VIOLATED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
