"""The measurements `edgeferry.bounds` takes, made on the controller around one migration trial;
shared by the migration scenarios and ``benchmarks/bench_migration_lab.py``.

* `measure_links`: receiver-side iperf3 bandwidth of both links the bytes cross, just before the
  trial: source -> registry host (the push) and registry host -> destination (the pull);
* `Wire` / `WireSampler`: Ethernet bytes from the lab hosts' interface counters (the bridge-side
  veth of each host's link on this machine; rx there = bytes the host sent, tx = bytes it
  received), sampled every 20 ms during the migration so the bytes moved after the stop can be
  told from those moved before it;
* `control_trial`: the service's container stopped and started again at the source through the
  node agent (StopContainer/StartContainer under a control migration id), no transfer; stop and
  start-to-first-answer timed separately on the controller's clock;
* `TrialMeter`: puts them and the downtime prober (`edgeferry.experiments.prober`) together
  and turns one trial into `edgeferry.bounds.TrialMeasurements`.

Wire counters include every byte of the hosts' links during the call (TLS, gRPC, ledger and
the prober's own probes, a few tens of kB/s), so the wire bytes slightly exceed the layers'.
"""

from __future__ import annotations

import bisect
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb
from edgeferry.bounds import ControlCosts, LinkBytes, TrialMeasurements
from edgeferry.experiments.prober import (
    DowntimeProber,
    DowntimeRecord,
    Endpoint,
    Probe,
    Resolver,
    first_answer,
    http_probe,
    tls_probe,
)
from edgeferry.hosts import run
from edgeferry.lab.links.iperf import parse_iperf3_json
from edgeferry.lab.links.veth import local_veth

#: report phases whose bytes cross the push link / the pull link
PUSH_PHASES = ("push", "transfer")  # the direct order's transfer crosses both links at once
PULL_PHASES = ("prepull", "pull", "transfer")


# -- bandwidth ---------------------------------------------------------------------------------
#: iperf3 server ports on the registry host: the push link's measurement, the pull link's
IPERF_PORTS = (5201, 5202)


def _iperf_client(ctx: Any, edge: str, server_ip: str, port: int, direction: str,
                  seconds: int) -> tuple[list[str], str]:
    cmd = ["iperf3", "-c", server_ip, "-p", str(port), "-J", "-t", str(seconds), "-i", "0.5"]
    if direction == "down":
        cmd.insert(3, "-R")
    return cmd, str(run(ctx.connection(edge), cmd, check=False, timeout=seconds + 30))


def iperf_receiver(eco: Any, ctx: Any, edge: str, direction: str,
                   seconds: int = 3) -> tuple[float, dict[str, Any]]:
    """iperf3 between ``edge`` and the registry host, "up" = edge sends, "down" = edge
    receives; returns the receiver side's bit/s (``end.sum_received``) and the sample."""
    ((bps, detail),) = _measure(eco, ctx, [(edge, direction)], seconds)
    return bps, detail


def _measure(eco: Any, ctx: Any, legs: list[tuple[str, str]],
             seconds: int) -> list[tuple[float, dict[str, Any]]]:
    """iperf3 on each (edge, direction) leg at the same time, one server port per leg on the
    registry host; the receiver side's bit/s and sample of each, in order."""
    reg = eco._registry_host()
    reg_ip = eco.address("ras", reg).rsplit(":", 1)[0]
    server = ctx.connection(reg)
    ports = IPERF_PORTS[:len(legs)]
    run(server, ["pkill", "-x", "iperf3"], check=False)
    try:
        for port in ports:
            run(server, ["iperf3", "-s", "-D", "-1", "-p", str(port), "--bind", reg_ip])
        time.sleep(0.3)
        outs: list[tuple[list[str], str]] = [([], "")] * len(legs)
        errors: list[BaseException] = []

        def client(i: int) -> None:
            try:
                outs[i] = _iperf_client(ctx, legs[i][0], reg_ip, ports[i], legs[i][1], seconds)
            except BaseException as err:  # re-raised in the calling thread below
                errors.append(err)

        threads = [threading.Thread(target=client, args=(i,), name=f"iperf3-{legs[i][0]}")
                   for i in range(1, len(legs))]
        for thread in threads:
            thread.start()
        client(0)
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
    finally:
        run(server, ["pkill", "-x", "iperf3"], check=False)
    samples = []
    for (edge, direction), (cmd, out) in zip(legs, outs, strict=True):
        sample = parse_iperf3_json(out, direction, drop_first=True,
                                   method=f"{' '.join(cmd)} on {edge}, server on {reg}; "
                                          "receiver side (sum_received)")
        samples.append((sample.receiver_bps, sample.to_dict()))
    return samples


@dataclass(frozen=True)
class LinkBandwidth:
    """Receiver-side bandwidth of the push link and the pull link (bit/s), with the samples."""

    push_bps: float
    pull_bps: float
    detail: dict[str, Any]


def measure_links(eco: Any, ctx: Any, source: str, destination: str,
                  seconds: int = 3) -> LinkBandwidth:
    """Both links a migration's bytes cross, measured now (iperf3, receiver side). The source's
    and the destination's links are their own shaped veths and the registry host's link is not
    shaped, so the two run at the same time (two server ports), each on its own connection;
    an edge that is both ends has its two directions measured one after the other."""
    if source == destination:
        push, push_detail = iperf_receiver(eco, ctx, source, "up", seconds)
        pull, pull_detail = iperf_receiver(eco, ctx, destination, "down", seconds)
    else:
        (push, push_detail), (pull, pull_detail) = _measure(
            eco, ctx, [(source, "up"), (destination, "down")], seconds)
    return LinkBandwidth(push, pull, {"push": push_detail, "pull": pull_detail})


# -- wire bytes --------------------------------------------------------------------------------
class Wire:
    """Bridge-side veth counters of lab hosts (per host: rx = bytes it sent, tx = received)."""

    def __init__(self, connect: Callable[[str], Any], hosts: list[str],
                 sys_class_net: Path = Path("/sys/class/net")) -> None:
        self.sys_class_net = sys_class_net
        self.veth = {h: local_veth(run(connect(h), ["cat", "/sys/class/net/eth0/iflink"]),
                                   sys_class_net) for h in hosts}

    def read(self) -> dict[str, tuple[int, int]]:
        """host -> (bytes sent, bytes received) so far."""
        def get(dev: str, what: str) -> int:
            return int((self.sys_class_net / dev / "statistics" / f"{what}_bytes").read_text())

        return {h: (get(d, "rx"), get(d, "tx")) for h, d in self.veth.items()}


class WireSampler:
    """`Wire.read` every ``interval_s`` in a thread, time-stamped on ``clock``."""

    def __init__(self, read: Callable[[], dict[str, tuple[int, int]]], interval_s: float = 0.02,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read, self.interval_s, self.clock = read, interval_s, clock
        self.times: list[float] = []
        self.samples: list[dict[str, tuple[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="wire-sampler")

    def _take(self) -> None:
        t, s = self.clock(), self.read()
        self.times.append(t)
        self.samples.append(s)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._take()

    def __enter__(self) -> WireSampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._take()

    def first(self) -> dict[str, tuple[int, int]]:
        return self.samples[0]

    def last(self) -> dict[str, tuple[int, int]]:
        return self.samples[-1]

    def at(self, t: float) -> dict[str, tuple[int, int]]:
        """The latest sample taken at or before ``t`` (the first one when none was)."""
        return self.samples[max(0, bisect.bisect_right(self.times, t) - 1)]


def wire_links(first: dict[str, tuple[int, int]], last: dict[str, tuple[int, int]],
               stop: dict[str, tuple[int, int]], answer: dict[str, tuple[int, int]],
               source: str, destination: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """((push wire, during the downtime), (pull wire, during the downtime)): bytes the source
    sent and bytes the destination received over the whole call (``first`` -> ``last``
    counters) and between the stop (``stop``: counters at the source's last answer) and the
    destination's first answer (``answer``)."""
    push = (last[source][0] - first[source][0], answer[source][0] - stop[source][0])
    pull = (last[destination][1] - first[destination][1],
            answer[destination][1] - stop[destination][1])
    return push, pull


def manifest_links(phases: list[Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((pushed, after stop), (pulled, after stop)): layer bytes the agents reported per link,
    from the report phases (``phase``, ``bytes``; "stop" splits before from after)."""
    names = [p.phase for p in phases]
    stop = names.index("stop") if "stop" in names else 0

    def split(which: tuple[str, ...]) -> tuple[int, int]:
        total = sum(p.bytes for p in phases if p.phase in which)
        after = sum(p.bytes for i, p in enumerate(phases) if p.phase in which and i > stop)
        return total, after

    return split(PUSH_PHASES), split(PULL_PHASES)


# -- the service -------------------------------------------------------------------------------
def parse_docker_port(out: str) -> int | None:
    """The host port of ``docker port NAME PORT/tcp`` output ("0.0.0.0:32768", "[::]:32768")."""
    for line in out.splitlines():
        _, _, port = line.strip().rpartition(":")
        if port.isdigit():
            return int(port)
    return None


def published_resolver(eco: Any, host: str, container: str, container_port: int, *,
                       wait_s: float = 0.0) -> Resolver:
    """Where ``container`` on ``host`` is published now (None while it is not running). With
    ``wait_s`` the host itself waits (up to ``wait_s``) for the container's start event
    (``docker events``, no polling of the engine) and answers once: one SSH command instead
    of one per poll, so resolving adds next to nothing to the host's link (the wire counters
    count every byte on it) or to its CPU."""
    conn, ip = eco.connect(host), eco.host_ip(host)
    port_arg = f"{container_port}/tcp"
    argv = ["docker", "port", container, port_arg]
    if wait_s > 0:
        name = shlex.quote(container)
        port_cmd = f"docker port {name} {port_arg} 2>/dev/null"
        # events are replayed from t0 on, so a start between t0 and the subscription is seen;
        # the line count is read before each docker port, so no start is missed between them
        script = (
            'f=$(mktemp); t0=$(date +%s.%N); '
            f'docker events --since "$t0" --filter type=container --filter container={name} '
            '--filter event=start --format x > "$f" & e=$!; '
            f'until n=$(wc -l < "$f"); p=$({port_cmd} | grep :); do '
            'while [ "$(wc -l < "$f")" -le "$n" ]; do sleep 0.02; done; done; '
            'kill $e 2>/dev/null; rm -f "$f"; echo "$p"')
        argv = ["timeout", f"{wait_s:g}", "sh", "-c", script]

    def resolve() -> Endpoint | None:
        out = run(conn, argv, check=False, timeout=wait_s + 30)
        port = parse_docker_port(out)
        return None if port is None else (ip, port)

    return resolve


def service_probe(eco: Any, service: str) -> Probe:
    """An application answer of ``service``: the NMS's TLS 1.3 handshake (lab CA, its name),
    the synthetic workload's ``GET /health`` -> ok."""
    if service == "nms":
        tls = eco.nms_tls()
        return tls_probe(tls.context, tls.server_name)
    from agents.workloads.synthetic import HEALTH_PATH

    return http_probe(HEALTH_PATH, b"ok")


def control_trial(eco: Any, service: str, host: str, *, deadline_s: float = 120.0,
                  ) -> tuple[ControlCosts, dict[str, Any]]:
    """Stop the service's container at ``host`` and start it again (no transfer), through the
    node agent under a fresh control migration id. Stop = the StopContainer call; start = from
    the StartContainer call to the first application answer (controller clock)."""
    w = eco.workload(service)
    probe = service_probe(eco, service)
    resolver = published_resolver(eco, host, w.name, w.container_port)
    first_answer(probe, resolver, since=time.monotonic(), deadline_s=deadline_s)
    ref = npb.MigrationRef(migration_id=f"control-{uuid.uuid4().hex[:16]}", epoch=1)
    node = eco.node(host)
    t0 = time.monotonic()
    stopped = node.StopContainer(npb.StopContainerRequest(ref=ref, name=w.name), timeout=300)
    stop_s = time.monotonic() - t0
    t1 = time.monotonic()
    started = node.StartContainer(npb.StartContainerRequest(ref=ref, name=w.name), timeout=300)
    rpc_s = time.monotonic() - t1
    start_s = first_answer(probe, resolver, since=t1, deadline_s=deadline_s)
    return ControlCosts(stop_s=stop_s, start_s=start_s), {
        "host": host, "migration_id": ref.migration_id, "stop_s": stop_s, "start_s": start_s,
        "start_rpc_s": rpc_s, "agent_stop_s": stopped.timing.wall_seconds,
        "agent_start_s": started.timing.wall_seconds, "exit_code": stopped.exit_code,
        "method": "StopContainer / StartContainer on the node agent (controller clock); start "
                  "ends at the first application answer"}


# -- one trial ---------------------------------------------------------------------------------
@dataclass
class TrialMeter:
    """Around one migration: the prober at both ends, the wire counters (when the lab's links
    are on this machine), then `measurements` for `edgeferry.bounds`."""

    eco: Any
    service: str
    source: str
    destination: str
    wire: Wire | None = None
    interval_s: float = 0.02
    record: DowntimeRecord | None = None
    wire_samples: WireSampler | None = None
    total_s: float = float("nan")
    errors: list[str] = field(default_factory=list)

    def run(self, call: Callable[[], Any]) -> Any:
        """Call the migration (``call``) with the prober and the wire sampler running; its
        round trip on the controller's clock is ``total_s``."""
        w = self.eco.workload(self.service)
        probe = service_probe(self.eco, self.service)
        src = published_resolver(self.eco, self.source, w.name, w.container_port)()
        if src is None:
            raise RuntimeError(f"{w.name} is not published on {self.source} before the trial")
        prober = DowntimeProber(probe, lambda: src,
                                published_resolver(self.eco, self.destination, w.name,
                                                   w.container_port, wait_s=20.0),
                                interval_s=self.interval_s, resolve_interval_s=0.1)
        sampler = WireSampler(self.wire.read) if self.wire is not None else None
        with prober:
            first_answer(probe, lambda: src, since=time.monotonic(), deadline_s=30.0)
            if sampler is not None:
                sampler.__enter__()
            try:
                t0 = prober.mark("migrate-called")
                report = call()
                self.total_s = prober.mark("migrate-returned") - t0
                # the destination answers within a probe interval or two of the first-response
                # phase; give the prober a moment to see it
                deadline = time.monotonic() + 5.0
                while prober.record.destination.first_ok is None and time.monotonic() < deadline:
                    time.sleep(self.interval_s)
            finally:
                if sampler is not None:
                    sampler.__exit__(None, None, None)
        self.record, self.wire_samples = prober.record, sampler
        self.errors += prober.errors
        return report

    def measurements(self, phases: list[Any], bandwidth: LinkBandwidth,
                     control: ControlCosts) -> TrialMeasurements:
        """The trial's `TrialMeasurements`: wire bytes when sampled, else the manifest bytes
        stand in for them (``wire_basis`` in `detail` says which)."""
        assert self.record is not None, "run() first"
        (pushed, pushed_after), (pulled, pulled_after) = manifest_links(phases)
        src_last, dst_first = self.record.source.last_ok, self.record.destination.first_ok
        if self.wire_samples is not None and src_last is not None and dst_first is not None:
            s = self.wire_samples
            (pw, pwa), (lw, lwa) = wire_links(s.first(), s.last(), s.at(src_last),
                                              s.at(dst_first), self.source, self.destination)
        else:
            (pw, pwa), (lw, lwa) = (pushed, pushed_after), (pulled, pulled_after)
        return TrialMeasurements(
            bw_push_bps=bandwidth.push_bps, bw_pull_bps=bandwidth.pull_bps,
            push=LinkBytes(pw, pwa, pushed, pushed_after),
            pull=LinkBytes(lw, lwa, pulled, pulled_after), control=control,
            total_s=self.total_s, downtime_s=self.record.downtime_s,
            relayed=any(p.phase == "transfer" for p in phases))

    def detail(self) -> dict[str, Any]:
        """How the trial was measured (prober record, wire basis)."""
        return {"prober": self.record.to_dict() if self.record else None,
                "wire_basis": "interface counters" if self.wire_samples is not None
                else "manifest (no lab link counters on this machine)",
                "errors": list(self.errors)}
