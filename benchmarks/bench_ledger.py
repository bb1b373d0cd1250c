"""PoA ledger (seed 001, BloSM): time to 90 % confirmation, and ledger vs central-cloud cost.

Everything runs on loopback with real gRPC and mutual TLS (a throw-away lab CA in a temporary
directory).  The validator runs in this process (so its traffic meter and store can be read);
the peers run in ``--hosts`` separate processes (``python -m agents.ledger``), each hosting
``peers / hosts`` identities with their own keys, replicas and confirmations -- BloSM ran 100
nodes "by aggressively manipulating the nodes (one edge node may simulate several blockchain
nodes)".

1. Propagation: for each N in ``--peers``, ``--runs`` sequential writes; each is timed from
   just before the transaction is signed until the validator reports >= ceil(0.9 N) signed,
   verified confirmations (Algorithm 1 returning True), and until all N confirmed.
2. Cost (Figure 11, cost 1 = direct two-node communication), measured with the largest N:
   * direct:  source -> destination PutMetadata (destination known in advance);
   * central: source -> cloud PutMetadata, then destination -> cloud GetMetadata;
   * ledger:  Algorithm 1 (write, wait for 90 %), then the destination reads its own replica.
   latency = median per operation; throughput = operations/s with ``--concurrency`` clients;
   storage = bytes of stored records per metadata item (ledger: summed over validator and
   all N replicas, also shown per node); bandwidth = protobuf payload bytes (requests +
   responses, without HTTP/2 or TLS framing) per metadata item through all RPCs of the
   system (ledger: submit, confirmation polls, every push to every peer and its confirmation;
   the destination's read of its own replica is local and not counted).
   cost = value / direct value (throughput: direct / value).

    .venv/bin/python benchmarks/bench_ledger.py [--peers 10,50,100] [--hosts 2] [--runs 30]
        [--ops 200] [--concurrency 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as pb
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from agents.common.client import secure_channel
from agents.common.config import load_config
from agents.common.server import AgentServer
from agents.ledger.agent import setup_central, setup_validator
from agents.ledger.central import CentralStore
from agents.ledger.client import CentralClient, LedgerClient, ReplicaReader
from agents.ledger.consensus import required_confirmations
from agents.ledger.metering import TrafficMeter
from agents.ledger.signing import public_key_bytes
from agents.ledger.transactions import ContainerMetadata
from agents.ledger.validator import ValidatorCore
from edgeferry.pki import LabCA
from edgeferry.stats import median, p90

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 1.0  # issue 7: 100 peers at 90 % in under 1 s
PAPER_COST = {"ledger": {"latency": 0.9, "throughput": 0.6},
              "central": {"latency": 1.5, "throughput": 1.8}}


def meta(i: int) -> ContainerMetadata:
    return ContainerMetadata("10.10.0.11", f"bench-{i}-{os.urandom(4).hex()}", 2_130_000_000,
                             500, 2000, "image-recognition")


class Bench:
    def __init__(self, root: Path, hosts: int) -> None:
        self.root = root
        self.hosts = hosts
        self.ca = LabCA.create(root / "ca")
        # role-shaped names (agents.common.authz): the benchmark's client acts as the SMF
        self.tls = self.tls_for("smf.bench")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.servers: list[AgentServer] = []

    def tls_for(self, cn: str) -> dict[str, str]:
        """The TLS files of a localhost certificate named `cn` (issued once)."""
        cert = self.root / "certs" / f"{cn}.crt"
        if not cert.exists():
            self.ca.issue(cn, self.root / "certs", dns_names=("localhost",),
                          ip_addresses=("127.0.0.1",))
        return {"ca_cert": str(self.ca.cert_path), "cert": str(cert),
                "key": str(self.root / "certs" / f"{cn}.key")}

    def channel(self, port: int) -> grpc.Channel:
        return secure_channel(f"127.0.0.1:{port}", self.tls["ca_cert"], self.tls["cert"],
                              self.tls["key"])

    def _config(self, name: str, settings: dict[str, Any], data: Path, cn: str
                ) -> dict[str, Any]:
        return {"name": name, "listen_host": "127.0.0.1", "listen_port": 0,
                "tls": self.tls_for(cn),
                "data_dir": str(data), "log_level": "ERROR", "max_workers": 32,
                "grace_seconds": 0.5, "settings": settings}

    def start_inprocess(self, name: str, settings: dict[str, Any], data: Path,
                        setup: Callable[[AgentServer, Any], Any],
                        cn: str = "ledger-validator.bench") -> tuple[AgentServer, Any]:
        raw = self._config(name, settings, data, cn)
        path = data.parent / f"{name}.yaml"
        data.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(raw))
        config = load_config(path, {})
        server = AgentServer(config)
        out = setup(server, config)
        server.start()
        self.servers.append(server)
        return server, out

    def start_peer_hosts(self, run: Path, n: int, validator_port: int, authority: bytes) -> None:
        per = [n // self.hosts + (1 if i < n % self.hosts else 0) for i in range(self.hosts)]
        for i, count in enumerate(per):
            settings = {"role": "peers", "node_id": f"host{i}", "peers": count,
                        "validator": f"127.0.0.1:{validator_port}",
                        "authority_key": authority.hex()}
            path = run / f"host{i}.yaml"
            path.write_text(yaml.safe_dump(self._config("ledger", settings, run / f"host{i}",
                                                         f"ledger-peer.host{i}")))
            log = (run / f"host{i}.log").open("wb")
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "agents.ledger", "--config", str(path)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT))

    def stop_all(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()
        for s in self.servers:
            s.stop(0)
        self.servers.clear()


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit(f"bench_ledger: timed out waiting for {what}")
        time.sleep(0.05)


def ledger_run(bench: Bench, n: int, runs: int) -> dict[str, Any]:
    run = bench.root / f"n{n}"
    meter = TrafficMeter()
    vserver, (vcore, _prop) = bench.start_inprocess(
        "validator", {"role": "validator", "node_id": "validator"}, run / "validator",
        lambda s, c: setup_validator(s, c, meter))
    core: ValidatorCore = vcore
    bench.start_peer_hosts(run, n, vserver.port, public_key_bytes(core._key))
    wait_for(lambda: core.total_nodes() == n, f"{n} peers to register")
    client = LedgerClient(bench.channel(vserver.port), "smf", Ed25519PrivateKey.generate())
    client.register()
    for i in range(3):  # warm-up: channels, caches
        assert client.write_and_wait(meta(i), timeout=10).ok
    t90, t100 = [], []
    for i in range(runs):
        start = time.monotonic()
        result = client.write_and_wait(meta(i), quorum=0.9, timeout=10)
        if not result.ok:
            raise SystemExit(f"bench_ledger: write failed with {n} peers: {result.reason}")
        t90.append(time.monotonic() - start)
        client.confirmations(result.tx_id, at_least=n, wait_s=10)
        t100.append(time.monotonic() - start)
    return {"peers": n, "hosts": bench.hosts, "required": required_confirmations(n, 0.9),
            "runs": runs, "t90_median_s": median(t90), "t90_p90_s": p90(t90),
            "t100_median_s": median(t100), "t90_max_s": max(t90),
            "_ctx": (vserver, core, meter, client, run)}


def timed(fn: Callable[[int], None], runs: int) -> list[float]:
    out = []
    for i in range(runs):
        start = time.monotonic()
        fn(i)
        out.append(time.monotonic() - start)
    return out


def throughput(fn: Callable[[int], None], ops: int, concurrency: int) -> float:
    start = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(fn, range(ops)))
    return ops / (time.monotonic() - start)


def cost_run(bench: Bench, ctx: tuple[Any, ...], n: int, runs: int, ops: int,
             concurrency: int) -> dict[str, Any]:
    _vserver, core, vmeter, client, run = ctx
    key = Ed25519PrivateKey.generate()
    meters = {"direct": TrafficMeter(), "central": TrafficMeter()}
    stores: dict[str, CentralStore] = {}
    ports: dict[str, int] = {}
    for name in ("direct", "central"):
        m = meters[name]

        def setup(s: AgentServer, c: Any, m: TrafficMeter = m) -> CentralStore:
            return setup_central(s, c, m)

        server, store = bench.start_inprocess(name, {"role": "central"}, run / name, setup)
        stores[name], ports[name] = store, server.port
    direct = CentralClient(bench.channel(ports["direct"]), "smf", key)
    central = CentralClient(bench.channel(ports["central"]), "smf", key)
    # the destination: one peer identity, reading its own replica
    dest = core.peer_targets()[-1]
    replica = ReplicaReader(bench.channel(int(dest.address.rsplit(":", 1)[1])), dest.peer_id)

    def op_direct(i: int) -> None:
        direct.put(meta(i))  # the destination receives it; its read is local

    def op_central(i: int) -> None:
        m = meta(i)
        central.put(m)
        assert central.get(m.container_id) == m

    def op_ledger(i: int) -> None:
        m = meta(i)
        result = client.write_and_wait(m, quorum=0.9, timeout=10)
        assert result.ok, result.reason
        while replica.metadata(m.container_id) is None:  # destination among the last 10 %
            time.sleep(0.001)

    ops_fns = {"direct": op_direct, "central": op_central, "ledger": op_ledger}
    latency = {k: median(timed(fn, runs)) for k, fn in ops_fns.items()}
    for m in (*meters.values(), vmeter):
        m.reset()
    tput = {k: throughput(fn, ops, concurrency) for k, fn in ops_fns.items()}
    records = {"ledger": ops, "direct": ops, "central": ops}
    bandwidth = {"direct": meters["direct"].total() / records["direct"],
                 "central": meters["central"].total() / records["central"],
                 "ledger": vmeter.total() / records["ledger"]}
    total_records = sum(len(b.transactions) for b in core.chain.blocks)
    wait_for(lambda: core.confirmations(core.chain.blocks[-1].transactions[0].tx_id)
             .confirmations == n, "all peers to hold every block", 30)
    peer_bytes = 0
    for t in {t.address for t in core.peer_targets()}:
        stub = pb_grpc.LedgerPeerServiceStub(bench.channel(int(t.rsplit(":", 1)[1])))
        peer_bytes += stub.GetStatus(pb.GetStatusRequest(), timeout=10).stored_bytes
    ledger_bytes = core.store.size_bytes() + peer_bytes
    storage = {"direct": stores["direct"].size_bytes() / (runs + ops),
               "central": stores["central"].size_bytes() / (runs + ops),
               "ledger": ledger_bytes / total_records}
    cost = {k: {"latency": latency[k] / latency["direct"],
                "throughput": tput["direct"] / tput[k],
                "storage": storage[k] / storage["direct"],
                "bandwidth": bandwidth[k] / bandwidth["direct"]} for k in ops_fns}
    return {"peers": n, "latency_median_s": latency, "throughput_ops_s": tput,
            "storage_bytes_per_item": storage,
            "ledger_storage_bytes_per_item_per_node": ledger_bytes / total_records / (n + 1),
            "bandwidth_bytes_per_item": bandwidth, "cost_vs_direct": cost,
            "ledger_over_central": {m: cost["ledger"][m] / cost["central"][m]
                                    for m in cost["ledger"]},
            "paper_cost_figure11": PAPER_COST}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", default="10,50,100")
    ap.add_argument("--hosts", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--ops", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.peers.split(",")]
    results: dict[str, Any] = {"machine": {"python": platform.python_version(),
                                           "cpus": os.cpu_count()},
                               "method": "loopback gRPC + mTLS; see module docstring",
                               "propagation": []}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        bench = Bench(Path(tmp), args.hosts)
        try:
            for n in sizes:
                r = ledger_run(bench, n, args.runs)
                ctx = r.pop("_ctx")
                results["propagation"].append(r)
                if not args.json:
                    print(f"{n:4d} peers on {args.hosts} hosts: 90 % ({r['required']}) in "
                          f"median {r['t90_median_s'] * 1000:7.1f} ms  p90 "
                          f"{r['t90_p90_s'] * 1000:7.1f} ms  max {r['t90_max_s'] * 1000:7.1f} "
                          f"ms; 100 % median {r['t100_median_s'] * 1000:7.1f} ms", flush=True)
                if n == max(sizes):
                    results["cost"] = cost_run(bench, ctx, n, args.runs, args.ops,
                                               args.concurrency)
                bench.stop_all()
        finally:
            bench.stop_all()
    largest = max(results["propagation"], key=lambda r: r["peers"])
    results["target"] = {"peers": largest["peers"], "t90_median_s": largest["t90_median_s"],
                         "limit_s": TARGET_S, "met": largest["t90_median_s"] < TARGET_S}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    c = results["cost"]
    print(f"\ncost vs direct two-node exchange (Figure 11, 1 = direct), {c['peers']} peers:")
    print(f"{'':10s}{'latency':>10s}{'throughput':>12s}{'storage':>10s}{'bandwidth':>11s}")
    for k in ("direct", "central", "ledger"):
        v = c["cost_vs_direct"][k]
        print(f"{k:10s}{v['latency']:10.2f}{v['throughput']:12.2f}{v['storage']:10.2f}"
              f"{v['bandwidth']:11.2f}")
    lo = c["ledger_over_central"]
    print(f"ledger/central ratio: latency {lo['latency']:.2f}, throughput {lo['throughput']:.2f}"
          f", storage {lo['storage']:.2f}, bandwidth {lo['bandwidth']:.2f}")
    print("paper (Figure 11): ledger latency 0.9 throughput 0.6; central latency 1.5 "
          "throughput 1.8")
    print("raw: latency median (ms) " + ", ".join(
        f"{k} {v * 1000:.1f}" for k, v in c["latency_median_s"].items())
        + "; throughput (ops/s) " + ", ".join(
        f"{k} {v:.1f}" for k, v in c["throughput_ops_s"].items())
        + "; storage (B/item) " + ", ".join(
        f"{k} {v:.0f}" for k, v in c["storage_bytes_per_item"].items())
        + f" (ledger per node {c['ledger_storage_bytes_per_item_per_node']:.0f})"
        + "; bandwidth (B/item) " + ", ".join(
        f"{k} {v:.0f}" for k, v in c["bandwidth_bytes_per_item"].items()))
    t = results["target"]
    print(f"\ntarget: {t['peers']} peers at 90 % in {t['t90_median_s'] * 1000:.0f} ms "
          f"(limit {t['limit_s'] * 1000:.0f} ms): {'MET' if t['met'] else 'NOT MET'}")
    return 0 if t["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
