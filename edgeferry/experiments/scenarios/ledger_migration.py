"""BloSM Figure 11 like the paper: one container migration for a client that moves, done three
ways on the emulated lab, with the four costs (latency, throughput, storage, bandwidth) of the
ledger and the central-cloud path each divided by the direct path's.

The lab (``experiments/labs/ledgerlab.yaml``): the PoA validator on the control host, ``nodes -
1`` peer identities over the three edges (`edgeferry.experiments.ledger_lab.LabLedger`), and a
``cloud`` host behind its own shaped link that runs the central metadata service and stores
uploaded containers. The source is ``source`` (edge1). The destinations are the high-resource
edge (``high``, x86 class) and the low-resource one (``low``, jetson class: 0.5 CPU, and a
resident load that leaves it less free memory than the container's size). Every destination
self-evaluates (Algorithm 2) from its own node agent's reading (GetResources over mTLS: FREE,
and MAX minus the measured use), so the low host refuses because it really lacks memory and
CPU. Each trial runs the ledger and the central path to both destinations; a path's value is
``high_resource_share`` x (to the high one) + the rest x (to the low one) -- the paper's "50 %
have high, and 50 % have low resources" measured in every trial instead of drawn.

The container is a synthetic workload image of ``image_size_mb`` on the source. It moves as
``docker save`` -> mutual-TLS stream -> ``docker load`` (`agents.ledger.transfer`), the same
code on every path, and starts with ``docker run``. Per trial:

- **direct** (cost 1): the destination is known -- the high edge. The source sends the signed
  metadata to it (its metadata service), it self-evaluates, the container moves source ->
  destination and starts.
- **ledger**: when the client leaves, the source writes the metadata (Algorithm 1, 90 % of the
  nodes) -- ``ledger-broadcast``, timed on its own as background cost, not in the latency, its
  bytes and stored records counted in each destination's operation. At
  arrival the destination reads its own replica and self-evaluates; accept: the container moves
  source -> destination and starts; reject: the client's user data (``user_data_kb``) goes back
  to the source, which keeps serving.
- **central**: the source uploads the container and the metadata to the cloud; the destination
  queries the cloud's metadata and self-evaluates; accept: it pulls the container from the cloud
  and starts it; reject: the source re-runs the container from the cloud (pull back, start).

Costs (each path's value / direct's in the same trial; bytes from the same counters on every
path: the bridge-side veth counters of every lab host, minus each probe command's own SSH round
trip):

- latency: the operation's wall time, summed from the phases timed on the acting hosts;
- bandwidth: Ethernet bytes all hosts sent (the ledger's broadcast included: "even when the
  total network bandwidth is evaluated");
- throughput: the busiest host's link load (bytes it sent + received), which bounds how many
  such operations per second the network carries (every shaped link of this lab has the same
  rate): the paper does not define its throughput cost, and this reading counts the cloud's
  upload and download against one link. ``throughput_duplex_cost_*`` is the other reading, the
  busiest single direction (a full-duplex link, as tbf shapes each direction apart);
- storage: bytes the operation left stored: image layers newly stored on a host (``docker image
  inspect`` size where the host lacked the image), containers stored at the cloud, and metadata
  records (the destination's store, the cloud's, the validator and every replica).

The earlier metadata-only comparison (``ledger-decision``) stays as the labelled ablation.
"""

from __future__ import annotations

import secrets
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from edgeferry.experiments.scenario import (
    PhaseResult,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.experiments.workloads import LedgerMigrationWorkload
from edgeferry.hosts import run
from edgeferry.images.synthetic import MB

PATHS = ("direct", "ledger", "central")
#: The container's declared CPU need (millicores): more than a jetson-class host (0.5 CPU) has.
CPU_NEED = 750
TRANSFER_PORTS = 16


@dataclass
class Traffic:
    """Bytes per host link: (sent, received), summed over the measured steps of one path."""

    links: dict[str, list[int]] = field(default_factory=dict)

    def add(self, delta: dict[str, tuple[int, int]]) -> None:
        for host, (tx, rx) in delta.items():
            cur = self.links.setdefault(host, [0, 0])
            cur[0] += max(0, tx)
            cur[1] += max(0, rx)

    @property
    def total(self) -> int:
        """Bytes all hosts sent (each frame between two hosts counted once)."""
        return sum(tx for tx, _rx in self.links.values())

    @property
    def busiest(self) -> int:
        """The most bytes one host's link carried, both directions (the host's network load)."""
        return max((sum(v) for v in self.links.values()), default=0)

    @property
    def busiest_direction(self) -> int:
        """The most bytes one direction of one host's link carried (a full-duplex link's
        bottleneck)."""
        return max((max(v) for v in self.links.values()), default=0)


def costs(paths: dict[str, dict[str, float]]) -> dict[str, float]:
    """Figure 11's four costs of ledger and central: each value / direct's (lower is better)."""
    out = {}
    direct = paths["direct"]
    for name in ("ledger", "central"):
        for cost in ("latency", "throughput", "storage", "bandwidth", "throughput_duplex"):
            if cost in direct:
                out[f"{cost}_cost_{name}"] = paths[name][cost] / max(direct[cost], 1e-9)
    return out


def mixture(high: dict[str, float], low: dict[str, float], share: float) -> dict[str, float]:
    """A path's value when `share` of the destinations have high resources (the paper: half)."""
    return {k: share * high[k] + (1 - share) * low[k] for k in high}


class LedgerMigration(Scenario):
    workload: LedgerMigrationWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        from edgeferry.experiments.ledger_lab import LabLedger, lab_ca_dir

        if ctx.lab is None or ctx.connect is None:
            raise ScenarioUnavailable(
                "ledger-migration needs the emulated lab (target: {lab: {lab_file: "
                "labs/ledgerlab.yaml}}) and SSH to its hosts")
        w = self.workload
        hosts = set(ctx.lab.hosts)
        missing = [h for h in (w.source, w.high, w.low, w.cloud) if h not in hosts]
        if missing:
            raise ScenarioUnavailable(f"lab {ctx.lab.name!r} has no host {', '.join(missing)} "
                                      "(experiments/labs/ledgerlab.yaml has them)")
        ca_dir = lab_ca_dir(ctx)
        self._ctx = ctx
        self._counter = 0
        self._transfers = 0
        self._sessions: dict[int, dict[str, Any]] = {}
        self.lab = LabLedger(ctx.lab, ctx.connection, ca_dir, ctx.work_dir, source=w.source,
                             destination=w.high, port_base=w.port_base, log=ctx.log,
                             cloud=w.cloud)
        try:
            self.lab.setup()
            self.image = self._image_on_source(ctx)
        except Exception as err:
            self.lab.close()
            raise ScenarioUnavailable(f"ledger-migration set-up: {err}") from err

    def _image_on_source(self, ctx: ScenarioContext) -> str:
        """The synthetic image of `image_size_mb`, built here and loaded on the source (once)."""
        from edgeferry.images.common import save_image
        from edgeferry.images.synthetic import SyntheticRecipe, synthetic_image

        w = self.workload
        built = synthetic_image(SyntheticRecipe(total_bytes=w.image_size_mb * MB), log=ctx.log)
        conn = self.lab.connect(w.source)
        if conn.run(shlex.join(["docker", "image", "inspect", built.tag]), hide=True,
                    warn=True).exited != 0:
            ctx.log(f"ledger-migration: loading {built.tag} on {w.source}")
            remote = f"{self.lab.dirs[w.source]}/image.tar"
            with open(ctx.work_dir / "image.tar", "wb") as fh:
                save_image(built.tag, fh)
            conn.put(str(ctx.work_dir / "image.tar"), remote)
            (ctx.work_dir / "image.tar").unlink()
            run(conn, ["docker", "load", "-i", remote], timeout=600)
            run(conn, ["rm", "-f", remote])
        return str(built.tag)

    # -- per network --------------------------------------------------------------------------
    def _network(self, nodes: int) -> dict[str, Any]:
        for idx, net in self.lab.networks.items():
            if net.peers == nodes - 1:
                return self._sessions[idx]
        w, lab, ctx = self.workload, self.lab, self._ctx
        index = len(lab.networks)
        net = lab.start(nodes - 1, index)  # the validator is a node too
        s: dict[str, Any] = {"net": net, "probes": {
            w.source: lab.probe(w.source, net, "source"),
            w.high: lab.probe(w.high, net, "destination"),
            w.low: lab.probe(w.low, net, "destination"),
            w.cloud: lab.probe(w.cloud, net, "cloud")}}
        s["noop"] = {h: lab.noop_link_bytes(h, p) for h, p in s["probes"].items()}
        ctx.log("ledger-migration: probe round trip without payload (subtracted): " + ", ".join(
            f"{h} {tx}/{rx} B" for h, (tx, rx) in s["noop"].items()))
        self._resident_load(s["probes"][w.low])
        self._sessions[index] = s
        return s

    def _resident_load(self, probe: Any) -> None:
        """Leave the low host `low_free_mb` of free memory (a resident load in its probe)."""
        w = self.workload
        r = probe.call({"op": "resources"})
        hold = max(0, int(r["free_memory"]) - w.low_free_mb * MB)
        probe.call({"op": "ballast", "bytes": hold})
        after = probe.call({"op": "resources"})
        self._ctx.log(f"ledger-migration: {w.low} holds a resident load of {hold / MB:.0f} MB: "
                      f"free memory {int(after['free_memory']) / MB:.0f} MB of "
                      f"{int(after['max_memory']) / MB:.0f} MB, free CPU "
                      f"{after['free_cpu']} m ({after['limits']})")

    # -- one trial ------------------------------------------------------------------------------
    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        w, lab = self.workload, self.lab
        try:
            s = self._network(int(params["nodes"]))
        except Exception as err:
            raise TrialFailed(f"the lab ledger did not start: {type(err).__name__}: {err}"
                              ) from err
        self._counter += 1
        cid = f"c{ctx.seed}-{self._counter:06d}-{time.time_ns() % 10**9}"
        size = self._image_size(w.source)
        meta = {"source_ip": lab.address(w.source), "container_id": cid, "total_size": size,
                "gpu_usage": 0, "cpu_usage": CPU_NEED, "type": w.app_type}
        t = _Trial(self, ctx, s, cid, size)
        share = float(params["high_resource_share"])
        try:
            t.direct(meta)
            accept = {}
            for dest in (w.high, w.low):
                accept[("ledger", dest)] = t.ledger(meta, dest)
            for dest in (w.high, w.low):
                accept[("central", dest)] = t.central(meta, dest)
        except TrialFailed:
            raise
        except Exception as err:
            raise TrialFailed(f"{type(err).__name__}: {err}", t.phases) from err
        for dest in (w.high, w.low):
            if accept[("ledger", dest)] != accept[("central", dest)]:
                raise TrialFailed(f"the ledger and the central path decided differently on "
                                  f"{dest}", t.phases)
        if not accept[("ledger", w.high)] or accept[("ledger", w.low)]:
            raise TrialFailed(f"expected {w.high} to accept and {w.low} to refuse, got "
                              f"{accept}", t.phases)
        s["net"].items += 1
        values = {"direct": t.values("direct")}
        for path in ("ledger", "central"):
            hi, lo = t.values(f"{path}@{w.high}"), t.values(f"{path}@{w.low}")
            values[path] = mixture(hi, lo, share)
        metrics = costs(values)
        for op in t.latency:
            key = op.replace(f"@{w.high}", "_high").replace(f"@{w.low}", "_low")
            metrics[f"latency_s_{key}"] = t.latency[op]
            metrics[f"wire_mb_{key}"] = t.traffic[op].total / MB
        metrics["broadcast_s"] = t.broadcast_s
        return TrialResult(phases=t.phases, metrics=metrics, detail={
            "image": self.image, "image_bytes": size, "high_resource_share": share,
            "accept": {f"{p}@{d}": a for (p, d), a in accept.items()},
            "values": values, "per_destination": {op: t.values(op) for op in t.latency},
            "links": {op: tr.links for op, tr in t.traffic.items()},
            "bytes_method": "bridge-side veth counters of every lab host (rx = sent, tx = "
                            "received), minus each probe command's SSH round trip",
            "timed": "on the acting host (monotonic), SSH excluded",
            "mixture": f"ledger and central = {share} x (to {w.high}) + {1 - share:g} x "
                       f"(to {w.low}), both measured in this trial"})

    # -- helpers --------------------------------------------------------------------------------
    def _image_size(self, host: str) -> int:
        out = run(self.lab.connect(host), ["docker", "image", "inspect", "-f", "{{.Size}}",
                                           self.image])
        return int(out.strip())

    def _has_image(self, host: str) -> bool:
        return bool(self.lab.connect(host).run(
            shlex.join(["docker", "image", "inspect", self.image]), hide=True,
            warn=True).exited == 0)

    def _user_data(self, host: str) -> str:
        """The client's user data on `host` (created once, untimed)."""
        path = f"{self.lab.dirs[host]}/user-data.bin"
        conn = self.lab.connect(host)
        if conn.run(f"test -s {shlex.quote(path)}", hide=True, warn=True).exited != 0:
            run(conn, ["sh", "-c", f"head -c {self.workload.user_data_kb * 1000} /dev/urandom"
                       f" > {shlex.quote(path)}"])
        return path

    def _cleanup(self, probe: Any, host: str, name: str) -> None:
        """Remove the trial's container; and its image, except on the source (untimed)."""
        cmd: dict[str, Any] = {"op": "remove", "name": name}
        if host != self.workload.source:
            cmd["image"] = self.image
        probe.call(cmd)

    def teardown(self, ctx: ScenarioContext) -> None:
        """Stop the ledger processes and probes (the resident load with them); remove what a
        failed trial may have left: its containers, and the image where it is not the
        source's."""
        w = self.workload
        for host in (w.source, w.high, w.low):
            try:
                conn = self.lab.connect(host)
                conn.run("docker ps -aq --filter name=fig11- | xargs -r docker rm -f",
                         hide=True, warn=True)
                if host != w.source and getattr(self, "image", None):
                    conn.run(shlex.join(["docker", "rmi", self.image]), hide=True, warn=True)
            except Exception as err:
                ctx.log(f"ledger-migration clean-up on {host}: {err}")
        problems = self.lab.close()
        for p in problems:
            ctx.log(f"ledger-migration clean-up: {p}")


class _Trial:
    """The operations of one trial: each path's phases, link traffic, stored bytes and latency
    (keyed ``direct``, ``ledger@<dest>``, ``central@<dest>``)."""

    def __init__(self, sc: LedgerMigration, ctx: ScenarioContext, session: dict[str, Any],
                 cid: str, size: int) -> None:
        self.sc, self.ctx, self.cid, self.size = sc, ctx, cid, size
        self.w, self.lab = sc.workload, sc.lab
        self.net = session["net"]
        self.probes: dict[str, Any] = session["probes"]
        self.noop: dict[str, tuple[int, int]] = session["noop"]
        self.phases: list[PhaseResult] = []
        self.traffic: dict[str, Traffic] = {}
        self.stored: dict[str, int] = {}
        self.latency: dict[str, float] = {}
        self.broadcast: tuple[Traffic, int] | None = None  # the ledger write's, shared
        self.broadcast_s = 0.0

    def kind(self, dest: str) -> str:
        """``high`` or ``low``: the destination's class in phase and metric names."""
        return "high" if dest == self.w.high else "low"

    def values(self, op: str) -> dict[str, float]:
        tr = self.traffic[op]
        return {"latency": self.latency[op], "throughput": float(tr.busiest),
                "throughput_duplex": float(tr.busiest_direction),
                "bandwidth": float(tr.total), "storage": float(self.stored[op])}

    # -- measured steps ------------------------------------------------------------------------
    def step(self, op: str, name: str, calls: list[tuple[str, dict[str, Any]]],
             timed: str | None = None, background: bool = False) -> list[dict[str, Any]]:
        """Run probe commands in order; bytes go to `op`; the phase time is the `timed` host's
        own ``wall_s`` (the last call's host when None) and counts in the latency unless
        `background`."""
        self.ctx.progress(name)
        before = self.lab.link_counters()
        outs = []
        try:
            for host, cmd in calls:
                outs.append(self.probes[host].call(cmd))
        except Exception as err:
            self.phases.append(PhaseResult(name, 0.0, outcome="failed",
                                           detail={"op": op, "error": f"{type(err).__name__}: "
                                                                      f"{err}"}))
            raise TrialFailed(f"{name}: {err}", self.phases) from err
        after = self.lab.link_counters()
        delta = {h: (after[h][0] - before[h][0], after[h][1] - before[h][1]) for h in after}
        for host, _cmd in calls:  # each command's own SSH round trip crossed its host's link
            tx, rx = delta[host]
            delta[host] = (tx - self.noop[host][0], rx - self.noop[host][1])
        self.traffic.setdefault(op, Traffic()).add(delta)
        timed_host = timed or calls[-1][0]
        wall = float(next((o["wall_s"] for (h, _c), o in zip(calls, outs, strict=True)
                           if h == timed_host and "wall_s" in o), 0.0))
        if not background:
            self.latency[op] = self.latency.get(op, 0.0) + wall
        self.phases.append(PhaseResult(name, wall,
                                       bytes=sum(max(0, v[0]) for v in delta.values()),
                                       detail={"op": op, "hosts": [h for h, _ in calls],
                                               "background": background}))
        return outs

    def move(self, op: str, name: str, frm: str, to: str, *, file: str | None = None,
             to_file: str | None = None) -> dict[str, Any]:
        """One mTLS stream frm -> to: the image (``docker save``) or `file`, into ``docker
        load`` or `to_file`; timed on the sender (until the receiver's answer)."""
        sc = self.sc
        token = secrets.token_hex(16)
        # a port per transfer from a small range: a receiver a failed trial left listening
        # (until its accept timeout) never blocks the next one
        sc._transfers += 1
        port = self.w.transfer_port + sc._transfers % TRANSFER_PORTS
        recv: dict[str, Any] = {"op": "receive", "port": port, "token": token,
                                "senders": [f"smf.{frm}"], "max_bytes": 2 * self.size + 10 * MB}
        if to_file:
            recv["file"] = to_file
        send: dict[str, Any] = {"op": "send", "address": self.lab.address(to), "port": port,
                                "token": token}
        send.update({"file": file} if file else {"image": sc.image})
        try:
            outs = self.step(op, name, [(to, recv), (frm, send),
                                        (to, {"op": "received", "token": token})], timed=frm)
        except TrialFailed as err:  # the receiver's side says why it closed
            try:
                self.probes[to].call({"op": "received", "token": token, "timeout": 5})
            except Exception as why:
                raise TrialFailed(f"{err}; the receiver on {to}: {why}", self.phases) from err
            raise
        return outs[1]

    def evaluate(self, op: str, name: str, host: str, service: str) -> bool:
        """Algorithm 2 on `host` from its node agent's reading, on metadata from `service`."""
        out = self.step(op, name, [(host, {"op": "read", "service": service,
                                           "container_id": self.cid, "resources": "node",
                                           "types": [self.w.app_type],
                                           "timeout": self.w.timeout_s})])[0]
        if not out.get("found"):
            raise TrialFailed(f"{name}: {host} found no metadata for {self.cid}", self.phases)
        self.phases[-1].detail.update({"accept": out["accept"], "reason": out["reason"],
                                       "free": out.get("free")})
        return bool(out["accept"])

    def start(self, op: str, name: str, host: str) -> None:
        self.step(op, name, [(host, {"op": "run", "image": self.sc.image,
                                     "name": self._container(op)})])
        self.sc._cleanup(self.probes[host], host, self._container(op))

    def _container(self, op: str) -> str:
        return f"fig11-{self.cid}-{op.replace('@', '-')}"

    def fresh(self, host: str) -> bool:
        """Untimed: remove the image where it is not the source's own; True: the host lacks it
        now (so loading it stores it)."""
        if host != self.w.source:
            self.probes[host].call({"op": "remove", "image": self.sc.image})
        return not self.sc._has_image(host)

    def _metadata_bytes(self, keys: tuple[str, ...], fn: Any) -> int:
        before = self.lab.storage(self.net)
        fn()
        after = self.lab.storage(self.net)
        return sum(after[k] - before[k] for k in keys)

    # -- the three paths -----------------------------------------------------------------------
    def direct(self, meta: dict[str, Any]) -> None:
        """The known destination (the high edge): metadata, self-evaluation, container, start."""
        w, op = self.w, "direct"
        lacks = self.fresh(w.high)

        def body() -> None:
            self.step(op, "direct-metadata", [(w.source, {"op": "put", "service": "direct",
                                                          "meta": meta})])
            if not self.evaluate(op, "direct-evaluate", w.high, "direct"):
                raise TrialFailed(f"the known destination {w.high} refused: "
                                  f"{self.phases[-1].detail}", self.phases)
            self.move(op, "direct-transfer", w.source, w.high)
            self.start(op, "direct-start", w.high)

        self.stored[op] = self._metadata_bytes(("direct",), body) + (self.size if lacks else 0)

    def ledger(self, meta: dict[str, Any], dest: str) -> bool:
        """Algorithm 1 when the client leaves (once per trial, background), then at arrival the
        destination's replica, Algorithm 2, and the container or the user data back."""
        w, op, kind = self.w, f"ledger@{dest}", self.kind(dest)
        if self.broadcast is None:
            keys = ("ledger_validator", "ledger_replicas")
            out: dict[str, Any] = {}

            def write() -> None:
                out.update(self.step("ledger-broadcast", "ledger-broadcast", [(w.source, {
                    "op": "ledger_write", "meta": meta, "quorum": w.quorum,
                    "timeout": w.timeout_s})], background=True)[0])

            stored = self._metadata_bytes(keys, write)
            self.broadcast_s = float(out["t90_s"])
            self.phases[-1].wall_s = self.broadcast_s
            self.phases[-1].detail.update({"t100_s": out.get("t100_s"),
                                           "confirmations": out["confirmations"],
                                           "total_nodes": out["total_nodes"]})
            if not out["ok"]:
                raise TrialFailed(f"Algorithm 1 did not reach the quorum: {out['reason']}",
                                  self.phases)
            self.broadcast = (self.traffic.pop("ledger-broadcast"), stored)
        shared, stored = self.broadcast
        self.traffic[op] = Traffic({h: list(v) for h, v in shared.links.items()})
        self.stored[op] = stored  # every operation pays its own broadcast
        lacks = self.fresh(dest)
        accept = self.evaluate(op, f"ledger-evaluate-{kind}", dest, "replica")
        if accept:
            self.move(op, f"ledger-transfer-{kind}", w.source, dest)
            self.stored[op] += self.size if lacks else 0
            self.start(op, f"ledger-start-{kind}", dest)
        else:
            back = f"{self.lab.dirs[w.source]}/user-{self.cid}"
            self.move(op, f"ledger-return-{kind}", dest, w.source, file=self.sc._user_data(dest),
                      to_file=back)
            self.probes[w.source].call({"op": "remove", "file": back})
        self.latency.setdefault(op, 0.0)
        return accept

    def central(self, meta: dict[str, Any], dest: str) -> bool:
        """Upload container + metadata to the cloud; the destination queries and evaluates;
        it pulls from the cloud, or the source re-runs the container from the cloud."""
        w, op, kind = self.w, f"central@{dest}", self.kind(dest)
        lacks = self.fresh(dest)
        cloud_file = f"{self.lab.dirs[w.cloud]}/{self.cid}-{dest}.tar"
        up = self.move(op, f"central-upload-{kind}", w.source, w.cloud, to_file=cloud_file)
        self.stored[op] = int(up["bytes"]) + self._metadata_bytes(("central",), lambda: self.step(
            op, f"central-metadata-{kind}", [(w.source, {"op": "put", "service": "central",
                                                         "meta": meta})]))
        accept = self.evaluate(op, f"central-evaluate-{kind}", dest, "central")
        if accept:
            self.move(op, f"central-pull-{kind}", w.cloud, dest, file=cloud_file)
            self.stored[op] += self.size if lacks else 0
            self.start(op, f"central-start-{kind}", dest)
        else:  # the source still holds the image's layers: loading stores nothing new
            self.move(op, f"central-rerun-pull-{kind}", w.cloud, w.source, file=cloud_file)
            self.start(op, f"central-rerun-start-{kind}", w.source)
        self.probes[w.cloud].call({"op": "remove", "file": cloud_file})
        return accept
