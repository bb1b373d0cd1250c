"""The ledger probe: the source's and the destination's side of a BloSM decision, on a lab host.

``python -m agents.ledger.probe probe.json``, run on an edge host with the deployed agents'
interpreter (``<venv>/bin/python``, the venv the host's deployment manifest names: the agents
wheel is installed there) by `edgeferry.experiments.ledger_lab`.  It opens its mTLS channels
once (addresses and TLS files from the JSON config), then answers one JSON command per stdin
line with one JSON line on stdout, so the controller can read the hosts' interface counters
between commands without counting channel set-up::

    {"op": "noop"}
    {"op": "put", "service": "direct"|"central", "meta": {...}}           (source)
    {"op": "ledger_write", "meta": {...}, "quorum": 0.9, "timeout": 10}   (source, Algorithm 1)
    {"op": "read", "service": "direct"|"central"|"replica", "container_id": "...",
     "resources": [mem, millicores, milligpu, [types]], "timeout": 10}     (destination, Alg. 2)
     ("resources": "node" with "types": [...]: the host's node agent's reading, see below)
    {"op": "throughput", "service": "direct"|"central"|"ledger", "ops": 200, "concurrency": 8,
     "meta": {...}, "quorum": 0.9}                                        (source)

Figure 11 with a real container (`edgeferry.experiments.scenarios.ledger_migration`; image
streams over mutual TLS, `agents.ledger.transfer`):

    {"op": "receive", "port": p, "token": t, "senders": ["smf.edge1"], "max_bytes": n,
     "file": "<path>"}          (listen once; without "file" the stream goes to docker load)
    {"op": "received", "token": t, "timeout": 600}      (that transfer's outcome)
    {"op": "send", "address": a, "port": p, "token": t, "image": "<ref>" | "file": "<path>"}
    {"op": "run", "image": "<ref>", "name": "<container>"}    (docker run -d, until running)
    {"op": "remove", "name": "<container>", "image": "<ref>", "file": "<path>"}  (each optional)
    {"op": "resources"}         (the host's node agent: FREE, and MAX minus measured use)
    {"op": "ballast", "bytes": n}   (hold n bytes of touched memory in this process; 0 frees)

Times are ``time.monotonic()`` differences taken here, on the host that acts.  End of input
(or ``{"op": "quit"}``) ends the probe.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.common.client import secure_channel
from agents.ledger.client import (
    CentralClient,
    ContainerMetadata,
    LedgerClient,
    NodeResources,
    ReplicaReader,
)
from agents.ledger.decisions import self_evaluate
from agents.ledger.transfer import Receiver, Tls, send


def _metadata(doc: dict[str, Any], suffix: str = "") -> ContainerMetadata:
    return ContainerMetadata(source_ip=doc["source_ip"], container_id=doc["container_id"] + suffix,
                             total_size=int(doc["total_size"]), gpu_usage=int(doc["gpu_usage"]),
                             cpu_usage=int(doc["cpu_usage"]), type=doc["type"])


class Probe:
    """The clients of one probe process, and one method per command."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        tls = cfg["tls"]
        self.channels: dict[str, Any] = {}

        def chan(name: str) -> Any:
            self.channels[name] = secure_channel(cfg[name], tls["ca_cert"], tls["cert"],
                                                 tls["key"])
            return self.channels[name]

        self.tls = Tls(tls["ca_cert"], tls["cert"], tls["key"])
        self.address = str(cfg.get("address", "127.0.0.1"))
        self.receivers: dict[str, Receiver] = {}
        self.ballast_block = bytearray()
        self.node: Any = None
        if cfg.get("node"):
            from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as npb_grpc

            self.node = npb_grpc.NodeServiceStub(chan("node"))
        key = Ed25519PrivateKey.generate()
        node = cfg.get("node_id", "probe")
        self.ledger = LedgerClient(chan("validator"), node, key) if cfg.get("validator") else None
        self.direct = CentralClient(chan("direct"), node, key) if cfg.get("direct") else None
        self.central = CentralClient(chan("central"), node, key) if cfg.get("central") else None
        self.replica = (ReplicaReader(chan("replica"), cfg["replica_peer"])
                        if cfg.get("replica") else None)
        # warm every channel (TLS handshake, HTTP/2 settings) before any command is timed
        if self.ledger is not None:
            self.ledger.register()
            self.ledger.total_nodes()
        for client in (self.direct, self.central):
            if client is not None:
                client.get("probe-warm-up")
        if self.replica is not None:
            self.replica.metadata("probe-warm-up")

    # -- source ---------------------------------------------------------------------------
    def put(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Source: one signed upload to the direct or the central service."""
        client = self.direct if cmd["service"] == "direct" else self.central
        assert client is not None, f"no {cmd['service']} address in the probe's config"
        meta = _metadata(cmd["meta"])
        start = time.monotonic()
        client.put(meta)
        return {"wall_s": time.monotonic() - start}

    def ledger_write(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Source: Algorithm 1 (t90), then (unless wait_all is false) until all confirmed (t100)."""
        assert self.ledger is not None, "no validator address in the probe's config"
        meta = _metadata(cmd["meta"])
        timeout = float(cmd.get("timeout", 10))
        start = time.monotonic()
        result = self.ledger.write_and_wait(meta, quorum=float(cmd.get("quorum", 0.9)),
                                            timeout=timeout)
        t90 = time.monotonic() - start
        out = {"ok": result.ok, "reason": result.reason, "t90_s": t90,
               "confirmations": result.confirmations, "total_nodes": result.total_nodes,
               "required": result.required, "tx_id": result.tx_id}
        if result.ok and cmd.get("wait_all", True):
            # keep asking (long-poll) until every node confirmed: time to 100 %
            total = result.total_nodes
            got = result.confirmations
            deadline = start + timeout
            while got < total and time.monotonic() < deadline:
                got = self.ledger.confirmations(result.tx_id, at_least=total,
                                                wait_s=max(0.05, deadline - time.monotonic()))
            out["confirmations_all"] = got
            out["t100_s"] = time.monotonic() - start if got >= total else None
        return out

    def throughput(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Source: `ops` writes over `concurrency` threads (ledger: until propagated too)."""
        service, ops = cmd["service"], int(cmd["ops"])
        base = cmd["meta"]
        quorum = float(cmd.get("quorum", 0.9))
        last: dict[str, Any] = {}

        def one(i: int) -> None:
            meta = _metadata(base, f"-{i:05d}")
            if service == "ledger":
                assert self.ledger is not None
                result = self.ledger.write_and_wait(meta, quorum=quorum, timeout=30)
                if not result.ok:
                    raise RuntimeError(f"ledger write {i}: {result.reason}")
                last[result.tx_id] = result.total_nodes
            else:
                client = self.direct if service == "direct" else self.central
                assert client is not None
                client.put(meta)

        start = time.monotonic()
        with ThreadPoolExecutor(int(cmd.get("concurrency", 8))) as pool:
            list(pool.map(one, range(ops)))
        elapsed = time.monotonic() - start
        out: dict[str, Any] = {"ops": ops, "elapsed_s": elapsed, "ops_s": ops / elapsed}
        if service == "ledger" and last:
            # let the propagation finish so its bytes fall inside the measured window
            assert self.ledger is not None
            settled = all(self.ledger.confirmations(tx, at_least=total, wait_s=30) >= total
                          for tx, total in last.items())
            out["settled_s"] = time.monotonic() - start
            out["settled"] = settled
        return out

    # -- destination ------------------------------------------------------------------------
    def read(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Destination: poll until the metadata is readable, then Algorithm 2 on it."""
        cid, service = cmd["container_id"], cmd["service"]
        deadline = time.monotonic() + float(cmd.get("timeout", 10))
        start = time.monotonic()
        free: dict[str, Any] | None = None
        if cmd["resources"] == "node":  # the host's own reading, inside the timed window
            free = self.resources({})
            resources = NodeResources(int(free["free_memory"]), int(free["free_cpu"]),
                                      int(free["free_gpu"]), tuple(cmd.get("types", ())))
        else:
            mem, cpu, gpu, types = cmd["resources"]
            resources = NodeResources(int(mem), int(cpu), int(gpu), tuple(types))
        polls = 0
        while True:
            polls += 1
            if service == "replica":
                assert self.replica is not None, "no replica address in the probe's config"
                tx = self.replica.metadata(cid)
                meta = None if tx is None else tx.metadata
            else:
                client = self.direct if service == "direct" else self.central
                assert client is not None
                meta = client.get(cid)
            if meta is not None or time.monotonic() > deadline:
                break
            time.sleep(0.001)
        if meta is None:
            return {"found": False, "wall_s": time.monotonic() - start, "polls": polls}
        ev = self_evaluate(meta, resources)
        return {"found": True, "wall_s": time.monotonic() - start, "accept": ev.accept,
                "reason": ev.reason, "polls": polls, "free": free}

    # -- Figure 11 with a real container ---------------------------------------------------
    def receive(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Listen once for an image stream (to ``docker load`` or a file)."""
        token = str(cmd["token"])
        if token in self.receivers:
            raise ValueError("that token was used already")
        self.receivers[token] = Receiver(
            self.address, int(cmd["port"]), self.tls, token, tuple(cmd["senders"]),
            int(cmd["max_bytes"]), sink_file=cmd.get("file")).start()
        return {"listening": True}

    def received(self, cmd: dict[str, Any]) -> dict[str, Any]:
        return self.receivers[str(cmd["token"])].wait(float(cmd.get("timeout", 600)))

    def send(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Stream an image (docker save) or a file to a listening probe; timed here."""
        start = time.monotonic()
        out = send(str(cmd["address"]), int(cmd["port"]), self.tls, str(cmd["token"]),
                   image=cmd.get("image"), path=cmd.get("file"))
        return {**out, "wall_s": time.monotonic() - start}

    def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """``docker run -d`` the image, then wait until the container is running."""
        start = time.monotonic()
        name = str(cmd["name"])
        subprocess.run(["docker", "run", "-d", "--name", name, str(cmd["image"])],
                       check=True, capture_output=True, timeout=300)
        while True:
            state = subprocess.run(["docker", "inspect", "-f", "{{.State.Status}}", name],
                                   check=True, capture_output=True, text=True, timeout=60)
            if state.stdout.strip() == "running":
                break
            if state.stdout.strip() in ("exited", "dead") or time.monotonic() - start > 120:
                raise RuntimeError(f"container {name} is {state.stdout.strip()}")
            time.sleep(0.02)
        return {"wall_s": time.monotonic() - start}

    def remove(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Remove what a trial left (container, image, stored file); each optional."""
        if cmd.get("name"):
            subprocess.run(["docker", "rm", "-f", str(cmd["name"])], capture_output=True,
                           timeout=120, check=False)
        if cmd.get("image"):
            subprocess.run(["docker", "rmi", str(cmd["image"])], capture_output=True,
                           timeout=120, check=False)
        if cmd.get("file"):
            Path(str(cmd["file"])).unlink(missing_ok=True)
        return {}

    def resources(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """The host's node agent (GetResources over mTLS): Algorithm 2's free memory is the
        smaller of FREE (MAX - reserved) and MAX minus the measured use."""
        from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb

        if self.node is None:
            raise ValueError("no node agent address in the probe's config")
        r = self.node.GetResources(npb.GetResourcesRequest(), timeout=10)
        free_mem = min(r.free.memory_bytes, r.max.memory_bytes - r.measured_used.memory_bytes)
        free_cpu = min(r.free.cpu_millicores,
                       r.max.cpu_millicores - r.measured_used.cpu_millicores)
        return {"free_memory": max(0, free_mem), "free_cpu": max(0, free_cpu),
                "free_gpu": int(r.free.gpu) * 1000, "max_memory": r.max.memory_bytes,
                "used_memory": r.measured_used.memory_bytes, "limits": r.limits}

    def ballast(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Hold `bytes` of memory, every page written (a resident load on this host)."""
        n = int(cmd["bytes"])
        self.ballast_block = bytearray()
        if n > 0:
            block = bytearray(n)
            for i in range(0, n, 4096):
                block[i] = 1
            self.ballast_block = block
        return {"held": len(self.ballast_block)}

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Run one command; its answer (without the ok_ flag)."""
        op = cmd.get("op")
        if op == "noop":
            return {}
        if op in ("put", "ledger_write", "throughput", "read", "receive", "received", "send",
                  "run", "remove", "resources", "ballast"):
            return getattr(self, op)(cmd)  # type: ignore[no-any-return]
        raise ValueError(f"unknown op {op!r}")

    def close(self) -> None:
        """Close every channel."""
        for ch in self.channels.values():
            ch.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the probe with the config file named on the command line until end of input."""
    parser = argparse.ArgumentParser(
        prog="python -m agents.ledger.probe",
        description="Answer ledger probe commands (JSON lines on stdin) for the lab controller.")
    parser.add_argument("config", help="JSON file: tls, node_id and the services' addresses")
    args = parser.parse_args(argv)
    with open(args.config) as fh:
        cfg = json.load(fh)
    try:
        probe = Probe(cfg)
    except Exception as err:  # the controller reads this line and stops
        print(json.dumps({"ready": False, "error": f"{type(err).__name__}: {err}"}), flush=True)
        return 1
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("op") == "quit":
                break
            try:
                out = {"ok_": True, **probe.handle(cmd)}
            except Exception as err:
                out = {"ok_": False, "error": f"{type(err).__name__}: {err}"[:500]}
            print(json.dumps(out), flush=True)
    finally:
        probe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
