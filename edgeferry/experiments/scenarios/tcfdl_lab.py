"""Seed 003 (TCFDL) on the lab: tasks offloaded through the deployed clusters (two nats-servers
joined as leaf nodes, the manager, masters with their TEE proxies, function instances).

The offloading client runs here, on the controller, with the identity the pki role issued for
the hub cluster's master host (``tcfdl-client.<host>``, cluster a), and sends through that
cluster's nats-server, as the paper's client on master a. Per trial one task of ``size_kib``
random bytes goes to the function of the case (Fig. 5: ``c1`` on master a's host, Case 1;
``c2`` on a worker of cluster a, Case 2; ``c3`` on master b's host, Case 3) under one scheme
(none, hse, eae-umbral, eae-p256); its result is checked against the MLP computed here. The
hops' own timings become the trial's phases (`edgeferry.tcfdl.trial_phases`); their sum is the
task's round trip on the client. With ``bare: true`` each task is preceded by a bare NATS
request/reply of the same bytes to the same instance (`OffloadClient.probe`: the task's size
out, the result's size back, no master, no cryptography, no function), and the trial's
``overhead_s`` is the task's total minus that bare round trip minus the instance's MLP time:
TCFDL's own cost on the path (the issue's definition; the paper's Fig. 6 takes Case 3 minus
Case 2). Before the first trial the links a task crosses are measured
with iperf3 (receiver side): the controller -> the client's master host, and that host -> each
instance host; the bound is the task's and result's bytes over those links
(`edgeferry.tcfdl.bound_s`).

tcfdl-pipeline: the case study. The MLP split into `mlp.STAGES` stages (``pipe1`` on cluster a's
master host, ``pipe2`` on cluster b's), chained by the client, EAE on every link; the end result
must equal the unsplit inference computed here (`matches_unsplit`).
"""

from __future__ import annotations

import contextlib
import random
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from edgeferry.experiments.scenario import (
    PhaseResult,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.experiments.workloads import TcfdlPipelineWorkload, TcfdlWorkload
from edgeferry.tcfdl import (
    CASES,
    bound_s,
    crypto_metrics,
    framework_s,
    overhead_s,
    trial_phases,
)


def client_files(pki: Path, host: str) -> tuple[Path, Path]:
    """The controller-side certificate and key of ``tcfdl-client.<host>`` (pki role layout)."""
    return pki / "hosts" / host / "tcfdl-client.crt", pki / "hosts" / host / "tcfdl-client.key"


class _Deployment:
    """What the deployment manifests say about TCFDL, and the client's connection."""

    def __init__(self, ctx: ScenarioContext) -> None:
        from edgeferry.deploy.manifest import load_manifest, manifest_path
        from edgeferry.hosts import hosts_from_inventory

        if ctx.inventory is None or ctx.endpoints.tls is None:
            raise ScenarioUnavailable("TCFDL's agents are not deployed: run with a lab file that "
                                      "enables TCFDL (`tcfdl: true`), without --skip-deploy")
        self.ctx = ctx
        self.masters: dict[str, tuple[str, dict[str, Any]]] = {}  # cluster -> (host, settings)
        self.functions: dict[str, str] = {}  # function -> host of its instance
        self.addresses: dict[str, str] = {}
        self.manager = ""
        for host in sorted(hosts_from_inventory(ctx.inventory)):
            if not manifest_path(ctx.inventory, host).is_file():
                continue
            agents = load_manifest(ctx.inventory, host).agents
            for name, agent in agents.items():
                self.addresses[host] = agent.address
                if name == "tcfdl-manager":
                    self.manager = f"{agent.address}:{agent.port}"
                elif name == "tcfdl-master":
                    self.masters[str(agent.settings["cluster"])] = (host, dict(agent.settings))
                elif name == "tcfdl-worker":
                    for fn in agent.settings.get("functions") or {}:
                        self.functions.setdefault(str(fn), host)
        if not self.manager or not self.masters:
            raise ScenarioUnavailable("no TCFDL manager or master in the deployment manifests: "
                                      "enable TCFDL (edgeferry_tcfdl_enabled, or `tcfdl: true` "
                                      "in the lab file) and deploy")
        pki = ctx.endpoints.tls.ca_cert.parent.parent
        client = [(c, h) for c, (h, _) in self.masters.items()
                  if client_files(pki, h)[0].is_file()]
        if not client:
            raise ScenarioUnavailable(f"no tcfdl-client certificate under {pki}/hosts: deploy "
                                      "again with TCFDL enabled")
        self.cluster, self.client_host = client[0]
        self.cert, self.key = client_files(pki, self.client_host)
        self.ca = ctx.endpoints.tls.ca_cert
        self.loop: Any = None
        self.client: Any = None
        self.channel: Any = None

    def connect(self) -> Any:
        """The OffloadClient of ``tcfdl-client.<client host>`` on its cluster's server."""
        from agents.common.client import secure_channel
        from agents.tcfdl_client.offload import OffloadClient
        from agents.tcfdl_manager.client import ManagerClient
        from agents.tcfdl_master import bus
        from agents.tcfdl_master.agent import LoopThread

        settings = self.masters[self.cluster][1]
        me = f"tcfdl-client.{self.client_host}"
        self.loop = LoopThread("tcfdl-scenario")
        ctx = bus.tls_context(self.ca, self.cert, self.key)

        async def connect() -> Any:
            return await bus.connect(str(settings["nats"]), ctx, name=me,
                                     server_name=str(settings.get("nats_server_name") or ""))

        try:
            nc = self.loop.run(connect())
        except Exception as err:  # nats/ssl errors vary
            raise ScenarioUnavailable(f"cannot connect to cluster {self.cluster}'s NATS server "
                                      f"{settings['nats']}: {type(err).__name__}: {err}") from None
        self.channel = secure_channel(self.manager, self.ca, self.cert, self.key)
        self.client = OffloadClient(nc, ManagerClient(self.channel), me=me,
                                    cluster=self.cluster,
                                    proxy=f"tcfdl-proxy.{self.client_host}", ca_cert=self.ca)
        return self.client

    def offload(self, function: str, data: bytes, scheme: str, timeout: float) -> Any:
        """One task, its result (OffloadResult); TrialFailed on a refusal or a timeout."""
        from agents.tcfdl_client.offload import OffloadRefused, OffloadUnavailable

        try:
            return self.loop.run(self.client.offload(function, data, scheme=scheme,
                                                     timeout=timeout), timeout + 10)
        except (OffloadRefused, OffloadUnavailable) as err:
            raise TrialFailed(f"{function} ({scheme}): {err}") from None

    def probe(self, function: str, data: bytes, reply_size: int, timeout: float) -> int:
        """ns of a bare request/reply to the instance serving `function` (its worker's
        probe); TrialFailed when it does not answer."""
        from agents.tcfdl_client.offload import OffloadUnavailable

        instance = f"tcfdl-worker.{self.functions[function]}"
        try:
            return int(self.loop.run(self.client.probe(instance, data, reply_size,
                                                       timeout=timeout), timeout + 10))
        except (OffloadUnavailable, ValueError) as err:
            raise TrialFailed(f"bare request/reply to {instance}: {err}") from None

    # -- links ---------------------------------------------------------------------------------
    def _iperf(self, server_host: str, client: Any, seconds: int) -> float:
        from edgeferry.hosts import run
        from edgeferry.lab.links.iperf import parse_iperf3_json

        ip = self.addresses[server_host]
        server = self.ctx.connection(server_host)
        run(server, ["iperf3", "-s", "-D", "-1", "--bind", ip])
        time.sleep(0.3)
        cmd = ["iperf3", "-c", ip, "-J", "-t", str(seconds), "-i", "0.5"]
        out = client(cmd, seconds)
        return parse_iperf3_json(out, "up", method=f"{shlex.join(cmd)}, server on {server_host}",
                                 drop_first=True).receiver_bps

    def measure_links(self, seconds: int) -> dict[str, float]:
        """bit/s of each link a task crosses: ``controller`` (the controller -> the client's
        master host) and each other instance host (the client's master host -> it)."""
        from edgeferry.hosts import run

        def local(cmd: list[str], secs: int) -> str:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 30,
                                  check=False).stdout

        links = {"controller": self._iperf(self.client_host, local, seconds)}
        for host in sorted(set(self.functions.values()) - {self.client_host}):
            conn = self.ctx.connection(host)
            links[host] = self._iperf(
                self.client_host,
                lambda cmd, secs, c=conn: run(c, cmd, check=False, timeout=secs + 30), seconds)
        return links

    def path(self, function: str, links: dict[str, float]) -> list[float]:
        """The measured bandwidths of the links a task for `function` crosses."""
        host = self.functions.get(function)
        if host is None:
            raise ScenarioUnavailable(f"no deployed instance serves {function!r} "
                                      f"(edgeferry_tcfdl_functions); served: "
                                      f"{', '.join(sorted(self.functions))}")
        return [links["controller"]] + ([links[host]] if host != self.client_host else [])

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):  # closing after a failure
                self.loop.run(self.client.nc.close(), 10)
        if self.channel is not None:
            self.channel.close()
        if self.loop is not None:
            self.loop.stop()


def _phases(result: Any, size: int, out_size: int) -> list[PhaseResult]:
    out = [PhaseResult(name, wall_s) for name, wall_s in trial_phases(result.phases)]
    for p in out:
        if p.phase == "deliver":
            p.bytes = size + out_size
    return out


class TcfdlOffloadLab(Scenario):
    """Fig. 6 / Fig. 7 on the lab (module docstring)."""

    workload: TcfdlWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        self.dep = _Deployment(ctx)
        self.dep.connect()
        self.links = self.dep.measure_links(self.workload.iperf_seconds)
        ctx.log("TCFDL links (Mbit/s): " + ", ".join(f"{k} {v / 1e6:.1f}"
                                                      for k, v in self.links.items()))
        self.rng = random.Random(ctx.seed)

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        from agents.tcfdl_worker import mlp

        function = CASES[params["case"]]
        path = self.dep.path(function, self.links)
        size = int(params["size_kib"]) * 1024
        data = self.rng.randbytes(size)
        expected = mlp.infer(data)
        bare_ns = (self.dep.probe(function, data, len(expected), self.workload.timeout_s)
                   if params.get("bare") else None)
        result = self.dep.offload(function, data, params["scheme"], self.workload.timeout_s)
        metrics = {**crypto_metrics(result.phases),
                   "bound_s": bound_s(size, len(result.output), path),
                   "framework_s": framework_s(result.phases),
                   "result_ok": 1.0 if result.output == expected else 0.0,
                   "masters": float(sum(1 for k in result.phases if k.endswith(".route")))}
        if bare_ns is not None:
            metrics["bare_s"] = bare_ns / 1e9
            metrics["overhead_s"] = overhead_s(result.total_ns, bare_ns, result.phases)
        phases = _phases(result, size, len(result.output))
        if result.output != expected:
            raise TrialFailed(f"{function}: the result differs from the MLP computed here",
                              phases)
        return TrialResult(phases=phases, metrics=metrics, bandwidth_bps=min(path),
                           detail={"links_bps": path, "phases_ns": result.phases})

    def teardown(self, ctx: ScenarioContext) -> None:
        if hasattr(self, "dep"):
            self.dep.close()


class TcfdlPipelineLab(Scenario):
    """The case study: a split model inferred as a pipeline across clusters (module doc)."""

    workload: TcfdlPipelineWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        self.dep = _Deployment(ctx)
        self.dep.connect()
        self.links = self.dep.measure_links(self.workload.iperf_seconds)
        self.rng = random.Random(ctx.seed)

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        from agents.tcfdl_worker import mlp

        stages = int(params["stages"])
        if stages != mlp.STAGES:
            raise TrialFailed(f"the MLP splits into {mlp.STAGES} stages, not {stages}")
        size = int(params["size_kib"]) * 1024
        data = self.rng.randbytes(size)
        phases: list[PhaseResult] = []
        metrics: dict[str, float] = {"crypto_s": 0.0, "reencrypt_s": 0.0, "bound_s": 0.0}
        value = data
        for i in range(1, stages + 1):
            function = f"{self.workload.function_prefix}{i}"
            path = self.dep.path(function, self.links)
            result = self.dep.offload(function, value, params["scheme"], self.workload.timeout_s)
            phases.append(PhaseResult(f"stage{i}", result.total_ns / 1e9, bytes=len(value)))
            for k, v in crypto_metrics(result.phases).items():
                if k in ("crypto_s", "reencrypt_s"):
                    metrics[k] += v
            metrics["bound_s"] += bound_s(len(value), len(result.output), path)
            value = result.output
        unsplit = mlp.infer(data)
        metrics["matches_unsplit"] = 1.0 if value == unsplit else 0.0
        if value != unsplit:
            raise TrialFailed("the pipeline's result differs from the unsplit inference",
                              phases)
        return TrialResult(phases=phases, metrics=metrics,
                           detail={"stages": stages, "output_bytes": len(value)})

    def teardown(self, ctx: ScenarioContext) -> None:
        if hasattr(self, "dep"):
            self.dep.close()

