"""Micro-benchmarks for agents.security: capability issue/verify (sealed vs the paper's plain
scheme), one full in-process RASP run and one SSP session.

Run: .venv/bin/python benchmarks/bench_security.py [--runs N]
Timing: time.perf_counter_ns (monotonic) around each operation, in one process, no network;
p50/p99 over N runs (after 3 warm-up runs), by edgeferry.stats (linear interpolation between
order statistics, numpy's default).
"""

from __future__ import annotations

import argparse
import platform
import secrets

from agents.security.capability import (
    CapType,
    ObjectId,
    PaperCapabilityScheme,
    SealedCapabilityAuthority,
    SysFlags,
)
from agents.security.crypto import Identity
from agents.security.rasp import (
    RaspCloud,
    RaspRegistry,
    RaspServer,
    RasTable,
    Resources,
    TransferDescriptor,
    run_rasp_in_process,
)
from agents.security.ssp import (
    ServerInfo,
    SspApplication,
    SspCms,
    SspServer,
    SspSmf,
)
from agents.security.ssp_driver import run_ssp_in_process
from agents.security.stores import InMemoryReplayCache, InMemoryRevocationStore
from edgeferry.stats import p50, p99, time_calls_ns


def line(name: str, samples: list[int]) -> None:
    lo, hi = p50(samples) / 1000, p99(samples) / 1000
    print(f"{name:<36} n={len(samples):<6} p50={lo:>10.1f} us  p99={hi:>10.1f} us")


def bench_capabilities(runs: int) -> None:
    obj = ObjectId.from_name("nms")
    paper = PaperCapabilityScheme()
    master = paper.issue(CapType.SERVICE, SysFlags.MASTER | SysFlags.CHANGE, 0xFFF, obj)
    line(
        "paper capability issue",
        time_calls_ns(lambda: paper.issue(CapType.USER, SysFlags.MASTER, 1, obj), runs),
    )
    line("paper capability verify", time_calls_ns(lambda: paper.verify(master), runs))
    auth = SealedCapabilityAuthority(
        "smf", secrets.token_bytes(32), store=InMemoryRevocationStore(), master_types=list(CapType)
    )
    user = auth.issue_master(CapType.USER, ObjectId.from_name("alice"), 1)
    dev = auth.issue_master(CapType.DEVICE, ObjectId.from_name("car"), 1)
    smaster = auth.issue_master(CapType.SERVICE, obj, 0xFFF, change=True)
    timed = auth.derive_proxy(smaster, ttl_s=60, subjects=[user, dev])
    line(
        "sealed capability issue (master)",
        time_calls_ns(lambda: auth.issue_master(CapType.USER, obj, 1), runs),
    )
    subjects = [user, dev]
    derive = time_calls_ns(lambda: auth.derive_proxy(smaster, ttl_s=60, subjects=subjects), runs)
    line("sealed proxy derive (timed,private)", derive)
    line("sealed capability verify", time_calls_ns(lambda: auth.verify(smaster), runs))
    line("sealed private verify",
         time_calls_ns(lambda: auth.verify(timed, subjects=[user, dev]), runs))


def bench_rasp(runs: int) -> None:
    ids = {n: Identity.generate(n) for n in ("sa", "cb", "registry")}
    need = Resources(cpu=1000, memory=2048, storage=5000, network=50)
    transfer = TransferDescriptor(
        "nms", "registry.lab:5000/nms:1", "sha256:" + "ab" * 32, 52_000_000
    )
    stages: dict[int, list[int]] = {1: [], 2: [], 3: [], 4: []}
    sizes: dict[int, int] = {}

    def once() -> None:
        table = RasTable()
        table.register_cloud(ids["cb"].public, Resources(8000, 16384, 100_000, 1000))
        table.register_server(ids["sa"].public)
        reg = ids["registry"].public
        sa = RaspServer(ids["sa"], registry=reg, requirement=need, transfer=transfer,
                        replay=InMemoryReplayCache())  # fmt: skip
        cb = RaspCloud(ids["cb"], registry=reg, maximum=Resources(8000, 16384, 100_000, 1000),
                       replay=InMemoryReplayCache())  # fmt: skip
        r = RaspRegistry(ids["registry"], table=table, replay=InMemoryReplayCache())
        run = run_rasp_in_process(sa, cb, r)
        for s, ns in run.stage_ns.items():
            stages[s].append(ns)
        sizes.update(run.message_bytes)

    totals = time_calls_ns(once, runs)
    line("RASP full run (12 steps)", totals)
    for s, name in ((1, "advertisement"), (2, "authentication"), (3, "transfer"), (4, "location")):
        line(f"  RASP stage {s} ({name})", stages[s][-runs:])
    print(f"  RASP message bytes per step: {sizes}  total={sum(sizes.values())}")


def bench_ssp(runs: int) -> None:
    ids = {n: Identity.generate(n) for n in ("cms", "smf", "server1", "appl")}
    stages: dict[int, list[int]] = {s: [] for s in range(1, 6)}

    def once() -> None:
        smf_auth = SealedCapabilityAuthority(
            "smf", secrets.token_bytes(32), store=InMemoryRevocationStore(),
            master_types=[CapType.USER, CapType.DEVICE, CapType.SERVICE],
        )  # fmt: skip
        srv_auth = SealedCapabilityAuthority(
            "server1", secrets.token_bytes(32), store=InMemoryRevocationStore(),
            master_types=[CapType.SESSION],
        )  # fmt: skip
        smf = SspSmf(ids["smf"], authority=smf_auth, cms={"cms": ids["cms"].public},
                     replay=InMemoryReplayCache())  # fmt: skip
        server = SspServer(ids["server1"], smf=ids["smf"].public, authority=srv_auth,
                           ip="10.0.0.7", port=9000, handler=lambda b: b,
                           replay=InMemoryReplayCache())  # fmt: skip
        user = smf.register_user("alice", holder=ids["appl"].public)
        dev = smf.register_device("car", "alice", holder=ids["appl"].public)
        app = SspApplication(ids["appl"], smf=ids["smf"].public, user_cap=user, dev_cap=dev,
                             replay=InMemoryReplayCache())  # fmt: skip
        cms = SspCms(ids["cms"], smf=ids["smf"].public, replay=InMemoryReplayCache())
        infos = (ServerInfo(ids["server1"].public, "10.0.0.7", 9000),)
        run = run_ssp_in_process(cms, smf, {"server1": server}, app, service=("nms", "1"),
                                 server_infos=infos, requests=[b"x" * 4096])  # fmt: skip
        for s, ns in run.stage_ns.items():
            stages[s].append(ns)

    line("SSP session (11 steps, 1 request)", time_calls_ns(once, runs))
    names = {1: "registration", 2: "server lookup", 3: "session start", 4: "1 request 4 KiB",
             5: "session end"}  # fmt: skip
    for s, name in names.items():
        line(f"  SSP stage {s} ({name})", stages[s][-runs:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="protocol runs per benchmark")
    parser.add_argument("--cap-runs", type=int, default=5000, help="capability ops per benchmark")
    args = parser.parse_args()
    print(f"# bench_security  python {platform.python_version()}  {platform.machine()}  "
          f"perf_counter_ns, p50/p99 linear interpolation")  # fmt: skip
    bench_capabilities(args.cap_runs)
    bench_rasp(args.runs)
    bench_ssp(args.runs)


if __name__ == "__main__":
    main()
