"""Abuse bounds (issue 12, item 4): what a busy or abused agent still costs.

Real AgentServers on 127.0.0.1 with mTLS from a throw-away lab CA (default limits: 8 workers,
16 queued, 4 reserved), in this process:

1. Health while busy: 100 slow clients each hold one call (a handler that blocks until the end
   of the measurement); then ``--runs`` health checks one after another. p99 of their latency.
2. Refusal of a 16 MiB request to a method with the default 256 KiB limit: client wall time
   from the call to its RESOURCE_EXHAUSTED (the bytes cross loopback; nothing is decoded), p50
   over ``--runs // 10`` refusals after 3 warm-ups. For scale, a 16 MiB request that is accepted
   (and not decoded) is timed too.
3. RAS per-message cost at 50 000 stored sessions: a RegistryCore whose session table holds 50k
   sessions (inserted directly), then RASP steps 2 and 5 of ``--runs // 10`` new migrations
   delivered to it; p50 of RegistryCore.deliver (decode, verify, decrypt, persist).
4. Secured RPC / insecure gRPC: p50 of a tiny unary call through an AgentServer with mTLS and
   the admission interceptor vs a bare ``grpc.server`` without TLS or interceptors.

Timing: time.perf_counter around each call; percentiles from edgeferry.stats
(linear interpolation). Each figure is printed with its goal and PASS/FAIL.

    .venv/bin/python benchmarks/bench_abuse.py [--runs 500] [--sessions 50000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.common.authz import CONTROLLER, Policy, allow  # noqa: E402
from agents.common.config import AgentConfig  # noqa: E402
from agents.common.logging import configure_logging  # noqa: E402
from agents.common.server import AgentServer  # noqa: E402
from agents.common.store import Store  # noqa: E402
from agents.node.rasp_core import EndpointCore  # noqa: E402
from agents.ras.domain import RegistryCore  # noqa: E402
from agents.security import encoding  # noqa: E402
from agents.security.crypto import Identity  # noqa: E402
from agents.security.rasp import RegistrySession, Resources, TransferDescriptor  # noqa: E402
from edgeferry.stats import percentile  # noqa: E402
from tests.conftest import LabPKI  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_protocols import make_pki  # noqa: E402

SERVICE = "edgeferry.bench.v1.AbuseBench"
MAX = Resources(4_000_000, 4_000_000, 10_000_000, 1_000_000)
NEED = Resources(1, 1, 1, 1)


def ms(seconds: list[float], q: float) -> float:
    return percentile([s * 1000 for s in seconds], q)


def verdict(name: str, value: float, unit: str, goal: str, ok: bool) -> bool:
    print(f"  {name:<44} {value:10.3f} {unit:<3} goal {goal:<10} {'PASS' if ok else 'FAIL'}")
    return ok


def controller_only(methods: Iterable[str]) -> Policy:
    """The bench service's authorization table: the controller (the bench's client) may call
    every method, as a real agent's table would admit its caller (deny by default)."""
    return Policy(SERVICE, {name: allow(CONTROLLER) for name in methods})


def secured_server(pki: LabPKI, root: Path,
                   methods: dict[str, Callable[[bytes, grpc.ServicerContext], bytes]]
                   ) -> AgentServer:
    tls = pki.tls_config()
    config = AgentConfig(name="bench", listen_port=0, tls=tls, data_dir=root)
    server = AgentServer(config)
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {n: grpc.unary_unary_rpc_method_handler(f) for n, f in methods.items()})
    server.add(lambda _s, g: g.add_generic_rpc_handlers((handler,)), None, SERVICE,
               policy=controller_only(methods))
    server.start()
    return server


def bench_health_while_busy(pki: LabPKI, root: Path, runs: int) -> list[float]:
    release = threading.Event()
    server = secured_server(pki, root, {"Slow": lambda _r, _c: release.wait(120) and b"",
                                        "Ping": lambda _r, _c: b""})
    clients = [pki.channel(server.port) for _ in range(100)]
    try:
        held = [ch.unary_unary(f"/{SERVICE}/Slow").future(b"", timeout=120) for ch in clients]
        time.sleep(2.0)
        refused = sum(1 for f in held if f.done())
        print(f"  (100 slow clients: {server.admission.admitted} held, {refused} refused "
              "RESOURCE_EXHAUSTED at once)")
        stub = health_pb2_grpc.HealthStub(clients[0])
        lat = []
        for _ in range(runs):
            t0 = time.perf_counter()
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            lat.append(time.perf_counter() - t0)
        return lat
    finally:
        release.set()
        for ch in clients:
            ch.close()
        server.stop(0)


def bench_refusal(pki: LabPKI, root: Path, runs: int) -> tuple[list[float], list[float]]:
    server = secured_server(pki, root, {"Echo": lambda _r, _c: b""})
    big_limit = {f"/{SERVICE}/Big": 32 << 20}
    config = AgentConfig(name="bench2", listen_port=0, tls=pki.tls_config(), data_dir=root,
                         limits={"method_max_request_bytes": big_limit})
    accepting = AgentServer(config, options=(("grpc.max_receive_message_length", 64 << 20),))
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Big": grpc.unary_unary_rpc_method_handler(lambda _r, _c: b"")})
    accepting.add(lambda _s, g: g.add_generic_rpc_handlers((handler,)), None, SERVICE,
                  policy=controller_only(["Big"]))
    accepting.start()
    payload = b"\0" * (16 << 20)
    try:
        refusals: list[float] = []
        with pki.channel(server.port) as ch:
            echo = ch.unary_unary(f"/{SERVICE}/Echo")
            for i in range(runs + 3):
                t0 = time.perf_counter()
                try:
                    echo(payload, timeout=30)
                    raise SystemExit("a 16 MiB request was accepted by a 256 KiB method")
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
                if i >= 3:
                    refusals.append(time.perf_counter() - t0)
        accepted: list[float] = []
        with pki.channel(accepting.port) as ch:
            big = ch.unary_unary(f"/{SERVICE}/Big")
            for i in range(runs + 3):
                t0 = time.perf_counter()
                big(payload, timeout=30)
                if i >= 3:
                    accepted.append(time.perf_counter() - t0)
        return refusals, accepted
    finally:
        server.stop(0)
        accepting.stop(0)


def bench_ras(root: Path, sessions: int, runs: int) -> list[float]:
    reg_id = Identity.generate("registry")
    store = Store.open(root / "registry.sqlite3")
    core = RegistryCore(reg_id, store, session_capacity=sessions + 10 * runs,
                        session_ttl_s=3600)
    ids = {n: Identity.generate(n) for n in ("edge1", "edge2")}
    ep = {n: EndpointCore(i, registry=reg_id.public, store=Store.open(root / f"{n}.sqlite3"),
                          maximum=MAX) for n, i in ids.items()}
    for ident in ids.values():
        core.register_cloud(ident.public, MAX)
        core.register_server(ident.public)
    filler = encoding.encode(RegistrySession("edge1", "edge2", NEED, NEED, 5))
    until = time.time() + 3600
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO sessions (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)",
            [("rasp-registry", i.to_bytes(16, "big"), filler, until) for i in range(sessions)])
    core.registry.sessions.update({i.to_bytes(16, "big"): encoding.decode_as(
        RegistrySession, filler) for i in range(sessions)})
    src, dst = ep["edge1"], ep["edge2"]
    transfer = TransferDescriptor("svc", "reg/svc:1", "sha256:00", 1)
    lat = []
    for i in range(runs):
        mid = f"m{i}"
        src.prepare_source(mid, dst.public, NEED, transfer)
        m1, _ = dst.advertise(src.public)
        m2, _, _ = src.deliver(m1, mid)
        assert m2 is not None
        t0 = time.perf_counter()
        m3, _ = core.deliver(m2)
        lat.append(time.perf_counter() - t0)
        assert m3 is not None
        m4, _, _ = src.deliver(m3, "")
        assert m4 is not None
        m5, _, _ = dst.deliver(m4, "")
        assert m5 is not None
        t0 = time.perf_counter()
        core.deliver(m5)
        lat.append(time.perf_counter() - t0)
    stored = store.query_one("SELECT COUNT(*) AS n FROM sessions")
    print(f"  (sessions stored at the end: {stored['n'] if stored else 0})")
    store.close()
    return lat


def bench_rpc_overhead(pki: LabPKI, root: Path, runs: int) -> tuple[list[float], list[float]]:
    server = secured_server(pki, root, {"Ping": lambda _r, _c: b"pong"})
    bare = grpc.server(futures.ThreadPoolExecutor(8))
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Ping": grpc.unary_unary_rpc_method_handler(lambda _r, _c: b"pong")})
    bare.add_generic_rpc_handlers((handler,))
    port = bare.add_insecure_port("127.0.0.1:0")
    bare.start()
    out: list[list[float]] = []
    try:
        for ch in (pki.channel(server.port), grpc.insecure_channel(f"127.0.0.1:{port}")):
            ping = ch.unary_unary(f"/{SERVICE}/Ping")
            lat = []
            for i in range(runs + 50):
                t0 = time.perf_counter()
                ping(b"ping", timeout=10)
                if i >= 50:
                    lat.append(time.perf_counter() - t0)
            ch.close()
            out.append(lat)
    finally:
        server.stop(0)
        bare.stop(0)
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=50_000)
    args = parser.parse_args(argv)
    configure_logging("bench", "WARNING")
    print(f"bench_abuse on {platform.node()} ({platform.machine()}, Python "
          f"{platform.python_version()}, grpc {grpc.__version__}), runs={args.runs}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pki = make_pki(root / "pki")
        print("1. health while 100 slow clients hold calls")
        lat = bench_health_while_busy(pki, root / "a", args.runs)
        print(f"  (health p50 {ms(lat, 50):.3f} ms, max {max(lat) * 1000:.3f} ms)")
        ok &= verdict("health p99", ms(lat, 99), "ms", "< 50 ms", ms(lat, 99) < 50)
        print("2. a 16 MiB request to a method limited to 256 KiB")
        refused, accepted = bench_refusal(pki, root / "b", max(10, args.runs // 10))
        print(f"  (for scale: an accepted, undecoded 16 MiB request p50 "
              f"{ms(accepted, 50):.3f} ms: the transfer over loopback)")
        ok &= verdict("time to refuse 16 MiB, p50", ms(refused, 50), "ms", "< 5 ms",
                      ms(refused, 50) < 5)
        print(f"3. RAS with {args.sessions} stored sessions")
        ras = bench_ras(root / "c", args.sessions, max(20, args.runs // 10))
        ok &= verdict("RAS per-message cost, p50", ms(ras, 50), "ms", "< 5 ms",
                      ms(ras, 50) < 5)
        print("4. secured RPC vs insecure gRPC, tiny unary call on loopback")
        secured, insecure = bench_rpc_overhead(pki, root / "d", args.runs)
        ratio = ms(secured, 50) / ms(insecure, 50)
        print(f"  (secured p50 {ms(secured, 50):.3f} ms, insecure p50 "
              f"{ms(insecure, 50):.3f} ms)")
        ok &= verdict("secured p50 / insecure p50", ratio, "x", "<= 1.5x", ratio <= 1.5)
    print("bench_abuse:", "all goals met" if ok else "some goals missed")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
