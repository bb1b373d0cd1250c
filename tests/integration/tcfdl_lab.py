"""Two TCFDL clusters on loopback: real nats-server processes (TLS with a test lab CA, users
mapped from certificates, JetStream, cluster b joined to a as a leaf node), the service manager
and both masters as in-process agent servers over mTLS, each cluster's TEE proxy as its own
process (``python -m agents.tcfdl_proxy``), three instances and one client.

Placement (the paper's Fig. 5): function ``c1`` is served by an instance on master a's host
(Case 1), ``c2`` by an instance on a worker of cluster a (Case 2), ``c3`` by an instance on
master b (Case 3); the client sits on master a. All functions are the MLP inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.common.client import secure_channel
from agents.common.config import AgentConfig, load_config
from agents.common.server import AgentServer
from agents.tcfdl_client.offload import OffloadClient
from agents.tcfdl_manager.agent import setup_manager
from agents.tcfdl_manager.client import ManagerClient
from agents.tcfdl_manager.core import ManagerCore
from agents.tcfdl_master import bus
from agents.tcfdl_master.agent import LoopThread, setup_master
from agents.tcfdl_master.natsconf import ClusterNats, Hub, render
from agents.tcfdl_master.service import MasterService
from agents.tcfdl_worker.agent import serve_worker
from agents.tcfdl_worker.service import WorkerService

REPO = Path(__file__).resolve().parents[2]
MANAGER = "tcfdl-manager.ctl"
MASTERS = {"a": "tcfdl-master.ma", "b": "tcfdl-master.mb"}
PROXIES = {"a": "tcfdl-proxy.ma", "b": "tcfdl-proxy.mb"}
#: instance CN -> (cluster, function it serves)
WORKERS = {"tcfdl-worker.ma": ("a", "c1"), "tcfdl-worker.wa": ("a", "c2"),
           "tcfdl-worker.mb": ("b", "c3")}
CLIENT = "tcfdl-client.ma"
NATS_CERT = {"a": "tcfdl-nats.a", "b": "tcfdl-nats.b"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, what: str,
              timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port} within {timeout} s")


@dataclass
class NatsServer:
    """One cluster's nats-server process."""

    cluster: str
    conf: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["nats-server", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("ab"))
        wait_port(self.port, self.proc, f"nats-server {self.cluster}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class TcfdlLab:
    pki: Any  # tests.conftest.LabPKI
    root: Path
    nats: dict[str, NatsServer] = field(default_factory=dict)
    servers: dict[str, AgentServer] = field(default_factory=dict)
    masters: dict[str, MasterService] = field(default_factory=dict)
    workers: dict[str, WorkerService] = field(default_factory=dict)
    proxies: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    proxy_ports: dict[str, int] = field(default_factory=dict)
    manager_core: ManagerCore | None = None
    loop: LoopThread = field(default_factory=lambda: LoopThread("tcfdl-test"))
    stops: list[asyncio.Event] = field(default_factory=list)
    client: OffloadClient | None = None
    channels: list[Any] = field(default_factory=list)
    witness: bool = True  # masters record the frames they handle (tests; off for timing)

    # -- helpers -------------------------------------------------------------------------------
    def cert(self, cn: str) -> Any:
        return self.pki.issue(cn)

    def config(self, name: str, cn: str, settings: dict[str, Any]) -> AgentConfig:
        cert = self.cert(cn)
        return load_config(None, {f"settings.{k}": v for k, v in settings.items()}, defaults={
            "name": name, "listen_host": "127.0.0.1", "listen_port": 0,
            "data_dir": str(self.root / name), "grace_seconds": 0.2, "max_workers": 16,
            "log_level": "ERROR", "tls.ca_cert": str(self.pki.ca.cert_path),
            "tls.cert": str(cert.cert_path), "tls.key": str(cert.key_path)})

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.servers[name].port}"

    def nats_url(self, cluster: str) -> str:
        return f"tls://127.0.0.1:{self.nats[cluster].port}"

    def manager_as(self, cn: str) -> ManagerClient:
        cert = self.cert(cn)
        ch = secure_channel(self.address("manager"), self.pki.ca.cert_path, cert.cert_path,
                            cert.key_path)
        self.channels.append(ch)
        return ManagerClient(ch)

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        return self.loop.run(coro, timeout)

    # -- start ---------------------------------------------------------------------------------
    def _nats(self) -> None:
        leaf = free_port()
        for cluster in ("a", "b"):
            issued = self.pki.ca.issue(NATS_CERT[cluster], self.root / "nats-certs",
                                       dns_names=("localhost",), ip_addresses=("127.0.0.1",))
            port = free_port()
            workers = [w for w, (c, _) in WORKERS.items() if c == cluster]
            conf = ClusterNats(
                cluster, f"127.0.0.1:{port}", issued.cert_path, issued.key_path,
                self.pki.ca.cert_path, self.root / f"js-{cluster}",
                masters=[MASTERS[cluster]], workers=workers,
                clients=[CLIENT] if cluster == "a" else [],
                leaf_listen=f"127.0.0.1:{leaf}" if cluster == "a" else "",
                hubs=[Hub("a", f"127.0.0.1:{leaf}")] if cluster == "b" else [],
                leaves=[NATS_CERT["b"]] if cluster == "a" else [])
            path = self.root / f"nats-{cluster}.conf"
            path.write_text(render(conf))
            self.nats[cluster] = NatsServer(cluster, path, port, self.root / f"nats-{cluster}.log")
            self.nats[cluster].start()

    def _wait_leaf(self, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if "Leafnode connection created" in self.nats["a"].log.read_text():
                return
            time.sleep(0.05)
        raise AssertionError("cluster b's server did not join cluster a's as a leaf node")

    def _serve(self, name: str, cfg: AgentConfig, setup: Any) -> AgentServer:
        server = AgentServer(cfg)
        setup(server)
        server.start()
        self.servers[name] = server
        return server

    def start_proxy(self, cluster: str, cn: str, extra: dict[str, Any] | None = None
                    ) -> subprocess.Popen[bytes]:
        """`python -m agents.tcfdl_proxy` for `cn` (its own process)."""
        cert = self.cert(cn)
        port = free_port()
        cfg = {"name": f"proxy-{cluster}", "listen_host": "127.0.0.1", "listen_port": port,
               "data_dir": str(self.root / cn), "log_level": "INFO", "grace_seconds": 0.2,
               "tls": {"ca_cert": str(self.pki.ca.cert_path), "cert": str(cert.cert_path),
                       "key": str(cert.key_path)},
               "settings": {"manager": self.address("manager"), **(extra or {})}}
        path = self.root / f"{cn}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "agents.tcfdl_proxy", "--config",
                                 str(path)], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=(self.root / f"{cn}.log").open("ab"))
        self.proxies[cn] = proc
        self.proxy_ports[cn] = port
        return proc

    def start(self) -> TcfdlLab:
        self._nats()
        nodes = [{"cn": cn, "cluster": c} for c, cn in [*MASTERS.items(), *PROXIES.items()]]
        nodes += [{"cn": w, "cluster": c} for w, (c, _) in WORKERS.items()]
        nodes.append({"cn": CLIENT, "cluster": "a"})
        mcfg = self.config("manager", MANAGER, {"nodes": nodes})
        holder: dict[str, Any] = {}
        self._serve("manager", mcfg, lambda s: holder.update(core=setup_manager(s, mcfg)))
        self.manager_core = holder["core"]
        for cluster, cn in PROXIES.items():
            self.start_proxy(cluster, cn)
        for cn, proc in self.proxies.items():
            wait_port(self.proxy_ports[cn], proc, cn, timeout=30)
        self._wait_leaf()
        for cluster, cn in MASTERS.items():
            witness = str(self.root / f"witness-{cluster}.bin") if self.witness else None
            cfg = self.config(f"master-{cluster}", cn, {
                "cluster": cluster, "nats": self.nats_url(cluster),
                "nats_server_name": "localhost",
                "proxy": f"127.0.0.1:{self.proxy_ports[PROXIES[cluster]]}",
                "manager": self.address("manager"), "witness_file": witness,
                "queue_ack_wait_s": 1.0, "rpc_timeout_s": 3.0 if self.witness else 60.0})
            self._serve(f"master-{cluster}", cfg,
                        lambda s, c=cfg, k=cluster: self.masters.update({k: setup_master(s, c)}))
        for cn, (cluster, function) in WORKERS.items():
            self.start_worker(cn, cluster, {function: "mlp"})
        self.client = self.make_client(CLIENT, "a", PROXIES["a"])
        return self

    def start_worker(self, cn: str, cluster: str, functions: dict[str, str]) -> WorkerService:
        cfg = self.config(cn.replace(".", "-"), cn, {
            "cluster": cluster, "nats": self.nats_url(cluster), "nats_server_name": "localhost",
            "master": self.address(f"master-{cluster}"), "manager": self.address("manager"),
            "proxy": PROXIES[cluster], "functions": functions})
        ready = threading.Event()

        async def run() -> None:
            stop = asyncio.Event()
            self.stops.append(stop)
            await serve_worker(cfg, stop, lambda svc: (self.workers.update({cn: svc}),
                                                       ready.set()))

        fut = asyncio.run_coroutine_threadsafe(run(), self.loop.loop)
        if not ready.wait(20):
            raise AssertionError(f"worker {cn} did not start: {fut.exception(0)}")
        return self.workers[cn]

    def make_client(self, cn: str, cluster: str, proxy: str,
                    expected: list[bytes] | None = None) -> OffloadClient:
        cert = self.cert(cn)
        ctx = bus.tls_context(self.pki.ca.cert_path, cert.cert_path, cert.key_path)

        async def connect() -> Any:
            return await bus.connect(self.nats_url(cluster), ctx, name=cn,
                                     server_name="localhost", max_reconnect_attempts=-1)

        nc = self.run(connect())
        return OffloadClient(nc, self.manager_as(cn), me=cn, cluster=cluster, proxy=proxy,
                             ca_cert=self.pki.ca.cert_path, expected_measurements=expected)

    def stop(self) -> None:
        for stop in self.stops:
            self.loop.loop.call_soon_threadsafe(stop.set)
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.run(self.client.nc.close(), timeout=5)
        for server in reversed(list(self.servers.values())):
            server.stop(0.2)
        for proc in self.proxies.values():
            proc.terminate()
        for proc in self.proxies.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        for ch in self.channels:
            ch.close()
        for n in self.nats.values():
            n.stop()
        time.sleep(0.1)
        self.loop.stop()
