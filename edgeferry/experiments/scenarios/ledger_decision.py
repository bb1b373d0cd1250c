"""BloSM Figure 11: how a migration destination learns the container's metadata and decides.

Three ways, per trial, with the same metadata (real agents on loopback, real mTLS from a
throw-away lab CA in the run's work directory):

- ``direct``: the destination is known; the source sends the signed metadata straight to it
  (a metadata service hosted by the destination), which reads it locally and runs Algorithm 2.
  This is the paper's cost 1.
- ``ledger-write`` + ``ledger-evaluate``: Algorithm 1 (submit to the PoA validator, wait for
  >= quorum of the nodes to confirm the sealed block), then the destination reads its own
  replica (waiting until its copy has the block) and runs Algorithm 2.
- ``central-upload`` + ``central-evaluate``: upload to a central cloud service, then the
  destination queries the cloud and runs Algorithm 2.

Bytes are protobuf payload bytes counted by the agents' TrafficMeter (TLS and HTTP/2 framing
excluded). Metrics are the paper's cost ratios: latency / bytes relative to ``direct``.

``placement: lab`` runs the same three paths on the emulated lab (`edgeferry.experiments.
ledger_lab`): validator + central on the control host, ``nodes - 1`` peer identities split
over the edge hosts (one scale-mode process per edge, started over Fabric from the venv the
deployment manifests name), the direct service on the destination edge, the source's probe on
``source`` and the destination's on ``destination``; mTLS from the lab CA, the edges' shaped
links.  Phase times are taken on the host that acts (monotonic, SSH excluded); bytes are
Ethernet bytes on the wire (the hosts' bridge-side veth counters, minus the probe's SSH round
trip measured with a no-op); ``ledger-write`` bytes cover the propagation to all nodes.
Extra metrics: ``t90_s`` (Algorithm 1, >= 90 %), ``t100_s``, ``self_eval_s`` (Algorithm 2 on
the destination, reading its own replica).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from edgeferry.experiments.scenario import (
    PhaseResult,
    PhaseTimer,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.experiments.workloads import LedgerWorkload

HIGH = (16 * 2**30, 8000, 1000)  # free memory bytes, millicores, milli-GPU
LOW = (1 * 2**30, 1000, 0)
#: The loopback source host, and the ledger node id it registers with: as the SMF does, the
#: only id an `smf.<host>` certificate may register (agents.ledger.policy.SMF_NODE_ID).
SOURCE_HOST = "edge1"
SMF_NODE_ID = "smf"


@dataclass
class _Network:
    servers: list[Any] = field(default_factory=list)
    channels: list[Any] = field(default_factory=list)
    peer_hosts: list[Any] = field(default_factory=list)
    meters: dict[str, Any] = field(default_factory=dict)
    ledger: Any = None
    central: Any = None
    direct: Any = None
    direct_store: Any = None
    destination: tuple[Any, str] | None = None  # (PeerHost, peer id)

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        for server in reversed(self.servers):
            server.stop(0)


class LedgerDecision(Scenario):
    workload: LedgerWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        try:
            from agents.ledger import agent as _agent  # noqa: F401
        except ImportError as err:
            raise ScenarioUnavailable(f"ledger-decision needs agents.ledger: {err}") from None
        self._lab: Any = None
        if self.workload.placement == "lab":
            self._prepare_lab(ctx)
            return
        from edgeferry.pki import LabCA

        pki = ctx.work_dir / "pki"
        ca = LabCA.load_or_create(pki / "ca", "edgeferry experiment CA")
        self._ca = ca
        self._certs: dict[str, Any] = {}
        # role-shaped names (agents.common.authz): the source acts as the SMF does
        self._client_cert = ca.issue_client(f"smf.{SOURCE_HOST}", pki / "issued")
        self._networks: dict[int, _Network] = {}
        self._rng = random.Random(ctx.seed)
        self._counter = 0
        self._ctx = ctx

    # -- the loopback deployment ------------------------------------------------------------
    def _cert(self, cn: str) -> Any:
        """A loopback server certificate for `cn` (``<role>.<host>``), issued once."""
        if cn not in self._certs:
            self._certs[cn] = self._ca.issue(cn, self._ctx.work_dir / "pki" / "issued",
                                             dns_names=("localhost",),
                                             ip_addresses=("127.0.0.1",))
        return self._certs[cn]

    def _config(self, name: str, settings: dict[str, Any], cn: str) -> Any:
        from agents.common.config import load_config

        cert = self._cert(cn)
        defaults = {
            "name": name, "listen_host": "127.0.0.1", "listen_port": 0,
            "data_dir": str(self._ctx.work_dir / "data" / f"{name}-{time.time_ns()}"),
            "grace_seconds": 0.5, "max_workers": 16, "log_level": "WARNING",
            "tls.ca_cert": str(self._ca.cert_path), "tls.cert": str(cert.cert_path),
            "tls.key": str(cert.key_path),
        }
        return load_config(None, {f"settings.{k}": v for k, v in settings.items()},
                           defaults=defaults)

    def _channel(self, port: int) -> Any:
        from agents.common.client import secure_channel

        return secure_channel(f"127.0.0.1:{port}", self._ca.cert_path,
                              self._client_cert.cert_path, self._client_cert.key_path)

    def _network(self, nodes: int) -> _Network:
        if nodes in self._networks:
            return self._networks[nodes]
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from agents.common.server import AgentServer
        from agents.ledger.agent import bootstrap, setup_central, setup_peers, setup_validator
        from agents.ledger.client import CentralClient, LedgerClient
        from agents.ledger.metering import TrafficMeter
        from agents.ledger.signing import public_key_bytes

        self._ctx.log(f"ledger-decision: starting a {nodes}-node ledger, a central service and "
                      "a destination service on loopback (mTLS)")
        net = _Network()
        try:
            meters = {k: TrafficMeter() for k in ("ledger", "central", "direct")}
            net.meters = meters
            vcfg = self._config("validator", {"role": "validator", "node_id": "validator"},
                                "ledger-validator.control")
            vserver = AgentServer(vcfg)
            core = setup_validator(vserver, vcfg, meter=meters["ledger"])[0]
            vserver.start()
            net.servers.append(vserver)
            authority = public_key_bytes(core._key).hex()
            peers = nodes - 1  # the validator is a node too
            hosts = min(self.workload.peer_hosts, peers)
            for h in range(hosts):
                count = peers // hosts + (1 if h < peers % hosts else 0)
                pcfg = self._config(f"peers{h}", {
                    "role": "peers", "node_id": f"node{h}", "peers": count,
                    "validator": f"127.0.0.1:{vserver.port}", "authority_key": authority},
                    f"ledger-peer.node{h}")
                pserver = AgentServer(pcfg)
                host = setup_peers(pserver, pcfg)
                pserver.start()
                net.servers.append(pserver)
                bootstrap(host, pserver, pcfg)
                net.peer_hosts.append(host)
            dest_host = net.peer_hosts[-1]
            net.destination = (dest_host, sorted(dest_host.identities)[-1])
            for role in ("central", "direct"):
                ccfg = self._config(role, {}, "ledger-validator.control")
                cserver = AgentServer(ccfg)
                store = setup_central(cserver, ccfg, meter=meters[role])
                cserver.start()
                net.servers.append(cserver)
                if role == "direct":
                    net.direct_store = store
            key = Ed25519PrivateKey.generate()
            chan = self._channel(vserver.port)
            net.channels.append(chan)
            net.ledger = LedgerClient(chan, SMF_NODE_ID, key)
            net.ledger.register()
            for role, server in (("central", net.servers[-2]), ("direct", net.servers[-1])):
                chan = self._channel(server.port)
                net.channels.append(chan)
                setattr(net, role, CentralClient(chan, SMF_NODE_ID, key))
        except Exception:
            net.close()
            raise
        self._networks[nodes] = net
        return net

    # -- the lab placement -------------------------------------------------------------------
    def _prepare_lab(self, ctx: ScenarioContext) -> None:
        from edgeferry.experiments.ledger_lab import LabLedger, lab_ca_dir

        if ctx.lab is None or ctx.connect is None:
            raise ScenarioUnavailable(
                "ledger-decision with placement: lab needs the emulated lab (target: {lab: "
                "...}) and SSH to its hosts")
        ca_dir = lab_ca_dir(ctx)
        w = self.workload
        self._lab = LabLedger(ctx.lab, ctx.connection, ca_dir, ctx.work_dir, source=w.source,
                              destination=w.destination, port_base=w.port_base, log=ctx.log,
                              cloud=w.cloud)
        self._lab_sessions: dict[int, tuple[Any, Any, float]] = {}
        self._rng = random.Random(ctx.seed)
        self._counter = 0
        self._ctx = ctx
        try:
            self._lab.setup()
        except Exception as err:
            self._lab.close()
            raise ScenarioUnavailable(f"ledger-decision lab placement: {err}") from err

    def _lab_network(self, nodes: int) -> tuple[Any, Any, Any, float]:
        lab = self._lab
        for idx, net in lab.networks.items():
            if net.peers == nodes - 1:
                src, dst, noop = self._lab_sessions[idx]
                return net, src, dst, noop
        index = len(lab.networks)
        net = lab.start(nodes - 1, index)  # the validator is a node too
        src = lab.probe(lab.source, net, "source")
        dst = lab.probe(lab.destination, net, "destination")
        noop = max(lab.noop_bytes(src), lab.noop_bytes(dst))
        ctx = self._ctx
        ctx.log(f"ledger-decision: probe round trip without gRPC = {noop:.0f} wire bytes "
                "(subtracted from each phase)")
        self._lab_sessions[index] = (src, dst, noop)
        return net, src, dst, noop

    def _run_lab_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        lab = self._lab
        try:
            net, src, dst, noop = self._lab_network(int(params["nodes"]))
        except Exception as err:
            raise TrialFailed(f"the lab ledger did not start: {type(err).__name__}: {err}"
                              ) from err
        self._counter += 1
        high = self._rng.random() < float(params["high_resource_share"])
        mem, cpu, gpu = HIGH if high else LOW
        resources = [mem, cpu, gpu, [self.workload.app_type]]
        cid = f"c{ctx.seed}-{self._counter:06d}-{time.time_ns() % 10**9}"
        meta = {"source_ip": lab.address(lab.source), "container_id": cid,
                "total_size": self.workload.image_bytes, "gpu_usage": 300, "cpu_usage": 1500,
                "type": self.workload.app_type}
        w = self.workload
        phases: list[PhaseResult] = []
        where = {"source": lab.source, "destination": lab.destination,
                 "timed": "on the acting host (monotonic), SSH excluded",
                 "bytes": "Ethernet bytes sent by all lab hosts (bridge-side veth rx) minus "
                          f"the probe's SSH round trip ({noop:.0f} B)"}

        def step(name: str, session: Any, cmd: dict[str, Any]) -> dict[str, Any]:
            ctx.progress(name)
            out: dict[str, Any]  # the probe's JSON reply (ProbeSession.call)
            try:
                out, wire = lab.measured(lambda: session.call(cmd))
            except Exception as err:
                phases.append(PhaseResult(name, 0.0, outcome="failed",
                                          detail={"error": f"{type(err).__name__}: {err}"}))
                raise TrialFailed(f"{name}: {err}", phases) from err
            out["bytes"] = max(0, round(wire - noop))
            return out

        def read(service: str) -> dict[str, Any]:
            return step(f"{service}-read", dst, {"op": "read", "service": service,
                                                 "container_id": cid, "resources": resources,
                                                 "timeout": w.timeout_s})

        put = step("direct", src, {"op": "put", "service": "direct", "meta": meta})
        got = read("direct")
        phases.append(PhaseResult("direct", put["wall_s"] + got["wall_s"],
                                  bytes=put["bytes"] + got["bytes"],
                                  detail={"put_s": put["wall_s"], "read_s": got["wall_s"],
                                          "accept": got.get("accept"), **where}))
        lw = step("ledger-write", src, {"op": "ledger_write", "meta": meta,
                                        "quorum": w.quorum, "timeout": w.timeout_s})
        ok = bool(lw["ok"])
        phases.append(PhaseResult(
            "ledger-write", lw["t90_s"], bytes=lw["bytes"], outcome="ok" if ok else "failed",
            detail={k: lw.get(k) for k in ("confirmations", "total_nodes", "required",
                                           "t100_s", "confirmations_all", "reason")}
            | {"bytes_until": "all nodes confirmed", **where}))
        if not ok:
            raise TrialFailed(f"Algorithm 1 did not reach the quorum: {lw['reason']}", phases)
        ev = read("replica")
        phases.append(PhaseResult("ledger-evaluate", ev["wall_s"], bytes=ev["bytes"],
                                  outcome="ok" if ev["found"] else "failed",
                                  detail={"accept": ev.get("accept"), "polls": ev["polls"],
                                          "read": "destination's own replica (its peer host)",
                                          **where}))
        if not ev["found"]:
            raise TrialFailed("the destination's replica never got the block", phases)
        up = step("central-upload", src, {"op": "put", "service": "central", "meta": meta})
        phases.append(PhaseResult("central-upload", up["wall_s"], bytes=up["bytes"],
                                  detail=dict(where)))
        ce = read("central")
        phases.append(PhaseResult("central-evaluate", ce["wall_s"], bytes=ce["bytes"],
                                  outcome="ok" if ce["found"] else "failed",
                                  detail={"accept": ce.get("accept"), **where}))
        if not ce["found"]:
            raise TrialFailed("the central service lost the metadata", phases)
        if not got.get("found"):
            raise TrialFailed("the destination has no metadata after the direct put", phases)
        if not got["accept"] == ev["accept"] == ce["accept"]:
            raise TrialFailed("the three paths decided differently", phases)
        wall = {p.phase: p for p in phases}
        direct_s, direct_b = wall["direct"].wall_s, max(1, wall["direct"].bytes)
        metrics = {
            "latency_cost_ledger": (lw["t90_s"] + ev["wall_s"]) / direct_s,
            "latency_cost_central": (up["wall_s"] + ce["wall_s"]) / direct_s,
            "bandwidth_cost_ledger": (lw["bytes"] + ev["bytes"]) / direct_b,
            "bandwidth_cost_central": (up["bytes"] + ce["bytes"]) / direct_b,
            "confirmations": float(lw["confirmations"]),
            "t90_s": float(lw["t90_s"]),
            "self_eval_s": float(ev["wall_s"]),
        }
        if lw.get("t100_s") is not None:
            metrics["t100_s"] = float(lw["t100_s"])
        net.items += 1
        return TrialResult(phases=phases, metrics=metrics,
                           detail={"destination_high_resources": high, "accept": got["accept"],
                                   "placement": "lab", "peers": net.peer_hosts,
                                   "bytes_method": where["bytes"]})

    # -- one trial ----------------------------------------------------------------------------
    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        from agents.ledger.decisions import NodeResources, self_evaluate
        from agents.ledger.transactions import ContainerMetadata

        if self._lab is not None:
            return self._run_lab_trial(ctx, params)
        net = self._network(int(params["nodes"]))
        self._counter += 1
        high = self._rng.random() < float(params["high_resource_share"])
        mem, cpu, gpu = HIGH if high else LOW
        resources = NodeResources(mem, cpu, gpu, (self.workload.app_type,))
        meta = ContainerMetadata("10.250.0.11", f"c{ctx.seed}-{self._counter:06d}-"
                                 f"{time.time_ns() % 10**9}", self.workload.image_bytes, 300,
                                 1500, self.workload.app_type)
        timer = PhaseTimer(ctx.progress)
        meters = net.meters
        try:
            before = meters["direct"].total()
            with timer.phase("direct") as ph:
                net.direct.put(meta)
                stored = net.direct_store.latest(meta.container_id)
                if stored is None:
                    raise TrialFailed("the destination has no metadata after the direct put")
                ev_direct = self_evaluate(stored.metadata, resources)
                ph.bytes = meters["direct"].total() - before
                ph.detail = {"accept": ev_direct.accept, "reason": ev_direct.reason}

            before = meters["ledger"].total()
            with timer.phase("ledger-write") as ph:
                result = net.ledger.write_and_wait(meta, quorum=self.workload.quorum,
                                                   timeout=self.workload.timeout_s)
                ph.bytes = meters["ledger"].total() - before
                ph.detail = {"confirmations": result.confirmations,
                             "total_nodes": result.total_nodes, "required": result.required}
                if not result.ok:
                    ph.outcome = "failed"
                    ph.detail["reason"] = result.reason
            if not result.ok:
                raise TrialFailed(f"Algorithm 1 did not reach the quorum: {result.reason}",
                                  timer.phases)
            host, peer_id = net.destination  # type: ignore[misc]
            with timer.phase("ledger-evaluate") as ph:
                deadline = time.monotonic() + self.workload.timeout_s
                found = host.latest_metadata(peer_id, meta.container_id)
                while found is None and time.monotonic() < deadline:
                    time.sleep(0.001)
                    found = host.latest_metadata(peer_id, meta.container_id)
                if found is None:
                    raise TrialFailed("the destination's replica never got the block")
                ev_ledger = self_evaluate(found[0].metadata, resources)
                ph.detail = {"accept": ev_ledger.accept, "height": found[1],
                             "read": "destination's own replica (in-process)"}
            # the ledger's propagation continues after the quorum: let it finish so its bytes
            # are not counted against the central phases (they are in meters["ledger"] anyway)

            before = meters["central"].total()
            with timer.phase("central-upload") as ph:
                net.central.put(meta)
                ph.bytes = meters["central"].total() - before
            before = meters["central"].total()
            with timer.phase("central-evaluate") as ph:
                got = net.central.get(meta.container_id)
                if got is None:
                    raise TrialFailed("the central service lost the metadata")
                ev_central = self_evaluate(got, resources)
                ph.bytes = meters["central"].total() - before
                ph.detail = {"accept": ev_central.accept}
        except TrialFailed as err:
            err.phases = timer.phases
            raise
        except Exception as err:
            raise TrialFailed(f"{type(err).__name__}: {err}", timer.phases) from err
        wall = {p.phase: p for p in timer.phases}
        direct_s, direct_b = wall["direct"].wall_s, max(1, wall["direct"].bytes)
        ledger_s = wall["ledger-write"].wall_s + wall["ledger-evaluate"].wall_s
        central_s = wall["central-upload"].wall_s + wall["central-evaluate"].wall_s
        metrics = {
            "latency_cost_ledger": ledger_s / direct_s,
            "latency_cost_central": central_s / direct_s,
            "bandwidth_cost_ledger": (wall["ledger-write"].bytes) / direct_b,
            "bandwidth_cost_central": (wall["central-upload"].bytes
                                       + wall["central-evaluate"].bytes) / direct_b,
            "confirmations": float(result.confirmations),
        }
        agree = ev_direct.accept == ev_ledger.accept == ev_central.accept
        phases: list[PhaseResult] = timer.phases
        if not agree:
            raise TrialFailed("the three paths decided differently", phases)
        return TrialResult(phases=phases, metrics=metrics,
                           detail={"destination_high_resources": high,
                                   "accept": ev_direct.accept,
                                   "bytes_method": "protobuf payload bytes (TrafficMeter)"})

    def teardown(self, ctx: ScenarioContext) -> None:
        if getattr(self, "_lab", None) is not None:
            for problem in self._lab.close():
                ctx.log(f"ledger-decision teardown: {problem}")
            self._lab = None
        for net in getattr(self, "_networks", {}).values():
            net.close()
        if hasattr(self, "_networks"):
            self._networks.clear()
