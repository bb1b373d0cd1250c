"""The controller side of the secure-migration ecosystem on a deployed lab (idempotent).

What `tests/integration/migration_lab.py` does on one machine, done against the deployed agents
(over mTLS with the controller certificate) and the lab hosts (over SSH):

1. workload images into the lab registry: built on the controller (`edgeferry.images`),
   ``docker save`` -> copied to the registry host -> ``docker load`` + ``docker push`` there
   (skipped when the registry already has the tag);
2. RAS: every edge host registered as cloud + server under the identity its node agent reports
   (RASP GetIdentity);
3. audit: every edge registered under its SMF server name (the inventory host name) with
   the seed-002 attributes the inventory states (``edgeferry_audit_edge_attributes``, over the
   documented defaults of `edgeferry.auditpolicy`) and fresh utilisation (from the node
   agent), each service's container policy (the experiment's, else the documented default) at
   its first host; owner tokens sealed with the key the deploy made
   (``.edgeferry/pki/<inventory>/ecosystem/``);
4. SMF: the controller registers as CMS, registers each service with its first server and
   provisions it (SSP stage 1), Add Server for the other edges; one user + device;
5. the service's workload runs (RunWorkload, image from the registry, secrets) where the SMF
   says the service is.

What was deployed comes from the deployment manifests the edgeferry_agent role leaves on the
controller (`edgeferry.deploy.manifest`): how
each service's container runs from the SMF's settings, and the container owner whose token the SMF
presents. Each edge's RASP MAX is read from its node agent (GetResources: its cgroup limits,
else the machine, or the inventory's override). State (service ids, capabilities) is kept in
``.edgeferry/state/<inventory>/ecosystem.json`` and reused while the SMF's identity is the same,
so services are not re-registered per run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import grpc

from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as npb_grpc
from agents.audit.client import AuditClient
from agents.audit.domain import PolicyError
from agents.audit.nodeprobe import utilisation
from agents.audit.owners import seal_owner_token
from agents.common.client import secure_channel
from agents.common.convert import resources_from_pb
from agents.common.platforms import Platform
from agents.node.client import EndpointClient, SspServerClient, node_stub
from agents.ras.client import RasClient
from agents.security.advertisement import Amounts, to_rasp
from agents.security.capability import SealedCapability
from agents.security.crypto import Identity, PublicIdentity
from agents.security.rasp import Resources
from agents.security.secretfile import decode_secret
from agents.smf.client import ServerSpec, SmfClient, register_service_as_cms
from agents.workloads.nms.tls import ClientTls
from edgeferry.auditpolicy import (
    DEFAULT_CONTAINER_POLICY,
    inventory_edge_attributes,
    inventory_edge_places,
)
from edgeferry.deploy.manifest import ManifestError, Workload, load_manifest
from edgeferry.deploy.runner import inventory_name
from edgeferry.errors import ConfigError, OperationFailed
from edgeferry.experiments.scenario import Endpoints, ScenarioUnavailable
from edgeferry.hosts import run as ssh_run
from edgeferry.images.index_push import PublishedIndex, RegistryApi, publish_index
from edgeferry.workspace import state_root

#: What one service asks of its host (RAS allocation; moves with the service).
#: 100 m of CPU: node agents now measure their real MAX (a jetson-class lab edge has 500 m), and
#: 500 m each (the value before) let one service fill a jetson edge, so the demo's second service
#: moving there was refused by RASP.
SERVICE_NEEDS = Resources(cpu=100, memory=256, storage=1000, network=10)
EDGE_OWNER = "edge-owner"


@dataclass(frozen=True)
class Deployed:
    """What the ecosystem takes from the deployment manifests."""

    workloads: dict[str, Workload]  # service -> how its container runs (the SMF's settings)
    container_owner: str  # whose sealed token the SMF presents to the audit agent
    smf_manifest: Path

    @classmethod
    def read(cls, inventory: Path, smf_host: str, edges: list[str],
             root: Path | None = None) -> Deployed:
        """From the manifests of the SMF's host and of the edges (ManifestError when one is
        missing or lacks what is needed: an edge without one was never deployed). Each edge's
        MAX is not taken from here: its node agent measures it (`Ecosystem.edge_max`)."""
        smf = load_manifest(inventory, smf_host, root)
        for edge in edges:
            load_manifest(inventory, edge, root)
        return cls(workloads=smf.workloads(), container_owner=smf.container_owner,
                   smf_manifest=smf.path)


@dataclass
class ServiceHandle:
    name: str
    service_id: str
    image: str  # registry reference of the image the service was last started from


@dataclass
class Ecosystem:
    """Clients of the deployed agents + SSH to the hosts; `ensure_service` is idempotent."""

    endpoints: Endpoints
    inventory: Path
    connect: Callable[[str], Any]
    deployed: Deployed
    log: Callable[[str], None] = lambda message: None
    edges: list[str] = field(default_factory=list)
    #: edge host -> its seed-002 attributes in force (from the inventory, over the defaults)
    edge_attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    #: edge host -> (its seed-002 region, its address) for the audit registry
    edge_places: dict[str, tuple[str, str]] = field(default_factory=dict)
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)
    _state: dict[str, Any] = field(default_factory=dict)
    #: host -> its workload platform and how it runs, as its node agent reported it (asked once)
    _platforms: dict[str, tuple[Platform, str]] = field(default_factory=dict)

    # -- plumbing ---------------------------------------------------------------------------
    @classmethod
    def open(cls, ctx: Any) -> Ecosystem:
        """From a ScenarioContext (raises ScenarioUnavailable when something is missing)."""
        if ctx.endpoints.tls is None:
            raise ScenarioUnavailable("the agents' endpoints are unknown: deploy first "
                                      "(`edgeferry run` without --skip-deploy)")
        if ctx.inventory is None or ctx.connect is None:
            raise ScenarioUnavailable("the ecosystem needs the lab hosts (inventory + SSH)")
        edges = sorted(ctx.endpoints.of("node"))
        try:
            deployed = Deployed.read(Path(ctx.inventory), next(iter(ctx.endpoints.of("smf"))),
                                     edges)
        except ManifestError as err:
            raise ScenarioUnavailable(str(err)) from None
        try:
            attributes = inventory_edge_attributes(Path(ctx.inventory), edges)
        except PolicyError as err:
            raise ConfigError(str(err)) from None
        eco = cls(ctx.endpoints, Path(ctx.inventory), ctx.connect, deployed, ctx.log,
                  edges=edges, edge_attributes=attributes,
                  edge_places=inventory_edge_places(Path(ctx.inventory), edges))
        eco._load_state()
        return eco

    @property
    def state_dir(self) -> Path:
        """The controller's state of this inventory, where the role also puts the manifests."""
        return state_root() / "state" / inventory_name(self.inventory)

    @property
    def key_dir(self) -> Path:
        """The ecosystem keys the role made on the controller for this inventory."""
        return state_root() / "pki" / inventory_name(self.inventory) / "ecosystem"

    def channel(self, address: str) -> grpc.Channel:
        if address not in self._channels:
            tls = self.endpoints.tls
            assert tls is not None
            self._channels[address] = secure_channel(address, tls.ca_cert, tls.cert, tls.key)
        return self._channels[address]

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def address(self, agent: str, host: str | None = None) -> str:
        where = self.endpoints.of(agent)
        return where[host] if host else next(iter(where.values()))

    def host_ip(self, host: str) -> str:
        return self.address("node", host).rsplit(":", 1)[0]

    def smf(self, timeout: float = 60.0) -> SmfClient:
        return SmfClient(self.channel(self.address("smf")), timeout=timeout)

    def audit(self) -> AuditClient:
        """An audit client on the shared channel (not used as a context manager: that closes
        the channel)."""
        return AuditClient(self.channel(self.address("audit")), timeout=20.0)

    def node(self, host: str) -> npb_grpc.NodeServiceStub:
        return node_stub(self.channel(self.address("node", host)))

    def owner_token(self, owner: str, ttl_s: float = 3600.0) -> bytes:
        return seal_owner_token((self.key_dir / "audit-owner.key").read_bytes(), owner, ttl_s)

    def nms_key(self) -> bytes:
        return self.secret(PurePosixPath("nms.key"))

    def nms_tls(self) -> ClientTls:
        """TLS to the NMS as its clients open it: trust the lab CA, verify the NMS name."""
        tls = self.endpoints.tls
        assert tls is not None
        return ClientTls.from_ca_file(tls.ca_cert)

    def secret(self, path: PurePosixPath) -> bytes:
        """The controller's copy of the secret file the deploy installed at ``path`` on a host
        (the role copies ``.edgeferry/pki/<inventory>/ecosystem/<name>`` there)."""
        local = self.key_dir / path.name
        try:
            return decode_secret(local.read_bytes())
        except FileNotFoundError:
            raise OperationFailed(f"the controller has no copy of {path} ({local} is missing): "
                                  "deploy again") from None

    def workload(self, service: str) -> Workload:
        """How ``service``'s container runs, as the deployed SMF is configured."""
        try:
            return self.deployed.workloads[service]
        except KeyError:
            raise OperationFailed(
                f"the deployed SMF runs no workload for service {service!r} (its "
                f"settings.container.workloads in {self.deployed.smf_manifest} has "
                f"{', '.join(self.deployed.workloads) or 'none'})") from None

    # -- state ------------------------------------------------------------------------------
    def _load_state(self) -> None:
        path = self.state_dir / "ecosystem.json"
        smf_pub = self.smf().identity().to_bytes().hex()
        state: dict[str, Any] = {}
        if path.exists():
            state = json.loads(path.read_text())
        if state.get("smf") != smf_pub:
            if state:
                self.log("ecosystem: the SMF identity changed (redeployed?): registering afresh")
            state = {"smf": smf_pub, "services": {}}
        self._state = state

    def _save_state(self) -> None:
        path = self.state_dir / "ecosystem.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=1, sort_keys=True))
        tmp.chmod(0o600)
        os.replace(tmp, path)

    def _cms(self) -> Identity:
        path = self.state_dir / "cms.pem"
        if path.exists():
            return Identity.load(path)
        cms = Identity.generate("cms")
        path.parent.mkdir(parents=True, exist_ok=True)
        cms.save(path)
        return cms

    def app_identity(self) -> Identity:
        """The application key the lab user's USER CAP and DEV CAP are bound to (made once,
        kept in the state directory, 0600): SSP sessions must be opened with it."""
        path = self.state_dir / "app.pem"
        if path.exists():
            return Identity.load(path)
        app = Identity.generate("app")
        path.parent.mkdir(parents=True, exist_ok=True)
        app.save(path)
        return app

    # -- images -----------------------------------------------------------------------------
    def registry(self) -> tuple[str, str, str]:
        """(host:port, username, password) of the lab registry (control host, port 5000)."""
        host = self.address("ras").rsplit(":", 1)[0]
        password = (self.state_dir / "registry-password").read_text().strip()
        return f"{host}:5000", "edgeferry", password

    def _in_registry(self, repo: str, tag: str) -> bool:
        address, user, password = self.registry()
        tls = self.endpoints.tls
        assert tls is not None
        ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
        req = urllib.request.Request(
            f"https://{address}/v2/{repo}/manifests/{tag}", method="HEAD",
            headers={"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode(),
                     "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return False
            raise OperationFailed(f"registry {address}: HTTP {err.code} for {repo}:{tag}") from None

    def publish(self, local_tag: str) -> str:
        """Put a controller-built image into the lab registry; returns its registry reference."""
        from edgeferry.images.common import save_image

        address, user, password = self.registry()
        repo, _, tag = local_tag.rpartition(":")
        ref = f"{address}/{repo}:{tag}"
        if self._in_registry(repo, tag):
            return ref
        host = self._registry_host()
        conn = self.connect(host)
        self.log(f"publishing {local_tag} to the lab registry via {host}")
        with tempfile.NamedTemporaryFile(suffix=".tar", dir="/var/tmp") as tmp:
            save_image(local_tag, tmp)
            tmp.flush()
            remote = f"/var/tmp/ef-{tag}.tar"
            conn.put(tmp.name, remote)
        try:
            ssh_run(conn, ["docker", "load", "-i", remote], timeout=600)
            ssh_run(conn, ["docker", "tag", local_tag, ref])
            login = conn.run(f"docker login -u {shlex.quote(user)} --password-stdin {address}",
                             hide=True, warn=True, timeout=60,
                             in_stream=io.StringIO(password + "\n"))
            if login.exited != 0:
                raise OperationFailed(f"docker login to {address} on {host} failed: "
                                      f"{login.stderr.strip()[:200]}")
            ssh_run(conn, ["docker", "push", ref], timeout=1800)
        finally:
            ssh_run(conn, ["rm", "-f", remote], check=False)
            ssh_run(conn, ["docker", "rmi", ref, local_tag], check=False)
        return ref

    def publish_multiarch(self, builds: dict[Platform, str]) -> PublishedIndex:
        """Every platform's controller-built image into the lab registry (`publish`), then one
        OCI image index over them (`edgeferry.images.index_push`): node agents pull their own
        platform's entry. Its record (index digest, digest per platform) goes to provenance."""
        from edgeferry.images.common import recipe_hash

        address, user, password = self.registry()
        tls = self.endpoints.tls
        assert tls is not None
        repos = {local.rpartition(":")[0] for local in builds.values()}
        if len(repos) != 1:
            raise OperationFailed(f"one index holds one repository's variants, not {repos}")
        repo = repos.pop()
        for local in builds.values():
            self.publish(local)
        tag = "multi-" + recipe_hash(sorted(builds.values()))
        api = RegistryApi(address, user, password, Path(tls.ca_cert))
        published = publish_index(api, repo, tag, {
            plat: local.rpartition(":")[2] for plat, local in builds.items()})
        self.log(f"published {published.reference} ({published.digest}): "
                 + ", ".join(f"{p} {d[:19]}" for p, d in sorted(published.platforms.items())))
        return published

    def workload_platform(self, host: str) -> tuple[Platform, str]:
        """The platform ``host``'s workloads run as and how, as its node agent reports them:
        "native", or "qemu-user" where the platform is not the host's architecture (a
        jetson-class lab host whose profile says ``workloads: class``: linux/arm64 on x86_64).
        Asked once per host: a part asks it when it opens and again when it publishes."""
        from edgeferry.images.multiarch import platform_of
        from edgeferry.lab.binfmt import emulation

        if host not in self._platforms:
            reply = self.node(host).GetResources(npb.GetResourcesRequest(), timeout=20)
            self._platforms[host] = (platform_of(reply.platform or None),
                                     emulation(reply.platform, reply.architecture or None))
        return self._platforms[host]

    def publish_for(self, hosts: list[str], build: Callable[[Platform], str]
                    ) -> tuple[str, PublishedIndex | None]:
        """A workload image for ``hosts``: ``build(platform)`` (a controller-built local tag)
        for every platform their workloads run as. All on the controller's platform: that one
        image (`publish`), as before, and no index. Otherwise one OCI index over the
        controller's platform and theirs (`publish_multiarch`): each node agent pulls its own
        entry, and a migration between platforms re-bases the committed diff onto the
        destination's entry. Returns the reference to run and the index published, if any."""
        from edgeferry.images.multiarch import controller_platform

        native = controller_platform()
        wanted = {str(p): p for p, _ in map(self.workload_platform, hosts)}
        if all(p.matches(native) for p in wanted.values()):
            return self.publish(build(native)), None
        wanted.setdefault(str(native), native)
        published = self.publish_multiarch({p: build(p) for _, p in sorted(wanted.items())})
        return published.reference, published

    def _registry_host(self) -> str:
        return next(iter(self.endpoints.of("ras")))

    # -- registrations ----------------------------------------------------------------------
    def _register_hosts(self) -> dict[str, PublicIdentity]:
        ras = RasClient(self.channel(self.address("ras")), timeout=20.0)
        publics: dict[str, PublicIdentity] = {}
        for host in self.edges:
            public = EndpointClient(self.channel(self.address("node", host)),
                                    timeout=20.0).identity()[0]
            publics[host] = public
            key = public.to_bytes().hex()
            if key in self._state.setdefault("ras_registered", []):
                continue
            maximum = self.edge_max(host)
            for register in (lambda p=public, m=maximum:
                             ras.register_cloud(p, m),
                             lambda p=public: ras.register_server(p)):
                with _already_ok():
                    register()
            self._state["ras_registered"].append(key)
        return publics

    def node_identity(self, host: str) -> PublicIdentity:
        """The edge's host identity (RASP endpoint key), whose name the SMF knows it by."""
        return EndpointClient(self.channel(self.address("node", host)), timeout=20.0).identity()[0]

    def edge_max(self, host: str) -> Resources:
        """The edge's real MAX in RASP units, as its node agent measures it (cgroup CPU quota
        and memory limit, else the machine; or the inventory's override)."""
        r = self.node(host).GetResources(npb.GetResourcesRequest(), timeout=20).max
        return to_rasp(Amounts(r.cpu_millicores, r.memory_bytes, r.storage_bytes,
                               r.network_bps, r.gpu))

    def report_edge_state(self) -> dict[str, tuple[float, float]]:
        """Fresh CPU/memory utilisation (%) of every edge, from its node agent, to the audit."""
        out = {}
        with contextlib.nullcontext(self.audit()) as audit:
            for host in self.edges:
                # the audit agent's own monitor's reading (use over MAX, at most 100 %: a
                # sampling window can see a little more than the cgroup quota)
                cpu, mem = utilisation(self.node(host).GetResources(npb.GetResourcesRequest(),
                                                                   timeout=20))
                audit.report_edge_state(host, round(cpu, 1), round(mem, 1))
                out[host] = (cpu, mem)
        return out

    def _register_audit(self) -> None:
        """Every edge with the attributes the inventory states (again when they changed)."""
        wanted = {h: {**a, "_place": list(self.edge_places.get(h, ("lab", "")))}
                  for h, a in self.edge_attributes.items()}
        if self._state.get("audit_edges") == wanted:
            return
        owner = self.owner_token(EDGE_OWNER)
        app_owner = self.owner_token(self.deployed.container_owner)
        with contextlib.nullcontext(self.audit()) as audit:
            for host in self.edges:
                attrs = self.edge_attributes[host]
                region, address = self.edge_places.get(host, ("lab", ""))
                try:
                    share = audit.register_edge(owner, host, attrs, region=region,
                                                address=address)
                except Exception as err:
                    if "exist" not in str(err).lower():
                        raise
                    audit.update_edge(owner, host, attrs, region=region, address=address)
                    share = audit.rotate_share_key(owner, host)
                audit.redeem_share_key(app_owner, share)
        self._state["audit_edges"] = wanted
        self._save_state()

    def _register_principals(self, smf: SmfClient) -> None:
        if "user" in self._state:
            self._renew_capabilities(smf)
            return
        with _already_ok():
            smf.register_cms(self._cms().public)
        app = self.app_identity().public
        uid, ucap = smf.register_user("Ada", "Lovelace", holder=app, role="driver", rank=3)
        did, _, dcap = smf.register_device("phone", "Ada", "Lovelace", holder=app,
                                           owner_user_id=uid)
        self._state["user"] = {"id": uid, "cap": ucap.to_bytes().hex()}
        self._state["device"] = {"id": did, "cap": dcap.to_bytes().hex()}
        self._save_state()

    def _renew_capabilities(self, smf: SmfClient, margin_s: float = 3600.0) -> None:
        """Reissue the lab user's USER CAP / DEV CAP when one expires within `margin_s`."""
        _uid, ucap, _did, dcap = self.who()
        soon = int((time.time() + margin_s) * 1000)
        for kind, cap in (("user", ucap), ("device", dcap)):
            if cap.expires_at_ms is None or cap.expires_at_ms > soon:
                continue
            entry = self._state[kind]
            new = smf.reissue_capability(kind, entry["id"], holder=self.app_identity().public)
            entry["cap"] = new.to_bytes().hex()
            self._save_state()

    def who(self) -> tuple[str, SealedCapability, str, SealedCapability]:
        u, d = self._state["user"], self._state["device"]
        return (u["id"], SealedCapability.from_bytes(bytes.fromhex(u["cap"])), d["id"],
                SealedCapability.from_bytes(bytes.fromhex(d["cap"])))

    def ensure_service(self, name: str, image: str, first: str,
                       requirements: dict[str, str] | None = None,
                       need: Resources | None = None) -> ServiceHandle:
        """Register ``name`` (once) with ``first`` as its first server and the other edges as
        further servers, its RAS requirement ``need`` (default `SERVICE_NEEDS`; a name maps to
        one requirement: ConfigError when the SMF holds ``name`` with another), register its
        container policy (``requirements``, seed 002 Table 1; default
        `DEFAULT_CONTAINER_POLICY`), and make its workload run where the SMF says it is, from
        ``image`` (a registry reference)."""
        policy = dict(DEFAULT_CONTAINER_POLICY if requirements is None else requirements)
        need = SERVICE_NEEDS if need is None else need
        publics = self._register_hosts()
        self._save_state()
        self._register_audit()
        smf = self.smf()
        self._register_principals(smf)
        entry = self._state["services"].get(name)
        if entry is None:
            entry = self._register_service(smf, name, image, first, publics, policy, need)
        else:
            check_requirement(name, resources_from_pb(smf.service(entry["id"]).requirement),
                              need, self.deployed.workloads)
        location = self.location(ServiceHandle(name, entry["id"], ""))
        with contextlib.nullcontext(self.audit()) as audit:
            audit.update_container(self.owner_token(self.deployed.container_owner), name,
                                   policy, location=location)
        handle = ServiceHandle(name, entry["id"], image)
        self.report_edge_state()
        self.run_workload(handle, self.location(handle), replace=False)
        return handle

    def _register_service(self, smf: SmfClient, name: str, image: str, first: str,
                          publics: dict[str, PublicIdentity],
                          policy: dict[str, str], need: Resources) -> dict[str, Any]:
        port = int(self.address("node", first).rsplit(":", 1)[1])
        known = [s for s in smf.services() if s.name == name and s.version == "1"]
        if known:  # registered by an earlier, interrupted bootstrap: finish it
            check_requirement(name, resources_from_pb(known[0].requirement), need,
                              self.deployed.workloads)
            service_id = known[0].global_id
            have = {srv.ipv4 for srv in known[0].servers}
            self.log(f"ecosystem: service {name!r} already registered ({service_id})")
        else:
            self.log(f"ecosystem: registering service {name!r} (first server {first})")
            spec = ServerSpec(publics[first], self.host_ip(first), port)
            service_id, _ = register_service_as_cms(
                smf, self._cms(), smf.identity(), name, "1", [spec],
                provision=lambda s: SspServerClient(self.channel(self.address("node", first))),
                description=f"edgeferry {name} workload", port=self.workload(name).container_port,
                requirement=need, image_ref=image)
            have = {self.host_ip(first)}
        for host in self.edges:
            if self.host_ip(host) in have:
                continue
            sid, cap = smf.add_server(service_id, publics[host], self.host_ip(host), port,
                                      server_global_id=f"srv-{host}", max_load=10)
            SspServerClient(self.channel(self.address("node", host))).provision(sid, cap)
        with contextlib.nullcontext(self.audit()) as audit:
            token = self.owner_token(self.deployed.container_owner)
            try:
                audit.register_container(token, name, policy, location=first)
            except Exception as err:
                if "exist" not in str(err).lower():
                    raise
                audit.update_container(token, name, policy, location=first)
        entry = {"id": service_id, "first": first}
        self._state["services"][name] = entry
        self._save_state()
        return entry

    # -- workloads --------------------------------------------------------------------------
    def location(self, handle: ServiceHandle) -> str:
        return str(self.smf().service(handle.service_id).location)

    def workload_running(self, host: str, name: str) -> bool:
        out = ssh_run(self.connect(host), ["docker", "ps", "-q", "--filter",
                                           f"name=^/{name}$", "--filter", "status=running"],
                      check=False)
        return bool(out.strip())

    def run_workload(self, handle: ServiceHandle, host: str, *, replace: bool) -> float:
        """RunWorkload of the service's image on ``host`` (not a migration); returns seconds.
        Without ``replace`` a running container is left alone."""
        w = self.workload(handle.name)
        if not replace and self.workload_running(host, w.name):
            return 0.0
        stub = self.node(host)
        stub.RemoveWorkload(npb.RemoveWorkloadRequest(name=w.name), timeout=120)
        secrets = [npb.SecretFile(container_path=s.container_path, content=self.secret(s.path),
                                  uid=s.uid) for s in w.secrets]
        spec = npb.WorkloadSpec(name=w.name, image=handle.image,
                                ports=[npb.PortBinding(container_port=w.container_port)],
                                secrets=secrets)
        t0 = time.monotonic()
        stub.RunWorkload(npb.RunWorkloadRequest(spec=spec), timeout=1800)
        self.log(f"ecosystem: {w.name} started on {host} from {handle.image}")
        return time.monotonic() - t0

    def purge(self, host: str, repos: tuple[str, ...]) -> None:
        """Remove the images of ``repos`` (and their layers) from a host's engine, so the next
        pull there moves every byte (containers of other repos keep theirs)."""
        conn = self.connect(host)
        refs = ssh_run(conn, ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                       check=False).split()
        doomed = [r for r in refs if any(f"/{repo}:" in r or r.startswith(f"{repo}:")
                                         for repo in repos)]
        if doomed:
            ssh_run(conn, ["docker", "rmi", "-f", *doomed], check=False, timeout=300)
        ssh_run(conn, ["docker", "image", "prune", "-f"], check=False, timeout=300)

    def migrate(self, handle: ServiceHandle, destination: str, *, order: str = "",
                region: str = "", any_edge: bool = False,
                audit_seed: int | None = None) -> Any:
        """Migrate Service in phase `order` ("" / "diff": diff-first, "paper": the paper's);
        ``destination`` "" with ``region`` / ``any_edge``: the audit picks (seed 002)."""
        uid, ucap, did, dcap = self.who()
        return self.smf(timeout=3600.0).migrate(handle.service_id, uid, did, ucap, dcap,
                                                destination, order=order, region=region,
                                                any_edge=any_edge, audit_seed=audit_seed)


def check_requirement(name: str, registered: Resources, stated: Resources,
                      workloads: dict[str, Any]) -> None:
    """ConfigError unless the SMF's ``registered`` requirement of service ``name`` is the
    ``stated`` one (a service name maps to one requirement; another needs another name)."""
    if registered == stated:
        return
    others = ", ".join(sorted(w for w in workloads if w != name)) or "none"
    raise ConfigError(
        f"service {name!r} is registered at the SMF with requirement {_needs(registered)}; "
        f"the experiment states {_needs(stated)}. A service name maps to one requirement: "
        f"state the registered one, or use another service (deployed workloads besides "
        f"{name}: {others})")


def _needs(r: Resources) -> str:
    return (f"cpu {r.cpu} m, memory {r.memory} MiB, storage {r.storage} MiB, "
            f"network {r.network} Mbit/s")


@contextlib.contextmanager
def _already_ok() -> Any:
    try:
        yield
    except Exception as err:
        if "already" not in str(err).lower() and "exist" not in str(err).lower():
            raise
