"""BloSM Figure 11 like the paper: one container migration for a client that moves, done three
ways on the emulated lab, with the four costs (latency, throughput, storage, bandwidth) of the
ledger and the central-cloud path each divided by the direct path's.

The lab (``experiments/labs/ledgerlab.yaml``): the PoA validator on the control host, ``nodes -
1`` peer identities over the three edges (`edgeferry.experiments.ledger_lab.LabLedger`), and a
``cloud`` host behind its own shaped link that runs the central metadata service and stores
uploaded containers. The source is ``source`` (edge1); each trial's destination is the
high-resource edge (``high``, x86 class) or, with probability ``1 - high_resource_share``, the
low-resource one (``low``, jetson class: 0.5 CPU, and a resident load that leaves it less free
memory than the container's size). Every destination self-evaluates (Algorithm 2) from its own
node agent's reading (GetResources over mTLS: FREE, and MAX minus the measured use), so the low
host refuses because it really lacks memory and CPU.

The container is a synthetic workload image of ``image_size_mb`` on the source. It moves as
``docker save`` -> mutual-TLS stream -> ``docker load`` (`agents.ledger.transfer`), the same
code on every path, and starts with ``docker run``. Per trial:

- **direct** (cost 1): the destination is known -- the high edge. The source sends the signed
  metadata to it (its metadata service), it self-evaluates, the container moves source ->
  destination and starts.
- **ledger**: when the client leaves, the source writes the metadata (Algorithm 1, 90 % of the
  nodes) -- ``ledger-broadcast``, timed on its own as background cost, not in the latency. At
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
- throughput: the busiest link's bytes (one direction of one host's link), which bounds how many
  such operations per second the network carries (every shaped link of this lab has the same
  rate); its inverse is the operations/s;
- storage: bytes the operation left stored: image layers newly stored on a host (``docker image
  inspect`` size where the host lacked the image), containers stored at the cloud, and metadata
  records (the destination's store, the cloud's, the validator and every replica).

The earlier metadata-only comparison (``ledger-decision``) stays as the labelled ablation.
"""

from __future__ import annotations

import random
import secrets
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeferry.experiments.registry import LedgerMigrationWorkload
from edgeferry.experiments.scenario import (
    PhaseResult,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.hosts import run

MB = 1_000_000
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
        """The most bytes one direction of one host's link carried."""
        return max((max(v) for v in self.links.values()), default=0)


def costs(paths: dict[str, dict[str, float]]) -> dict[str, float]:
    """Figure 11's four costs of ledger and central: each value / direct's (lower is better)."""
    out = {}
    direct = paths["direct"]
    for name in ("ledger", "central"):
        for cost in ("latency", "throughput", "storage", "bandwidth"):
            out[f"{cost}_cost_{name}"] = paths[name][cost] / max(direct[cost], 1e-9)
    return out


class LedgerMigration(Scenario):
    workload: LedgerMigrationWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        from edgeferry.experiments.ledger_lab import LabLedger
        from edgeferry.workspace import state_root

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
        ca_dir = (Path(ctx.endpoints.tls.ca_cert).parent if ctx.endpoints.tls is not None
                  else state_root() / "pki" / ctx.lab.name / "ca")
        if not (ca_dir / "ca.key").is_file():
            raise ScenarioUnavailable(f"no lab CA in {ca_dir}: run `edgeferry deploy -i "
                                      f"inventory/{ctx.lab.name}` first")
        self._ctx = ctx
        self._rng = random.Random(ctx.seed)
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
        from edgeferry.images.common import docker_client
        from edgeferry.images.synthetic import SyntheticRecipe, synthetic_image

        w = self.workload
        built = synthetic_image(SyntheticRecipe(total_bytes=w.image_size_mb * MB), log=ctx.log)
        conn = self.lab.connect(w.source)
        if conn.run(shlex.join(["docker", "image", "inspect", built.tag]), hide=True,
                    warn=True).exited != 0:
            ctx.log(f"ledger-migration: loading {built.tag} on {w.source}")
            remote = f"{self.lab.dirs[w.source]}/image.tar"
            with open(ctx.work_dir / "image.tar", "wb") as fh:
                for chunk in docker_client().images.get(built.tag).save(named=True):
                    fh.write(chunk)
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
        s["noop"] = {h: self._noop(h, p) for h, p in s["probes"].items()}
        ctx.log("ledger-migration: probe round trip without payload (subtracted): " + ", ".join(
            f"{h} {tx}/{rx} B" for h, (tx, rx) in s["noop"].items()))
        self._resident_load(s["probes"][w.low])
        self._sessions[index] = s
        return s

    def _noop(self, host: str, probe: Any) -> tuple[int, int]:
        from edgeferry.stats import median

        tx, rx = [], []
        for _ in range(5):
            before = self.lab.link_counters()
            probe.call({"op": "noop"})
            after = self.lab.link_counters()
            tx.append(after[host][0] - before[host][0])
            rx.append(after[host][1] - before[host][1])
        return round(median(tx)), round(median(rx))

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
        probes, noop = s["probes"], s["noop"]
        self._counter += 1
        high = self._rng.random() < float(params["high_resource_share"])
        dest = w.high if high else w.low
        cid = f"c{ctx.seed}-{self._counter:06d}-{time.time_ns() % 10**9}"
        size = self._image_size(w.source)
        meta = {"source_ip": lab.address(w.source), "container_id": cid, "total_size": size,
                "gpu_usage": 0, "cpu_usage": CPU_NEED, "type": w.app_type}
        phases: list[PhaseResult] = []
        traffic = {p: Traffic() for p in PATHS}
        stored = {p: 0 for p in PATHS}

        def step(path: str, name: str, calls: list[tuple[str, dict[str, Any]]],
                 timed: str | None = None) -> list[dict[str, Any]]:
            """Run probe commands in order, bytes to `path`; the phase time is the `timed`
            host's own ``wall_s`` (the last call's when None)."""
            ctx.progress(name)
            before = lab.link_counters()
            outs = []
            try:
                for host, cmd in calls:
                    outs.append(probes[host].call(cmd))
            except Exception as err:
                phases.append(PhaseResult(name, 0.0, outcome="failed",
                                          detail={"error": f"{type(err).__name__}: {err}"}))
                raise TrialFailed(f"{name}: {err}", phases) from err
            after = lab.link_counters()
            delta = {h: (after[h][0] - before[h][0], after[h][1] - before[h][1]) for h in after}
            for host, _cmd in calls:
                if host in noop:
                    tx, rx = delta[host]
                    delta[host] = (tx - noop[host][0], rx - noop[host][1])
            traffic[path].add(delta)
            timed_host = timed or calls[-1][0]
            wall = next((o["wall_s"] for (h, _c), o in zip(calls, outs, strict=True)
                         if h == timed_host and "wall_s" in o), 0.0)
            phases.append(PhaseResult(name, float(wall),
                                      bytes=sum(max(0, v[0]) for v in delta.values()),
                                      detail={"path": path, "hosts": [h for h, _ in calls]}))
            return outs

        def move(path: str, name: str, frm: str, to: str, *, image: bool = True,
                 file: str | None = None, to_file: str | None = None) -> dict[str, Any]:
            """One mTLS stream frm -> to (image or file; into docker load or a file)."""
            token = secrets.token_hex(16)
            # a port per transfer from a small range: a receiver a failed trial left listening
            # (until its accept timeout) never blocks the next one
            self._transfers += 1
            port = w.transfer_port + self._transfers % TRANSFER_PORTS
            recv: dict[str, Any] = {"op": "receive", "port": port, "token": token,
                                    "senders": [f"smf.{frm}"], "max_bytes": 2 * size + 10 * MB}
            if to_file:
                recv["file"] = to_file
            send: dict[str, Any] = {"op": "send", "address": lab.address(to), "port": port,
                                    "token": token}
            send.update({"image": self.image} if image and not file else {"file": file})
            outs = step(path, name, [(to, recv), (frm, send),
                                     (to, {"op": "received", "token": token})], timed=frm)
            return outs[1]

        def evaluate(path: str, name: str, host: str, service: str) -> bool:
            out = step(path, name, [(host, {"op": "read", "service": service,
                                            "container_id": cid, "resources": "node",
                                            "types": [w.app_type], "timeout": w.timeout_s})])[0]
            if not out.get("found"):
                raise TrialFailed(f"{name}: {host} found no metadata for {cid}", phases)
            phases[-1].detail.update({"accept": out["accept"], "reason": out["reason"],
                                      "free": out.get("free")})
            return bool(out["accept"])

        def start(path: str, name: str, host: str) -> None:
            step(path, name, [(host, {"op": "run", "image": self.image,
                                      "name": f"fig11-{cid}-{path}"})])

        def fresh(host: str) -> bool:
            """Remove the image where it is not the source's own (untimed); True: host lacks it."""
            if host != w.source:
                probes[host].call({"op": "remove", "image": self.image})
            return not self._has_image(host)

        store_before = lab.storage(s["net"])
        cloud_file = f"{lab.dirs[w.cloud]}/{cid}.tar"
        try:
            # ---- direct: known destination (the high edge)
            lacks = fresh(w.high)
            step("direct", "direct-metadata", [(w.source, {"op": "put", "service": "direct",
                                                          "meta": meta})])
            if not evaluate("direct", "direct-evaluate", w.high, "direct"):
                raise TrialFailed(f"the known destination {w.high} refused: "
                                  f"{phases[-1].detail}", phases)
            moved = move("direct", "direct-transfer", w.source, w.high)
            stored["direct"] += size if lacks else 0
            start("direct", "direct-start", w.high)
            self._cleanup(probes[w.high], w.high, f"fig11-{cid}-direct")
            store_mid = lab.storage(s["net"])
            stored["direct"] += store_mid["direct"] - store_before["direct"]

            # ---- ledger: broadcast when the client leaves (background), decide at arrival
            lacks = fresh(dest)
            lw = step("ledger", "ledger-broadcast", [(w.source, {
                "op": "ledger_write", "meta": meta, "quorum": w.quorum,
                "timeout": w.timeout_s})])[0]
            broadcast_s = float(lw["t90_s"])
            phases[-1].wall_s = broadcast_s
            phases[-1].detail.update({"background": True, "t100_s": lw.get("t100_s"),
                                      "confirmations": lw["confirmations"],
                                      "total_nodes": lw["total_nodes"]})
            if not lw["ok"]:
                raise TrialFailed(f"Algorithm 1 did not reach the quorum: {lw['reason']}",
                                  phases)
            ledger_accept = evaluate("ledger", "ledger-evaluate", dest, "replica")
            if ledger_accept:
                move("ledger", "ledger-transfer", w.source, dest)
                stored["ledger"] += size if lacks else 0
                start("ledger", "ledger-start", dest)
                self._cleanup(probes[dest], dest, f"fig11-{cid}-ledger")
            else:
                move("ledger", "ledger-return", dest, w.source, image=False,
                     file=self._user_data(dest), to_file=f"{lab.dirs[w.source]}/user-{cid}")
                probes[w.source].call({"op": "remove", "file": f"{lab.dirs[w.source]}/user-{cid}"})
            store_led = lab.storage(s["net"])
            stored["ledger"] += (store_led["ledger_validator"] + store_led["ledger_replicas"]
                                 - store_mid["ledger_validator"] - store_mid["ledger_replicas"])

            # ---- central: upload to the cloud, query, pull (accept) or re-run at the source
            lacks = fresh(dest)
            up = move("central", "central-upload", w.source, w.cloud, to_file=cloud_file)
            upload_s = float(up["wall_s"])
            step("central", "central-metadata", [(w.source, {"op": "put", "service": "central",
                                                            "meta": meta})])
            phases[-1].detail["part_of"] = "central-upload"
            stored["central"] += int(up["bytes"])
            central_accept = evaluate("central", "central-evaluate", dest, "central")
            if central_accept:
                move("central", "central-pull", w.cloud, dest, image=False, file=cloud_file)
                stored["central"] += size if lacks else 0
                start("central", "central-start", dest)
                self._cleanup(probes[dest], dest, f"fig11-{cid}-central")
            else:
                move("central", "central-rerun-pull", w.cloud, w.source, image=False,
                     file=cloud_file)
                start("central", "central-rerun-start", w.source)
                self._cleanup(probes[w.source], w.source, f"fig11-{cid}-central")
            probes[w.cloud].call({"op": "remove", "file": cloud_file})
            store_end = lab.storage(s["net"])
            stored["central"] += store_end["central"] - store_led["central"]
        except TrialFailed:
            raise
        except Exception as err:
            raise TrialFailed(f"{type(err).__name__}: {err}", phases) from err

        if ledger_accept != central_accept:
            raise TrialFailed(f"the ledger and the central path decided differently on {dest}",
                              phases)
        s["net"].items += 1
        latency = {p: sum(ph.wall_s for ph in phases if ph.detail.get("path") == p
                          and not ph.detail.get("background")) for p in PATHS}
        values = {p: {"latency": latency[p], "throughput": float(traffic[p].busiest),
                      "bandwidth": float(traffic[p].total), "storage": float(stored[p])}
                  for p in PATHS}
        metrics = costs(values)
        for p in PATHS:
            metrics[f"latency_s_{p}"] = latency[p]
            metrics[f"wire_mb_{p}"] = traffic[p].total / MB
        metrics["broadcast_s"] = broadcast_s
        metrics["upload_s"] = upload_s
        metrics["accept"] = 1.0 if ledger_accept else 0.0
        return TrialResult(phases=phases, metrics=metrics, detail={
            "destination": dest, "destination_high_resources": high, "accept": ledger_accept,
            "image": self.image, "image_bytes": size, "moved_bytes": moved["bytes"],
            "values": values, "links": {p: traffic[p].links for p in PATHS},
            "bytes_method": "bridge-side veth counters of every lab host (rx = sent, tx = "
                            "received), minus each probe command's SSH round trip",
            "timed": "on the acting host (monotonic), SSH excluded"})

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
