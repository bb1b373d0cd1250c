"""Cold-migration phases on this machine's engine against a local TLS registry with auth.

For each size (default 50 MB; BloSM's 264 MB with --sizes 50,264) a synthetic workload is run,
then the node agent's engine layer performs stop / commit / push / pull / run / first response
exactly as the node agent does, with the base image already in the registry (pushed once, as
after the first deployment) and the committed image removed locally before the pull (so the pull
downloads what a destination that has the base would download). Bytes: "pushed" is the sum of the
compressed sizes of the layers the engine uploaded (registry manifest); "wire" is what crossed
the socket to the registry (a counting relay, TLS included). With --cold the base is *not* in the
registry: every layer is pushed (the full-image case of BloSM Table 3); the pull still finds the
base layers in the local engine, so cold pull numbers only cover the diff.

One engine is both source and destination: this times the mechanics and the bytes, not a link.

    .venv/bin/python benchmarks/bench_migration_local.py [--sizes 50,264] [--state-kib 1024]
        [--runs 3] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from agents.node.domain import ImageRef, moved_bytes
from agents.node.engine import DockerEngine, RegistryAccess, published_ports
from edgeferry.images.registry import CountingRelay, LocalRegistry
from edgeferry.images.synthetic import MB, SyntheticRecipe, synthetic_image
from edgeferry.pki import LabCA
from edgeferry.stats import median

PAPER_264MB_S = 20.33  # BloSM Table 3 at ~40 Mbps


def wait_http(port: int, path: str, timeout: float = 30) -> float:
    import urllib.request

    started = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"no response on {port}{path}")
        time.sleep(0.01)


def trial(eng: DockerEngine, client: Any, relay: CountingRelay, tag: str, size_mb: int,
          state: int, run_id: str, cold: bool) -> dict[str, Any]:
    name = f"efnode-bench-{run_id}"
    client.containers.run(tag, detach=True, name=name, environment={"EF_STATE_DIFF_BYTES": state},
                          ports={"8080/tcp": ("127.0.0.1", None)})
    c = client.containers.get(name)
    c.reload()
    wait_http(published_ports(c.attrs)[0][1], "/health")
    ref = ImageRef.parse(f"{relay.address}/efnode-bench/migr-{size_mb}mb:{run_id}")
    row: dict[str, Any] = {"size_mb": size_mb, "state_bytes": state, "cold": cold}
    t0 = time.monotonic()
    row["stop_s"] = eng.stop(name, 10).seconds
    row["commit_s"] = eng.commit(name, ref, {}).seconds
    up0, down0 = relay.snapshot()
    push = eng.push(ref)
    row["push_s"] = push.seconds
    row["pushed_bytes"] = moved_bytes(push.values["layers"])
    row["compressed_total"] = sum(x.size for x in push.values["layers"])
    row["push_wire_bytes"] = relay.snapshot()[0] - up0
    client.images.remove(str(ref))
    client.containers.get(name).remove(force=True)
    _, down0 = relay.snapshot()
    pull = eng.pull(ref, push.values["digest"])
    row["pull_s"] = pull.seconds
    row["pulled_bytes"] = moved_bytes(pull.values["layers"])
    row["pull_wire_bytes"] = relay.snapshot()[1] - down0
    run = eng.run(name, pull.values["pinned_ref"], ports=[(8080, 0, "127.0.0.1")], env={},
                  labels={}, mounts=[], command=[])
    row["run_s"] = run.seconds
    row["first_response_s"] = wait_http(run.values["ports"][0][1], "/health")
    row["downtime_s"] = time.monotonic() - t0
    row["wire_bound_ok"] = row["push_wire_bytes"] <= 1.05 * row["pushed_bytes"] + 65536
    client.containers.get(name).remove(force=True)
    client.images.remove(pull.values["pinned_ref"], force=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="50", help="comma-separated image sizes in MB")
    p.add_argument("--state-kib", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cold", action="store_true", help="base not in the registry (full image)")
    args = p.parse_args(argv)
    client = docker.from_env(timeout=900)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="efnode-bench-") as tmp:
        ca = LabCA.create(Path(tmp) / "ca")
        with LocalRegistry.start(Path(tmp) / "reg", ca) as reg, CountingRelay(reg.port) as relay:
            reg.trust(relay.address)
            eng = DockerEngine(RegistryAccess(relay.address, reg.username, reg.password,
                                              reg.ca_cert), interface="lo", client=client)
            for size in (int(s) for s in args.sizes.split(",")):
                tag = synthetic_image(SyntheticRecipe(total_bytes=size * MB, layers=1),
                                      log=lambda m: print(m, file=sys.stderr)).tag
                if not args.cold:
                    base = f"{relay.address}/efnode-bench/base-{size}mb"
                    client.images.get(tag).tag(base, "v1")
                    for line in client.api.push(base, "v1", auth_config=reg.auth_config,
                                                stream=True, decode=True):
                        if "error" in line:
                            raise SystemExit(line["error"])
                for i in range(args.runs):
                    row = trial(eng, client, relay, tag, size, args.state_kib * 1024,
                                f"{size}-{i}-{os.getpid()}", args.cold)
                    rows.append(row)
                    print(json.dumps(row))
                if not args.cold:
                    client.images.remove(f"{base}:v1")
    print("\nsize  push_s  pull_s  downtime_s  pushed_MB  compressed_MB  wire_MB  bound")
    for size in sorted({r["size_mb"] for r in rows}):
        rs = [r for r in rows if r["size_mb"] == size]

        def med(k: str, rs: list[dict[str, Any]] = rs) -> float:
            return float(median(r[k] for r in rs))

        print(f"{size:4d}  {med('push_s'):6.2f}  {med('pull_s'):6.2f}  {med('downtime_s'):10.2f}"
              f"  {med('pushed_bytes') / 1e6:9.2f}  {med('compressed_total') / 1e6:13.2f}"
              f"  {med('push_wire_bytes') / 1e6:7.2f}  {all(r['wire_bound_ok'] for r in rs)}")
    print(f"(BloSM Table 3: 264 MB in {PAPER_264MB_S} s at ~40 Mbps; here unshaped loopback, "
          "one engine)")
    return 0 if all(r["wire_bound_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
