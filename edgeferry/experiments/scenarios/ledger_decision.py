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
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from edgeferry.experiments.registry import LedgerWorkload
from edgeferry.experiments.scenario import (
    PhaseResult,
    PhaseTimer,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)

HIGH = (16 * 2**30, 8000, 1000)  # free memory bytes, millicores, milli-GPU
LOW = (1 * 2**30, 1000, 0)


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
        from edgeferry.pki import LabCA

        pki = ctx.work_dir / "pki"
        ca = LabCA.load_or_create(pki / "ca", "edgeferry experiment CA")
        self._server_cert = ca.issue("ledger-agent", pki / "issued", dns_names=("localhost",),
                                     ip_addresses=("127.0.0.1",))
        self._client_cert = ca.issue_client("controller", pki / "issued")
        self._ca = ca
        self._networks: dict[int, _Network] = {}
        self._rng = random.Random(ctx.seed)
        self._counter = 0
        self._ctx = ctx

    # -- the loopback deployment ------------------------------------------------------------
    def _config(self, name: str, settings: dict[str, Any]) -> Any:
        from agents.common.config import load_config

        defaults = {
            "name": name, "listen_host": "127.0.0.1", "listen_port": 0,
            "data_dir": str(self._ctx.work_dir / "data" / f"{name}-{time.time_ns()}"),
            "grace_seconds": 0.5, "max_workers": 16, "log_level": "WARNING",
            "tls.ca_cert": str(self._ca.cert_path), "tls.cert": str(self._server_cert.cert_path),
            "tls.key": str(self._server_cert.key_path),
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
        from agents.ledger.domain import public_key_bytes
        from agents.ledger.servicer import TrafficMeter

        self._ctx.log(f"ledger-decision: starting a {nodes}-node ledger, a central service and "
                      "a destination service on loopback (mTLS)")
        net = _Network()
        try:
            meters = {k: TrafficMeter() for k in ("ledger", "central", "direct")}
            net.meters = meters
            vcfg = self._config("validator", {"role": "validator", "node_id": "validator"})
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
                    "validator": f"127.0.0.1:{vserver.port}", "authority_key": authority})
                pserver = AgentServer(pcfg)
                host = setup_peers(pserver, pcfg)
                pserver.start()
                net.servers.append(pserver)
                bootstrap(host, pserver, pcfg)
                net.peer_hosts.append(host)
            dest_host = net.peer_hosts[-1]
            net.destination = (dest_host, sorted(dest_host.identities)[-1])
            for role in ("central", "direct"):
                ccfg = self._config(role, {})
                cserver = AgentServer(ccfg)
                store = setup_central(cserver, ccfg, meter=meters[role])
                cserver.start()
                net.servers.append(cserver)
                if role == "direct":
                    net.direct_store = store
            key = Ed25519PrivateKey.generate()
            chan = self._channel(vserver.port)
            net.channels.append(chan)
            net.ledger = LedgerClient(chan, "source@edge1", key)
            net.ledger.register()
            for role, server in (("central", net.servers[-2]), ("direct", net.servers[-1])):
                chan = self._channel(server.port)
                net.channels.append(chan)
                setattr(net, role, CentralClient(chan, "source@edge1", key))
        except Exception:
            net.close()
            raise
        self._networks[nodes] = net
        return net

    # -- one trial ----------------------------------------------------------------------------
    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        from agents.ledger.domain import ContainerMetadata, NodeResources, self_evaluate

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
        for net in getattr(self, "_networks", {}).values():
            net.close()
        if hasattr(self, "_networks"):
            self._networks.clear()
