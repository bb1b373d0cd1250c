"""Every agent of the testbed on loopback over mTLS, and a certificate of every role, for the
authorization matrix (test_authz_matrix.py).

The agents are built with their own setup functions (RAS, SMF, audit, ledger validator, a
ledger peer host, a central metadata service, and one edge host ``edge1`` serving NodeService,
RaspEndpointService and SspServerService). The node agent's container engine is a recording
fake: what the agent asked the engine to do is part of the state compared around a denial.

`state()` reads every agent's SQLite stores straight from disk (a separate read-only
connection), plus the fake engine's calls: two equal reads mean nothing changed.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as lpb
from agents.audit.agent import setup_audit
from agents.blockcache.agent import setup_blockcache
from agents.common.client import secure_channel
from agents.common.config import AgentConfig, load_config
from agents.common.server import AgentServer
from agents.composer.agent import setup_composer
from agents.ledger.agent import bootstrap, setup_central, setup_peers, setup_validator
from agents.ledger.consensus import NodeRole, sign_registration
from agents.ledger.convert import registration_to_pb
from agents.ledger.peer import PeerHost
from agents.ledger.signing import public_key_bytes
from agents.ledger.validator import ValidatorCore
from agents.node.agent import add_node_service
from agents.node.core import NodeCore, NodeOptions
from agents.node.domain import PhaseFailed
from agents.node.engine import RegistryAccess
from agents.node.gpu import NO_GPU
from agents.node.rasp_endpoint import EndpointSettings, ResourcesSetting, setup_rasp_endpoint
from agents.node.ssp_server import SspServerSettings, setup_ssp_server
from agents.node.store import NodeStore
from agents.ras.agent import setup_ras
from agents.smf.agent import setup_smf
from agents.tcfdl_manager.agent import setup_manager
from agents.tcfdl_master.policy import MASTER_POLICY, MASTER_SERVICE
from agents.tcfdl_master.routing import FunctionTable
from agents.tcfdl_master.servicer import MasterServicer
from agents.tcfdl_master.servicer import add_to_server as add_master
from agents.tcfdl_proxy.core import ProxyCore
from agents.tcfdl_proxy.policy import PROXY_POLICY, PROXY_SERVICE
from agents.tcfdl_proxy.servicer import ProxyServicer
from agents.tcfdl_proxy.servicer import add_to_server as add_proxy

CONTROL = "control"
#: The callers of the matrix: a label -> the certificate CN it presents (None: see FOREIGN/NONE).
CALLERS: dict[str, str | None] = {
    "controller": "controller",
    "smf": "smf.control",
    "ras": "ras.control",
    "audit": "audit.control",
    "ledger-validator": "ledger-validator.control",
    "ledger-peer": "ledger-peer.edge1",
    "node(edge2)": "node.edge2",
    "host.x": "host.x",
    "host.controller": "host.controller",
    "blockcache": "blockcache.edge2",
    "blockcache-origin": "blockcache-origin.control",
    "composer": "composer.control",
    "ui": "ui.control",
    "tcfdl-manager": "tcfdl-manager.control",
    "tcfdl-master": "tcfdl-master.control",
    "tcfdl-proxy": "tcfdl-proxy.control",
    "tcfdl-worker": "tcfdl-worker.edge1",
    "tcfdl-client": "tcfdl-client.edge1",
    "foreign-ca": None,
    "no-cert": None,
}


class RecordingEngine:
    """A container engine that records every operation asked of it and performs none (each
    fails as a phase failure); `containers` are what `find` sees."""

    registry = RegistryAccess("127.0.0.1:5000", "u", "p", Path("/nonexistent/ca.crt"))
    interface = "lo"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.containers: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        return {"DockerRootDir": "/nonexistent"}

    def version(self) -> str:
        return "20.10"

    def find(self, name: str) -> Any:
        return self.containers.get(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def operation(*_args: Any, **_kwargs: Any) -> Any:
            self.calls.append(name)
            raise PhaseFailed(f"recording engine: {name} not performed")

        return operation

    def publish(self, name: str, host_port: int, host_ip: str = "127.0.0.1") -> None:
        """Pretend workload container `name` runs and publishes `host_ip:host_port`."""
        self.containers[name] = SimpleNamespace(labels={}, attrs={
            "State": {"Status": "running"},
            "NetworkSettings": {"Ports": {"8080/tcp": [
                {"HostIp": host_ip, "HostPort": str(host_port)}]}}})


@dataclass
class AuthzLab:
    pki: Any  # tests.conftest.LabPKI
    root: Path
    servers: dict[str, AgentServer] = field(default_factory=dict)
    channels: dict[tuple[int, str], grpc.Channel] = field(default_factory=dict)
    engine: RecordingEngine = field(default_factory=RecordingEngine)
    node_core: NodeCore | None = None
    validator: ValidatorCore | None = None
    peer_host: PeerHost | None = None
    smf_ledger_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    sso: dict[str, Any] = field(default_factory=dict)  # the SSO agents' cores
    tcfdl: dict[str, Any] = field(default_factory=dict)  # the TCFDL manager core, master table

    # -- agents -------------------------------------------------------------------------------
    def config(self, name: str, cn: str, settings: dict[str, Any] | None = None) -> AgentConfig:
        cert = self.pki.issue(cn)
        return load_config(None, {f"settings.{k}": v for k, v in (settings or {}).items()},
                           defaults={
            "name": name, "listen_host": "127.0.0.1", "listen_port": 0,
            "data_dir": str(self.root / name), "grace_seconds": 0.2, "max_workers": 16,
            "log_level": "ERROR", "tls.ca_cert": str(self.pki.ca.cert_path),
            "tls.cert": str(cert.cert_path), "tls.key": str(cert.key_path)})

    def _serve(self, name: str, cfg: AgentConfig, setup: Any) -> AgentServer:
        server = AgentServer(cfg)
        setup(server)
        server.start()
        self.servers[name] = server
        return server

    def start(self) -> AuthzLab:
        ras = self.config("ras", f"ras.{CONTROL}")
        self._serve("ras", ras, lambda s: setup_ras(s, ras))
        smf = self.config("smf", f"smf.{CONTROL}",
                          {"registry": f"127.0.0.1:{self.servers['ras'].port}",
                           "rpc_timeout_s": 2.0})
        self._serve("smf", smf, lambda s: setup_smf(s, smf))
        key = self.root / "audit-owner.key"
        key.write_bytes(secrets.token_bytes(32))
        key.chmod(0o600)
        audit = self.config("audit", f"audit.{CONTROL}", {"owner_token_key": str(key)})
        self._serve("audit", audit, lambda s: setup_audit(s, audit))
        vcfg = self.config("validator", f"ledger-validator.{CONTROL}",
                           {"role": "validator", "node_id": "validator"})
        holder: dict[str, Any] = {}
        self._serve("validator", vcfg, lambda s: holder.update(core=setup_validator(s, vcfg)[0]))
        self.validator = holder["core"]
        pcfg = self.config("peers", "ledger-peer.edge1", {
            "role": "peers", "node_id": "edge1", "peers": 1,
            "validator": f"127.0.0.1:{self.servers['validator'].port}",
            "authority_key": public_key_bytes(self.validator._key).hex()})
        peers = self._serve("peers", pcfg, lambda s: holder.update(host=setup_peers(s, pcfg)))
        self.peer_host = holder["host"]
        bootstrap(self.peer_host, peers, pcfg)
        ccfg = self.config("central", f"ledger-validator.{CONTROL}", {"role": "central"})
        self._serve("central", ccfg, lambda s: setup_central(s, ccfg))
        ncfg = self.config("edge1", "node.edge1")
        (self.root / "edge1").mkdir(parents=True, exist_ok=True)
        self.node_core = NodeCore(self.engine,  # type: ignore[arg-type]
                                  NodeStore.open(self.root / "edge1" / "node.sqlite3"),
                                  NodeOptions(self.root / "edge1"), gpu=NO_GPU)

        def node(server: AgentServer) -> None:
            assert self.node_core is not None
            server.on_stop(self.node_core.store.close)
            setup_rasp_endpoint(server, ncfg, EndpointSettings(
                registry_identity=self.root / "ras" / "keys" / "registry.pub",
                maximum=ResourcesSetting(cpu=4000, memory=4096, storage=100000, network=40)))
            setup_ssp_server(server, ncfg, SspServerSettings(
                smf_identity=self.root / "smf" / "keys" / "smf.pub"))
            add_node_service(server, self.node_core)

        self._serve("edge1", ncfg, node)
        self._start_sso()
        self._start_tcfdl()
        return self

    def _start_tcfdl(self) -> None:
        """The TCFDL manager (real setup), a proxy and a master (their servicers and policies
        over in-memory cores: the master's NATS side is not needed for authorization)."""
        nodes = [{"cn": CALLERS[r], "cluster": "a"} for r in
                 ("tcfdl-master", "tcfdl-proxy", "tcfdl-worker", "tcfdl-client")]
        mcfg = self.config("tcfdl-manager", f"tcfdl-manager.{CONTROL}", {"nodes": nodes})
        self._serve("tcfdl-manager", mcfg,
                    lambda s: self.tcfdl.update(manager=setup_manager(s, mcfg)))

        class NoKeys:
            def hop_key(self, peer: str) -> bytes:
                raise LookupError(f"no hop key for {peer}")

            def rekey(self, scheme: str, function: str, instance: str, stage: str) -> bytes:
                raise LookupError("no re-encryption key")

        pcfg = self.config("tcfdl-proxy", f"tcfdl-proxy.{CONTROL}")
        self._serve("tcfdl-proxy", pcfg, lambda s: s.add(
            add_proxy, ProxyServicer(ProxyCore(f"tcfdl-proxy.{CONTROL}", NoKeys())),
            PROXY_SERVICE, policy=PROXY_POLICY))
        self.tcfdl["table"] = FunctionTable()
        xcfg = self.config("tcfdl-master", f"tcfdl-master.{CONTROL}")
        self._serve("tcfdl-master", xcfg, lambda s: s.add(
            add_master, MasterServicer(self.tcfdl["table"], lambda _f: None), MASTER_SERVICE,
            policy=MASTER_POLICY))

    def _start_sso(self) -> None:
        """The SSO agents: an origin (empty catalog), an edge blockcache and the composer."""
        ocfg = self.config("sso-origin", f"blockcache-origin.{CONTROL}",
                           {"mode": "origin", "node": "cloud"})
        self._serve("sso-origin", ocfg,
                    lambda s: self.sso.update(origin=setup_blockcache(s, ocfg)))
        origin = f"127.0.0.1:{self.servers['sso-origin'].port}"
        ecfg = self.config("sso-edge1", "blockcache.edge1", {
            "mode": "edge", "node": "edge1", "origin": origin,
            "services": [{"service": "filter"}]})
        self._serve("sso-edge1", ecfg, lambda s: self.sso.update(edge=setup_blockcache(s, ecfg)))
        ccfg = self.config("composer", f"composer.{CONTROL}", {
            "origin": origin, "edges": [{"name": "edge1", "address":
                                         f"127.0.0.1:{self.servers['sso-edge1'].port}"}],
            "offers": [{"node": "edge1", "service": "filter"}]})
        self._serve("composer", ccfg, lambda s: setup_composer(s, ccfg))

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        for server in reversed(list(self.servers.values())):
            server.stop(0)

    # -- callers ------------------------------------------------------------------------------
    def channel(self, server: str, caller: str) -> grpc.Channel:
        """A channel to agent `server` presenting the certificate of `caller` (a CALLERS key)."""
        port = self.servers[server].port
        key = (port, caller)
        if key not in self.channels:
            self.channels[key] = self._open(port, caller)
        return self.channels[key]

    def _open(self, port: int, caller: str) -> grpc.Channel:
        target = f"127.0.0.1:{port}"
        ca = self.pki.ca.cert_path
        if caller == "foreign-ca":
            issued = self.pki.foreign_client
            return secure_channel(target, ca, issued.cert_path, issued.key_path)
        if caller == "no-cert":
            return grpc.secure_channel(target, grpc.ssl_channel_credentials(ca.read_bytes()))
        cn = CALLERS.get(caller, caller)
        assert cn is not None
        issued = self.pki.client if cn == "controller" else self.pki.issue(cn)
        return secure_channel(target, ca, issued.cert_path, issued.key_path)

    # -- state --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Every agent's stored rows (read from disk) and the engine's recorded operations."""
        out: dict[str, Any] = {"engine": list(self.engine.calls)}
        if "edge" in self.sso:  # in-memory state of the SSO agents: cache config + counters
            edge = self.sso["edge"]
            out["sso-edge1"] = (repr(edge.stats()), edge.cache.policy, edge.cache.granularity,
                                edge.cache.capacity_bytes, len(edge.verifier.replay))
            out["sso-origin"] = (self.sso["origin"].store.files(),
                                 repr(self.sso["origin"].stats()))
        if "manager" in self.tcfdl:  # the TCFDL agents' in-memory tables
            m = self.tcfdl["manager"]
            out["tcfdl-manager"] = (sorted(m.nodes.items()), sorted(m.functions.items()),
                                    sorted(m.attested), len(m._enrolled))
            out["tcfdl-master"] = self.tcfdl["table"].snapshot()
        for db in sorted(self.root.rglob("*.sqlite3")):
            uri = f"file:{db}?mode=ro"
            with sqlite3.connect(uri, uri=True) as conn:
                tables = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
                out[str(db.relative_to(self.root))] = {
                    t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}
            conn.close()
        return out

    # -- requests the matrix sends ------------------------------------------------------------
    def registration_for(self, caller: str) -> lpb.RegisterNodeRequest:
        """A valid RegisterNode request for an id the caller's certificate would own: ``smf``
        for the SMF, a fresh ``edge1-9xx`` for the edge1 peers host, else ``smf``."""
        seq = time.time_ns()
        if caller == "ledger-peer":
            reg = sign_registration(f"edge1-9{seq % 100:02d}", Ed25519PrivateKey.generate(),
                                    NodeRole.PEER, "127.0.0.1:1", seq)
        else:
            reg = sign_registration("smf", self.smf_ledger_key, NodeRole.SUBMITTER, "", seq)
        return lpb.RegisterNodeRequest(registrations=[registration_to_pb(reg)])
