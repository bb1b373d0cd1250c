"""A migration lab on one machine for the end-to-end and fault tests of Migrate Service.

Real pieces, all over mTLS on 127.0.0.1 with certificates from the test lab CA:

* RAS, audit agent, ledger validator + a peer host (9 identities), SMF: in-process AgentServers
  built with the agents' own setup functions (the SMF with ``settings.audit``,
  ``settings.ledger`` and ``settings.container`` exactly as on a lab host); with
  ``smf_process=True`` the SMF is a process (``python -m agents.smf``) on a fixed port with its
  SQLite state in its data directory, so a fault test can SIGKILL and restart it;
* two edge hosts "edge-a" and "edge-b": node agents as separate processes
  (``python -m agents.node --config ...``) so they can be SIGKILLed and restarted on the same
  port; each hosts NodeService + RASP endpoint + SSP chosen server (one identity) and manages
  only containers named ``<its prefix><workload>`` on the one local Docker engine;
* a `LocalRegistry` (Debian docker-registry, TLS + htpasswd) both node agents push to / pull from;
* the NMS workload (edgeferry/images/nms.py), its key re-sent as a SecretFile at every run.

What one engine cannot show: layers really crossing a link. The source drops its committed image
after the push (``drop_pushed_images``), so the destination's pull does download the migrated
top layer from the registry, but the base layers are already in the shared engine. Cross-host
transfer and shaping are the lab's job (docs in the report).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import grpc
import yaml

from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as npb_grpc
from agents.audit.agent import setup_audit
from agents.audit.client import AuditClient
from agents.audit.owners import seal_owner_token
from agents.common.client import secure_channel
from agents.common.config import AgentConfig, load_config
from agents.common.server import AgentServer
from agents.ledger.agent import bootstrap, setup_peers, setup_validator
from agents.ledger.signing import public_key_bytes
from agents.node.client import EndpointClient, SspServerClient, node_stub
from agents.node.locate import ssp_resolver
from agents.ras.agent import setup_ras
from agents.ras.client import RasClient
from agents.security.crypto import Identity
from agents.security.rasp import Resources
from agents.smf.agent import setup_smf
from agents.smf.client import (
    ApplicationSession,
    MigrationReport,
    ServerSpec,
    SmfClient,
    register_service_as_cms,
)
from agents.smf.core import SmfCore
from agents.smf.migration import MigrationPorts
from agents.smf.servicer import SmfServicer
from agents.workloads.nms.auth import SharedKeyAuth
from agents.workloads.nms.client import NmsClient
from edgeferry.images.nms import (
    CERT_PATH_IN_CONTAINER,
    KEY_PATH_IN_CONTAINER,
    NMS_PORT,
    NMS_UID,
    TLS_KEY_PATH_IN_CONTAINER,
    nms_image,
)
from edgeferry.images.registry import REGISTRY_BINARY, LocalRegistry, free_port
from tests.nms_tls import NmsTls, issue_nms_cert

REPO = Path(__file__).resolve().parents[2]
# A host's MAX (cpu millicores, MiB, MiB, Mbit/s): room for four NMS at a time. Allocations are
# per service and released when the service leaves, so any number of migrations fits.
EDGE_MAX = {"cpu": 4000, "memory": 4096, "storage": 100_000, "network": 40}
SERVICE_NEEDS = Resources(cpu=500, memory=256, storage=1000, network=10)
# seed 002 attributes: edge-a/edge-b satisfy App1-like requirements, edge-c is in a country the
# container owner excludes (Table 5's Edge2).
EDGE_ATTRS = {
    "edge-a": {"eDAl": "jp", "eDAo": "caA", "eHRh": "deA", "eHRt": "lxc", "eHRac": "-",
               "eHRaf": "-", "eHRc": "2.6", "eHRm": "8", "eHRgpu": "no"},
    "edge-b": {"eDAl": "fr", "eDAo": "caA", "eHRh": "deC", "eHRt": "lxc", "eHRac": "-",
               "eHRaf": "-", "eHRc": "2.6", "eHRm": "8", "eHRgpu": "no"},
    "edge-c": {"eDAl": "kr", "eDAo": "caA", "eHRh": "deC", "eHRt": "lxc", "eHRac": "-",
               "eHRaf": "-", "eHRc": "2.6", "eHRm": "8", "eHRgpu": "no"},
}
NMS_REQUIREMENTS = {"cDAl": "jp,us,fr", "cDAo": "-caB", "cHRh": "*", "cHRt": "lxc",
                    "cHRcu": "60", "cHRmu": "50", "cHRc": "1.6", "cHRm": "4", "cHRgpu": "*",
                    "cHRac": "*", "cHRaf": "*"}
WORKLOAD = "nms"


@dataclass
class NodeProcess:
    """One node agent process (an edge host) with its fixed port and container prefix."""

    name: str
    port: int
    prefix: str
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    module: str = "agents.node"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def container(self) -> str:
        return self.prefix + WORKLOAD

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL, stderr=log, cwd=REPO)
        log.close()
        deadline = time.monotonic() + timeout
        pid = f'"pid": {self.proc.pid}'
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            if any('"serving"' in line and pid in line
                   for line in self.log_path.read_text(errors="replace").splitlines()):
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no graceful stop, in-flight RPCs are cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def cert_name(name: str) -> str:
    """The role-shaped certificate CN (agents.common.authz) of a lab process or client."""
    fixed = {"controller": "controller", "app": "controller",
             "validator": "ledger-validator.control", "ledger-peers": "ledger-peer.peers"}
    if name in fixed:
        return fixed[name]
    if name in ("ras", "smf", "audit"):
        return f"{name}.control"
    return f"node.{name}"


@dataclass
class MigrationLab:
    pki: Any  # tests.conftest.LabPKI
    root: Path
    registry: LocalRegistry
    tag: str = field(default_factory=lambda: f"efmig-{os.getpid()}-{secrets.token_hex(2)}")
    servers: list[AgentServer] = field(default_factory=list)
    channels: dict[tuple[str, str], grpc.Channel] = field(default_factory=dict)
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    smf_core: SmfCore | None = None
    smf_servicer: SmfServicer | None = None
    smf_port: int = 0
    ras_port: int = 0
    audit_port: int = 0
    service_id: str = ""
    owner_key: bytes = b""
    nms_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    who: Any = None
    cms: Identity = field(default_factory=lambda: Identity.generate("cms"))
    smf_process: bool = False
    smf_proc: NodeProcess | None = None  # the SMF when it runs as a process
    #: the audit agent's owner of the container "nms" (the SMF's owner token is sealed for it;
    #: the UI test makes it the UI account's owner id, ``ui:<account>``)
    app_owner: str = "nms-owner"
    #: False: `register` leaves the container policy to the test (the UI's owner registers it)
    register_container: bool = True

    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def nms_tls(self) -> NmsTls:
        """The NMS server certificate (the lab CA, the NMS name), as the pki role issues it."""
        return issue_nms_cert(self.pki.ca, self.root / "nms-tls")  # cached on disk after once

    def nms_secret_files(self) -> list[tuple[str, Path]]:
        """(path in the container, file here) of every NMS secret: session key, TLS cert/key."""
        tls = self.nms_tls
        return [(KEY_PATH_IN_CONTAINER, self.root / "nms.key"),
                (CERT_PATH_IN_CONTAINER, tls.issued.cert_path),
                (TLS_KEY_PATH_IN_CONTAINER, tls.issued.key_path)]

    def config(self, name: str, settings: dict[str, Any]) -> AgentConfig:
        cert = self.pki.issue(cert_name(name))
        return load_config(None, {f"settings.{k}": v for k, v in settings.items()}, defaults={
            "name": name, "listen_host": "127.0.0.1", "listen_port": 0,
            "data_dir": str(self.root / name), "grace_seconds": 0.2, "max_workers": 16,
            "tls.ca_cert": str(self.pki.ca.cert_path), "tls.cert": str(cert.cert_path),
            "tls.key": str(cert.key_path)})

    def channel(self, address: str, as_name: str = "controller") -> grpc.Channel:
        key = (address, as_name)
        if key not in self.channels:
            cn = cert_name(as_name)
            cert = self.pki.client if cn == "controller" else self.pki.issue(cn)
            self.channels[key] = secure_channel(address, self.pki.ca.cert_path, cert.cert_path,
                                                cert.key_path)
        return self.channels[key]

    def _serve(self, cfg: AgentConfig, setup: Any) -> AgentServer:
        server = AgentServer(cfg)
        setup(server)
        server.start()
        self.servers.append(server)
        return server

    # -- agents -----------------------------------------------------------------------------------
    def start_control_plane(self) -> None:
        ras = self._serve(self.config("ras", {}),
                          lambda s: setup_ras(s, self.config("ras", {})))
        self.ras_port = ras.port
        # audit agent: owner tokens sealed with a key file only the audit agent reads
        key_file = self.root / "audit-owner.key"
        self.owner_key = secrets.token_bytes(32)
        key_file.write_bytes(self.owner_key)
        key_file.chmod(0o600)
        acfg = self.config("audit", {"owner_token_key": str(key_file),
                                     "seed": 7})
        audit = self._serve(acfg, lambda s: setup_audit(s, acfg))
        self.audit_port = audit.port
        # ledger: validator + one host with 9 identities -> 10 nodes, 90 % = 9 confirmations
        vcfg = self.config("validator", {"role": "validator", "node_id": "validator"})
        holder: dict[str, Any] = {}
        validator = self._serve(vcfg, lambda s: holder.update(
            core=setup_validator(s, vcfg)[0]))
        pcfg = self.config("ledger-peers", {
            "role": "peers", "node_id": "peers", "peers": 9,
            "validator": f"127.0.0.1:{validator.port}",
            "authority_key": public_key_bytes(holder["core"]._key).hex()})
        peers = self._serve(pcfg, lambda s: holder.update(host=setup_peers(s, pcfg)))
        bootstrap(holder["host"], peers, pcfg)
        token = self.root / "smf-owner.token"
        token.write_bytes(seal_owner_token(self.owner_key, self.app_owner, 24 * 3600))
        token.chmod(0o600)
        nms_key = self.root / "nms.key"
        nms_key.write_bytes(self.nms_key)
        nms_key.chmod(0o600)
        scfg = self.config("smf", {
            "registry": f"127.0.0.1:{self.ras_port}", "rpc_timeout_s": 10.0,
            "audit": {"address": f"127.0.0.1:{self.audit_port}",
                      "owner_token_file": str(token)},
            "ledger": {"address": f"127.0.0.1:{validator.port}", "node_id": "smf",
                       "quorum": 0.9, "timeout_s": 10.0, "application_types": ["nms"]},
            "container": {
                "rpc_timeout_s": 20.0, "transfer_timeout_s": 120.0,
                "workloads": {"nms": {
                    "workload": WORKLOAD, "repository": f"efmig/{self.tag}/nms",
                    "container_port": NMS_PORT, "host_ip": "127.0.0.1", "probe": "tcp",
                    "probe_timeout_s": 20.0, "stop_timeout_s": 10,
                    "secrets": [{"container_path": inside, "path": str(path), "uid": NMS_UID}
                                for inside, path in self.nms_secret_files()]}}},
        })
        if self.smf_process:
            self._start_smf_process(scfg)
            return
        smf_holder: dict[str, Any] = {}
        smf = self._serve(scfg, lambda s: smf_holder.update(zip(("core", "servicer"),
                                                                  setup_smf(s, scfg),
                                                                  strict=True)))
        self.smf_core = smf_holder["core"]
        self.smf_servicer = smf_holder["servicer"]
        self.smf_port = smf.port

    def _start_smf_process(self, cfg: AgentConfig) -> None:
        assert cfg.tls is not None
        port = free_port()
        proc = NodeProcess("smf", port, "", self.root / "smf.yaml", self.root / "smf.log",
                           module="agents.smf")
        proc.config_path.write_text(yaml.safe_dump({
            "name": "smf", "listen_host": "127.0.0.1", "listen_port": port,
            "data_dir": str(cfg.data_dir), "grace_seconds": 0.2, "max_workers": 16,
            "tls": {"ca_cert": str(cfg.tls.ca_cert), "cert": str(cfg.tls.cert),
                    "key": str(cfg.tls.key)},
            "settings": json.loads(json.dumps(cfg.settings, default=str))}))
        proc.start()
        self.smf_proc = proc
        self.smf_port = port

    # -- faults -----------------------------------------------------------------------------------
    def kill_registry(self) -> None:
        """SIGKILL the image registry."""
        self.registry.process.kill()
        self.registry.process.wait()

    def start_registry(self) -> None:
        """Restart the image registry on its port (no-op while it runs)."""
        reg = self.registry
        if reg.process.poll() is None:
            return
        log = (reg.workdir / "registry.log").open("ab")
        reg.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(reg.workdir / "config.yml")],
                                       stdout=log, stderr=subprocess.STDOUT)
        log.close()
        reg._wait_ready()

    def cut_port(self, port: int) -> list[str]:
        """Drop every TCP packet to 127.0.0.1:`port` (iptables, as root); returns the rule,
        which `restore_port` deletes. The rule carries this lab's tag as a comment."""
        rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(port), "-m", "comment",
                "--comment", f"efmig-{self.tag}", "-j", "DROP"]
        subprocess.run(["iptables", "-w", "-I", *rule], check=True, capture_output=True)
        return rule

    @staticmethod
    def restore_port(rule: list[str]) -> None:
        """Delete a rule `cut_port` inserted."""
        subprocess.run(["iptables", "-w", "-D", *rule], check=True, capture_output=True)

    def add_node(self, name: str) -> NodeProcess:
        cert = self.pki.issue(cert_name(name))
        pw = self.root / f"{name}-registry.password"
        pw.write_text(self.registry.password)
        pw.chmod(0o600)
        port = free_port()
        node = NodeProcess(name, port, f"{self.tag}-{name}-", self.root / f"{name}.yaml",
                           self.root / f"{name}.log")
        node.config_path.write_text(yaml.safe_dump({
            "name": name, "listen_host": "127.0.0.1", "listen_port": port,
            "data_dir": str(self.root / name), "grace_seconds": 0.5,
            "tls": {"ca_cert": str(self.pki.ca.cert_path), "cert": str(cert.cert_path),
                    "key": str(cert.key_path)},
            "settings": {
                "registry": {"address": self.registry.address,
                             "username": self.registry.username, "password_file": str(pw),
                             "ca_cert": str(self.registry.ca_cert)},
                "advertise_interval_s": 0,
                "container_prefix": node.prefix, "drop_pushed_images": True,
                "rasp_endpoint": {
                    "registry_identity": str(self.root / "ras" / "keys" / "registry.pub"),
                    "maximum": EDGE_MAX},
                "ssp_server": {"smf_identity": str(self.root / "smf" / "keys" / "smf.pub"),
                               "advertise_ip": "127.0.0.1"},
                "workload_host": "127.0.0.1",
            }}))
        node.start()
        self.nodes[name] = node
        return node

    # -- clients ----------------------------------------------------------------------------------
    def smf(self) -> SmfClient:
        return SmfClient(self.channel(f"127.0.0.1:{self.smf_port}"), timeout=300.0)

    def node_stub(self, name: str) -> npb_grpc.NodeServiceStub:
        return node_stub(self.channel(self.nodes[name].address))

    def endpoint(self, name: str) -> EndpointClient:
        return EndpointClient(self.channel(self.nodes[name].address, "smf"), timeout=10.0)

    def app_session(self) -> ApplicationSession:
        smf = SmfClient(self.channel(f"127.0.0.1:{self.smf_port}", "app"), timeout=10.0)
        session = ApplicationSession(self.app, smf, smf.identity(),
                                     self.who.user_cap, self.who.device_cap,
                                     lambda address: self.channel(address, "app"))
        session.open("nms", "1")
        return session

    def nms_client(self, retry_deadline: float = 120.0) -> NmsClient:
        """An NMS client that finds the NMS through the SMF (Request Service + SSP locate)."""
        return NmsClient(ssp_resolver(self.app_session, WORKLOAD),
                         SharedKeyAuth(self.nms_key, "alice"), self.nms_tls.client(),
                         retry_deadline=retry_deadline,
                         connect_timeout=1.0, io_timeout=5.0)

    # -- scenario ---------------------------------------------------------------------------------
    def register(self, servers: tuple[str, ...] = ("edge-a", "edge-b"),
                 extra_server: str | None = "edge-c") -> None:
        """RAS clouds/servers, audit edges + container policy, SMF service on edge-a with
        edge-b (and a node-less edge-c the audit denies) as further servers, one principal."""
        ras = RasClient(self.channel(f"127.0.0.1:{self.ras_port}"), timeout=10.0)
        publics = {n: self.endpoint(n).identity()[0] for n in servers}
        for public in publics.values():
            ras.register_cloud(public, Resources(**EDGE_MAX))
            ras.register_server(public)
        owner = seal_owner_token(self.owner_key, "edge-owner", 3600)
        app_owner = seal_owner_token(self.owner_key, self.app_owner, 3600)
        with AuditClient(self.channel(f"127.0.0.1:{self.audit_port}")) as audit:
            for name, attrs in EDGE_ATTRS.items():
                share = audit.register_edge(owner, name, attrs, region="r1")
                audit.redeem_share_key(app_owner, share)
                audit.report_edge_state(name, 20, 20)
            if self.register_container:
                audit.register_container(app_owner, "nms", NMS_REQUIREMENTS,
                                         location=servers[0])
        smf = self.smf()
        smf.register_cms(self.cms.public)
        first = self.nodes[servers[0]]
        spec = ServerSpec(publics[servers[0]], "127.0.0.1", first.port)
        self.service_id, _ = register_service_as_cms(
            smf, self.cms, smf.identity(), "nms", "1", [spec],
            provision=lambda s: SspServerClient(self.channel(first.address)),
            description="network memory server", port=NMS_PORT, requirement=SERVICE_NEEDS,
            image_ref=f"{self.registry.address}/efmig/{self.tag}/nms")
        for name in servers[1:]:
            node = self.nodes[name]
            sid, cap = smf.add_server(self.service_id, publics[name], "127.0.0.1", node.port,
                                      server_global_id=f"srv-{name}", max_load=10)
            SspServerClient(self.channel(node.address)).provision(sid, cap)
        if extra_server:
            smf.add_server(self.service_id, Identity.generate(extra_server).public,
                           "127.0.0.1", free_port(), server_global_id=f"srv-{extra_server}",
                           max_load=10)
        self.app = Identity.generate("app")  # the key USER CAP and DEV CAP are bound to
        uid, ucap = smf.register_user("Ada", "Lovelace", holder=self.app.public, role="driver",
                                      rank=3)
        did, _, dcap = smf.register_device("phone", "Ada", "Lovelace", holder=self.app.public,
                                           owner_user_id=uid)
        self.who = type("Who", (), {"user_id": uid, "user_cap": ucap, "device_id": did,
                                    "device_cap": dcap})()

    def refresh_edge_state(self) -> None:
        """Report every edge's state to the audit agent again (its measurements go stale after
        a while; a long run, e.g. the nightly fault test, would otherwise be denied)."""
        address = f"127.0.0.1:{self.audit_port}"
        self.channels.pop((address, "controller"), None)  # AuditClient closes its channel
        with AuditClient(self.channel(address)) as audit:
            for name in EDGE_ATTRS:
                audit.report_edge_state(name, 20, 20)
        self.channels.pop((address, "controller"), None)

    def deploy_nms(self, on: str) -> None:
        """The service's first start (not a migration): RunWorkload of the NMS image."""
        spec = npb.WorkloadSpec(
            name=WORKLOAD, image=nms_image(log=lambda *_: None).tag,
            ports=[npb.PortBinding(container_port=NMS_PORT, host_ip="127.0.0.1")],
            secrets=[npb.SecretFile(container_path=inside, content=path.read_bytes(), uid=NMS_UID)
                     for inside, path in self.nms_secret_files()])
        self.node_stub(on).RunWorkload(npb.RunWorkloadRequest(spec=spec), timeout=60)

    def ports(self) -> MigrationPorts:
        assert self.smf_servicer is not None
        return self.smf_servicer.ports

    def push_base_image(self) -> str:
        """Put the NMS image into the registry as the proactive mode's base image."""
        engine = docker.from_env()
        ref = f"{self.registry.address}/efmig/{self.tag}/nms-base"
        engine.images.get(nms_image(log=lambda *_: None).tag).tag(ref, "1")
        for event in engine.api.push(ref, "1", auth_config=self.registry.auth_config,
                                     stream=True, decode=True):
            assert "error" not in event, event
        engine.images.remove(f"{ref}:1")
        return f"{ref}:1"

    def migrate(self, destination: str, order: str = "") -> MigrationReport:
        w = self.who
        return self.smf().migrate(self.service_id, w.user_id, w.device_id, w.user_cap,
                                  w.device_cap, destination, order=order)

    def manifest(self, image_ref: str) -> dict[str, Any]:
        """The registry's manifest of ``<registry>/<repository>@<digest>`` (or ``:<tag>``),
        read with the registry's own API (not through an agent)."""
        rest = image_ref.removeprefix(f"{self.registry.address}/")
        repository, sep, reference = rest.partition("@")
        if not sep:
            repository, _, reference = rest.rpartition(":")
        token = base64.b64encode(
            f"{self.registry.username}:{self.registry.password}".encode()).decode()
        req = urllib.request.Request(
            f"https://{self.registry.address}/v2/{repository}/manifests/{reference}",
            headers={"Authorization": f"Basic {token}", "Accept": ", ".join((
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.manifest.v1+json"))})
        ctx = ssl.create_default_context(cafile=str(self.registry.ca_cert))
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            manifest: dict[str, Any] = json.loads(resp.read())
        return manifest

    def location(self) -> tuple[str, int]:
        info = self.smf().service(self.service_id)
        return info.location, info.epoch

    # -- observations on the one engine -------------------------------------------------------
    def running_copies(self) -> list[str]:
        """Names of running NMS containers of this lab (both prefixes)."""
        engine = docker.from_env()
        return sorted(c.name for c in engine.containers.list(filters={"name": self.tag})
                      if c.name.endswith(WORKLOAD))

    def running_on(self) -> str | None:
        names = self.running_copies()
        hosts = [n for n, node in self.nodes.items() if node.container in names]
        return hosts[0] if len(hosts) == 1 else None

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
        if self.smf_proc is not None:
            self.smf_proc.stop()
        for ch in self.channels.values():
            ch.close()
        for server in reversed(self.servers):
            server.stop(0)
        engine = docker.from_env()
        for c in engine.containers.list(all=True, filters={"name": self.tag}):
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)
        for image in engine.images.list():
            for tag in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
                if f"/{self.tag}/" in tag:
                    with contextlib.suppress(docker.errors.APIError):
                        engine.images.remove(tag, force=True)


@contextlib.contextmanager
def migration_lab(pki: Any, root: Path, *, smf_process: bool = False,
                  app_owner: str = "nms-owner",
                  register_container: bool = True) -> Iterator[MigrationLab]:
    with LocalRegistry.start(root / "registry", pki.ca) as registry:
        lab = MigrationLab(pki, root, registry, smf_process=smf_process, app_owner=app_owner,
                           register_container=register_container)
        try:
            lab.start_control_plane()
            lab.add_node("edge-a")
            lab.add_node("edge-b")
            lab.register()
            lab.deploy_nms("edge-a")
            yield lab
        finally:
            lab.close()


def phase_table(report: MigrationReport) -> str:
    return "\n".join(f"  {p.phase:<22} {p.outcome:<8} {p.wall_seconds * 1000:9.1f} ms "
                     f"{p.bytes_moved:>11} B  {p.detail[:90]}" for p in report.phases)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
