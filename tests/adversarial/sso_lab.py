"""The SSO agents on loopback over mTLS: an origin blockcache, edge blockcaches and a composer,
each a real AgentServer built by its own setup function with a lab-CA certificate of its role
(``blockcache-origin.control``, ``blockcache.edgeN``, ``composer.control``).

Used by tests/integration/test_sso_agents.py and tests/adversarial/test_sso_*.py. The cores are
kept (`SsoLab.edges[name].core`) so a test can inject a fault at one agent (e.g. a neighbour
that answers peer queries with corrupt bytes).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from agents.blockcache.agent import setup_blockcache
from agents.blockcache.client import BlockCacheClient
from agents.blockcache.core import EdgeCore, OriginCore
from agents.common.client import secure_channel
from agents.common.config import AgentConfig, load_config
from agents.common.server import AgentServer
from agents.composer.agent import setup_composer
from agents.composer.client import ComposerClient
from agents.composer.core import ComposerCore
from agents.sso.workload import Catalog

CATALOG = Catalog(n_files=6, blocks_per_file=4, block_size=4096)
SEED = 4
#: The service each edge offers (one per edge: a cooperative request spans all three).
EDGE_SERVICES = {"edge1": "filter", "edge2": "transcode", "edge3": "subtitle-merge"}


def free_port() -> int:
    """A port the OS just handed out on 127.0.0.1 (free again once this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    """One agent of the lab: its server and the core its setup returned."""

    server: AgentServer
    core: Any

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@dataclass
class SsoLab:
    pki: Any  # tests.conftest.LabPKI
    root: Path
    require_grant: bool = True
    model_service_time: bool = False
    origin: Running | None = None
    edges: dict[str, Running] = field(default_factory=dict)
    composer: Running | None = None
    channels: list[grpc.Channel] = field(default_factory=list)
    extra: list[Running] = field(default_factory=list)  # agents a test added

    def config(self, name: str, cn: str, settings: dict[str, Any], port: int = 0
               ) -> AgentConfig:
        cert = self.pki.issue(cn)
        return load_config(None, {f"settings.{k}": v for k, v in settings.items()}, defaults={
            "name": name, "listen_host": "127.0.0.1", "listen_port": port,
            "data_dir": str(self.root / name), "grace_seconds": 0.2, "max_workers": 16,
            "log_level": "ERROR", "tls.ca_cert": str(self.pki.ca.cert_path),
            "tls.cert": str(cert.cert_path), "tls.key": str(cert.key_path)})

    def _serve(self, cfg: AgentConfig, setup: Any) -> Running:
        server = AgentServer(cfg)
        holder: dict[str, Any] = {}
        holder["core"] = setup(server, cfg)
        server.start()
        return Running(server, holder["core"])

    def start(self, n_edges: int = 3) -> SsoLab:
        cat = {"n_files": CATALOG.n_files, "blocks_per_file": CATALOG.blocks_per_file,
               "block_size": CATALOG.block_size, "seed": SEED}
        self.origin = self._serve(self.config("origin", "blockcache-origin.control", {
            "mode": "origin", "node": "cloud", "block_size": CATALOG.block_size,
            "catalog": cat}), setup_blockcache)
        names = [f"edge{i}" for i in range(1, n_edges + 1)]
        ports = {n: free_port() for n in names}  # every edge knows every other one's address
        for name in names:
            self.edges[name] = self._serve(self._edge_config(name, ports[name], [
                {"name": n, "address": f"127.0.0.1:{ports[n]}"} for n in names if n != name]),
                setup_blockcache)
        self.composer = self._serve(self.config("composer", "composer.control", {
            "origin": self.origin.address,
            "edges": [{"name": n, "address": self.edges[n].address} for n in names],
            "offers": [{"node": n, "service": EDGE_SERVICES.get(n, "filter"),
                        "cost_mean_ms": 5.0, "cost_sd_ms": 1.0} for n in names],
            "grant_ttl_s": 30}), setup_composer)
        return self

    def _edge_config(self, name: str, port: int,
                     neighbours: list[dict[str, str]]) -> AgentConfig:
        assert self.origin is not None
        return self.config(name, f"blockcache.{name}", port=port, settings={
            "mode": "edge", "node": name, "origin": self.origin.address,
            "neighbours": neighbours, "capacity_bytes": 64 * CATALOG.block_size,
            "policy": "lru", "granularity": "bc", "block_size": CATALOG.block_size,
            "services": [{"service": EDGE_SERVICES.get(name, "filter"),
                          "cost_mean_ms": 5.0, "cost_sd_ms": 1.0}],
            "require_grant": self.require_grant,
            "model_service_time": self.model_service_time})

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        for running in [*self.extra, self.composer, *self.edges.values(), self.origin]:
            if running is not None:
                running.server.stop(0)

    # -- callers ------------------------------------------------------------------------------
    def channel(self, address: str, cn: str = "controller") -> grpc.Channel:
        """An mTLS channel to `address` presenting a lab certificate of CN `cn`."""
        issued = self.pki.client if cn == "controller" else self.pki.issue(cn)
        channel = secure_channel(address, self.pki.ca.cert_path, issued.cert_path,
                                 issued.key_path)
        self.channels.append(channel)
        return channel

    def edge_client(self, name: str, cn: str = "controller") -> BlockCacheClient:
        return BlockCacheClient(self.channel(self.edges[name].address, cn))

    def origin_client(self, cn: str = "controller") -> BlockCacheClient:
        assert self.origin is not None
        return BlockCacheClient(self.channel(self.origin.address, cn))

    def composer_client(self, cn: str = "controller") -> ComposerClient:
        assert self.composer is not None
        return ComposerClient(self.channel(self.composer.address, cn))

    def edge_core(self, name: str) -> EdgeCore:
        core: EdgeCore = self.edges[name].core
        return core

    def origin_core(self) -> OriginCore:
        assert self.origin is not None
        core: OriginCore = self.origin.core
        return core

    def composer_core(self) -> ComposerCore:
        assert self.composer is not None
        core: ComposerCore = self.composer.core
        return core
