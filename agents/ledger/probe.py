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
    {"op": "throughput", "service": "direct"|"central"|"ledger", "ops": 200, "concurrency": 8,
     "meta": {...}, "quorum": 0.9}                                        (source)

Times are ``time.monotonic()`` differences taken here, on the host that acts.  End of input
(or ``{"op": "quit"}``) ends the probe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
        mem, cpu, gpu, types = cmd["resources"]
        resources = NodeResources(int(mem), int(cpu), int(gpu), tuple(types))
        cid, service = cmd["container_id"], cmd["service"]
        deadline = time.monotonic() + float(cmd.get("timeout", 10))
        start = time.monotonic()
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
                "reason": ev.reason, "polls": polls}

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Run one command; its answer (without the ok_ flag)."""
        op = cmd.get("op")
        if op == "noop":
            return {}
        if op in ("put", "ledger_write", "throughput", "read"):
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
