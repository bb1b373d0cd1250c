"""A small lab of real agents in this process, over mTLS on 127.0.0.1 (tests and benchmarks).

RAS agent ("ras"), SMF agent ("smf") and edge hosts ("edge1", ...) each hosting a RASP endpoint
and an SSP chosen server with one identity, all built with the agents' own setup functions.
Clients connect as "controller" (admin, CMS), "smf" (the relay path of RASP) or "app" (the
applications' front end, which the controller runs). Certificates carry role-shaped names as
deployed (agents.common.authz): `cert_name` maps a lab name to its CN.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from agents.common.client import secure_channel
from agents.common.config import AgentConfig, load_config
from agents.common.server import AgentServer
from agents.node.client import EndpointClient, SspServerClient
from agents.node.rasp_core import EndpointCore
from agents.node.rasp_endpoint import EndpointSettings, ResourcesSetting, setup_rasp_endpoint
from agents.node.ssp_server import SspServerCore, SspServerSettings, setup_ssp_server
from agents.ras.agent import setup_ras
from agents.ras.client import RasClient
from agents.ras.domain import RegistryCore
from agents.security.capability import SealedCapability
from agents.security.crypto import Identity
from agents.security.rasp import Resources, TransferDescriptor
from agents.smf.agent import setup_smf
from agents.smf.client import ApplicationSession, ServerSpec, SmfClient, register_service_as_cms
from agents.smf.core import SmfCore
from agents.smf.relay import RaspRelay, Tap
from agents.smf.servicer import SmfServicer

EDGE_MAX = Resources(cpu=64_000, memory=65_536, storage=1_000_000, network=10_000)
SERVICE_NEEDS = Resources(cpu=500, memory=256, storage=1000, network=10)
#: The host the control agents (RAS, SMF, audit, ledger validator) run on in this lab.
CONTROL_HOST = "control"


def cert_name(name: str) -> str:
    """The certificate CN of lab name `name`: ``ras``/``smf``/... -> ``<role>.control``,
    ``edgeN`` -> ``node.edgeN``, ``app``/``controller`` -> ``controller``; any other name
    (an attacker's) as it is."""
    if name in ("controller", "app"):
        return "controller"
    if name in ("ras", "smf", "audit", "ledger-validator"):
        return f"{name}.{CONTROL_HOST}"
    if name.startswith("edge"):
        return f"node.{name}"
    return name


@dataclass
class Edge:
    name: str
    config: AgentConfig
    server: AgentServer
    rasp: EndpointCore
    ssp: SspServerCore

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@dataclass
class Principal:
    user_id: str
    user_cap: SealedCapability
    device_id: str
    device_cap: SealedCapability
    app: Identity  # the application key both capabilities are bound to


@dataclass
class Lab:
    pki: Any  # tests.conftest.LabPKI
    root: Path
    clock: Callable[[], float] | None = None
    ras: AgentServer | None = None
    ras_core: RegistryCore | None = None
    smf: AgentServer | None = None
    smf_core: SmfCore | None = None
    smf_servicer: SmfServicer | None = None
    edges: dict[str, Edge] = field(default_factory=dict)
    _channels: dict[tuple[int, str], grpc.Channel] = field(default_factory=dict)
    service_id: str = ""
    serv_cap: SealedCapability | None = None
    cms: Identity = field(default_factory=lambda: Identity.generate("cms"))
    smf_settings: dict[str, Any] = field(default_factory=dict)  # extra SMF settings

    # -- configs and channels ------------------------------------------------------------------
    def config(self, name: str, port: int = 0, settings: dict[str, Any] | None = None
               ) -> AgentConfig:
        cert = self.pki.issue(cert_name(name))
        overrides: dict[str, Any] = {f"settings.{k}": v for k, v in (settings or {}).items()}
        return load_config(None, overrides, defaults={
            "name": name, "listen_host": "127.0.0.1", "listen_port": port,
            "data_dir": str(self.root / name), "grace_seconds": 0.2,
            "tls.ca_cert": str(self.pki.ca.cert_path), "tls.cert": str(cert.cert_path),
            "tls.key": str(cert.key_path),
        })

    def channel(self, port: int, as_name: str = "controller") -> grpc.Channel:
        key = (port, as_name)
        if key not in self._channels:
            cn = cert_name(as_name)
            cert = self.pki.client if cn == "controller" else self.pki.issue(cn)
            self._channels[key] = secure_channel(f"127.0.0.1:{port}", self.pki.ca.cert_path,
                                                 cert.cert_path, cert.key_path)
        return self._channels[key]

    def channel_to(self, address: str, as_name: str = "app") -> grpc.Channel:
        return self.channel(int(address.rsplit(":", 1)[1]), as_name)

    # -- agents ----------------------------------------------------------------------------------
    def start_ras(self, port: int = 0) -> None:
        cfg = self.config("ras", port)
        self.ras = AgentServer(cfg)
        self.ras_core = setup_ras(self.ras, cfg)
        self.ras.start()

    def start_smf(self, port: int = 0) -> None:
        assert self.ras is not None
        cfg = self.config("smf", port, {
            "registry": f"127.0.0.1:{self.ras.port}", "rpc_timeout_s": 5.0,
            **self.smf_settings,
        })
        self.smf = AgentServer(cfg)
        self.smf_core, self.smf_servicer = setup_smf(self.smf, cfg)
        self.smf.start()

    def start_edge(self, name: str, port: int = 0) -> Edge:
        cfg = self.config(name, port)
        server = AgentServer(cfg)
        rasp = setup_rasp_endpoint(server, cfg, EndpointSettings(
            registry_identity=self.root / "ras" / "keys" / "registry.pub",
            maximum=ResourcesSetting(**EDGE_MAX.__dict__)))
        ssp = setup_ssp_server(server, cfg, SspServerSettings(
            smf_identity=self.root / "smf" / "keys" / "smf.pub"))
        if self.clock is not None:  # a controllable clock for the timed capabilities
            ssp.authority._clock = self.clock
            ssp.server._clock = self.clock
        server.start()
        ssp.set_address("127.0.0.1", server.port)
        edge = Edge(name, cfg, server, rasp, ssp)
        self.edges[name] = edge
        return edge

    def restart_edge(self, name: str) -> Edge:
        old = self.edges[name]
        old.server.stop(0)
        return self.start_edge(name, old.server.port)

    def restart_ras(self) -> None:
        assert self.ras is not None
        port = self.ras.port
        self.ras.stop(0)
        self.start_ras(port)

    def restart_smf(self) -> None:
        assert self.smf is not None
        port = self.smf.port
        self.smf.stop(0)
        self.start_smf(port)

    def start(self, edges: tuple[str, ...] = ("edge1", "edge2")) -> Lab:
        self.start_ras()
        self.start_smf()
        for name in edges:
            self.start_edge(name)
        return self

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        for server in [*(e.server for e in self.edges.values()), self.smf, self.ras]:
            if server is not None:
                server.stop(0)

    # -- clients -----------------------------------------------------------------------------------
    def ras_client(self, as_name: str = "controller") -> RasClient:
        assert self.ras is not None
        return RasClient(self.channel(self.ras.port, as_name), timeout=5.0)

    def smf_client(self, as_name: str = "controller") -> SmfClient:
        assert self.smf is not None
        return SmfClient(self.channel(self.smf.port, as_name), timeout=10.0)

    def endpoint(self, name: str, as_name: str = "smf") -> EndpointClient:
        return EndpointClient(self.channel(self.edges[name].server.port, as_name), timeout=5.0)

    def ssp_server(self, name: str, as_name: str = "controller") -> SspServerClient:
        return SspServerClient(self.channel(self.edges[name].server.port, as_name), timeout=5.0)

    def relay(self, source: str, destination: str, tap: Tap | None = None) -> RaspRelay:
        return RaspRelay(self.ras_client("smf"), self.endpoint(source),
                         self.endpoint(destination), tap=tap)

    # -- scenario ----------------------------------------------------------------------------------
    def register_hosts(self) -> None:
        """Every edge host as a cloud (MAX) and as a server at the RAS."""
        ras = self.ras_client()
        for edge in self.edges.values():
            ras.register_cloud(edge.rasp.public, EDGE_MAX)
            ras.register_server(edge.rasp.public)

    def register_service(self, name: str = "nms", version: str = "1",
                         servers: tuple[str, ...] = ("edge1",)) -> str:
        smf = self.smf_client()
        smf.register_cms(self.cms.public)
        specs = [ServerSpec(self.edges[s].rasp.public, "127.0.0.1", self.edges[s].server.port)
                 for s in servers]
        by_key = {spec.public.name: spec for spec in specs}
        self.service_id, self.serv_cap = register_service_as_cms(
            smf, self.cms, smf.identity(), name, version, specs,
            provision=lambda spec: self.ssp_server(by_key[spec.public.name].public.name),
            description="network memory server", port=9000, requirement=SERVICE_NEEDS,
            image_ref="registry.lab:5000/nms:1")
        return self.service_id

    def add_server(self, name: str) -> None:
        smf = self.smf_client()
        edge = self.edges[name]
        service_id, cap = smf.add_server(self.service_id, edge.rasp.public, "127.0.0.1",
                                         edge.server.port, server_global_id=f"srv-{name}",
                                         max_load=10)
        self.ssp_server(name).provision(service_id, cap)

    def principal(self, first: str = "Ada", surname: str = "Lovelace",
                  app: Identity | None = None) -> Principal:
        """A new user and device, both bound to the application key `app` (new if None)."""
        smf = self.smf_client()
        app = app or Identity.generate(f"app-{secrets.token_hex(3)}")
        uid, ucap = smf.register_user(first, surname, holder=app.public, role="driver", rank=3,
                                      specialisation="storage")
        did, _, dcap = smf.register_device(f"phone-{secrets.token_hex(2)}", first, surname,
                                           holder=app.public, owner_user_id=uid)
        return Principal(uid, ucap, did, dcap, app)

    def scenario(self) -> Principal:
        """Hosts registered, service 'nms' 1 on edge1 with edge2 added, one user + device."""
        self.register_hosts()
        self.register_service()
        for name in list(self.edges)[1:]:
            self.add_server(name)
        return self.principal()

    def app_session(self, who: Principal) -> ApplicationSession:
        smf = self.smf_client("app")
        return ApplicationSession(who.app, smf, smf.identity(),
                                  who.user_cap, who.device_cap,
                                  lambda address: self.channel_to(address, "app"))

    def transfer(self) -> TransferDescriptor:
        return TransferDescriptor("nms", "registry.lab:5000/nms:1", "", 0)
