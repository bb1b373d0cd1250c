"""Cross-architecture cold migration on a deployed lab, through the node agents' phase RPCs.

    python scripts/crossarch_lab_migration.py inventory/armlab IMAGE_INDEX_REF --x86 edge1 \
        --jetson edge2

Starts the synthetic workload from the multi-architecture index on the x86 edge, reads its state
hash over HTTP, then migrates it x86 -> jetson -> x86 (stop, commit, push at the source; pull
at the destination, which re-bases the diff onto its platform's variant; run). After every hop
the state hash served by the workload and ``uname -m`` inside it are read again. A last hop with
an x86_64 executable copied into the state shows the refusal. Prints one JSON document.
Not part of the test suite: it needs a deployed lab.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import grpc

from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb
from agents.common.client import secure_channel
from agents.node.client import node_stub
from edgeferry.deploy.experiment import deployed_endpoints
from edgeferry.deploy.runner import inventory_name

NAME = "xarch"


def _get(ip: str, port: int, path: str) -> str:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=2) as r:
                return r.read().decode().strip()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("inventory", type=Path)
    parser.add_argument("image")
    parser.add_argument("--x86", default="edge1")
    parser.add_argument("--jetson", default="edge2")
    args = parser.parse_args()
    lab = inventory_name(args.inventory)
    endpoints = deployed_endpoints(args.inventory, ["node"])
    tls = endpoints.tls
    assert tls is not None
    addr = endpoints.of("node")
    nodes = {h: node_stub(secure_channel(a, tls.ca_cert, tls.cert, tls.key))
             for h, a in addr.items()}
    ip = {h: a.rsplit(":", 1)[0] for h, a in addr.items()}

    def run(host: str, image: str, ref: Any = None) -> int:
        req = npb.RunWorkloadRequest(spec=npb.WorkloadSpec(
            name=NAME, image=image, ports=[npb.PortBinding(container_port=8080)]))
        if ref is not None:
            req.ref.CopyFrom(ref)
        resp = nodes[host].RunWorkload(req, timeout=600)
        return next(p.host_port for p in resp.ports if p.container_port == 8080)

    def uname(host: str) -> str:
        return subprocess.run(["docker", "exec", f"ef-{lab}-{host}", "docker", "exec", NAME,
                               "uname", "-m"], capture_output=True, text=True,
                              check=True).stdout.strip()

    def hop(src: str, dst: str) -> dict[str, Any]:
        ref = npb.MigrationRef(migration_id=f"xarch-{uuid.uuid4().hex[:8]}", epoch=1)
        t0 = time.monotonic()
        nodes[src].StopContainer(npb.StopContainerRequest(ref=ref, name=NAME,
                                                          timeout_seconds=10), timeout=120)
        commit = nodes[src].CommitContainer(npb.CommitContainerRequest(
            ref=ref, name=NAME, repository="xarch"), timeout=600)
        push = nodes[src].PushImage(npb.PushImageRequest(ref=ref, image_ref=commit.image_ref),
                                    timeout=1800)
        t_pull = time.monotonic()
        try:
            pull = nodes[dst].PullImage(npb.PullImageRequest(
                ref=ref, image_ref=commit.image_ref, expected_digest=push.digest), timeout=1800)
        except grpc.RpcError as err:
            nodes[src].StartContainer(npb.StartContainerRequest(ref=ref, name=NAME), timeout=120)
            return {"from": src, "to": dst, "refused": err.details()}
        pull_s = time.monotonic() - t_pull
        nodes[src].RemoveWorkload(npb.RemoveWorkloadRequest(name=NAME), timeout=120)
        port = run(dst, pull.pinned_ref, ref)
        state = _get(ip[dst], port, "/state")
        return {"from": src, "to": dst, "pinned_ref": pull.pinned_ref, "pull_s": round(pull_s, 2),
                "pull_detail": pull.timing.detail, "state": state, "uname": uname(dst),
                "hop_to_first_response_s": round(time.monotonic() - t0, 2),
                "diff_bytes": commit.diff_bytes}

    for host in nodes:
        try:
            nodes[host].RemoveWorkload(npb.RemoveWorkloadRequest(name=NAME), timeout=120)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise
    port = run(args.x86, args.image)
    out: dict[str, Any] = {"start": {"host": args.x86, "state": _get(ip[args.x86], port,
                                                                     "/state"),
                                     "uname": uname(args.x86)}}
    out["hops"] = [hop(args.x86, args.jetson)]
    if "refused" not in out["hops"][0]:
        out["hops"].append(hop(args.jetson, args.x86))
    out["state_intact"] = all(h.get("state") == out["start"]["state"] for h in out["hops"])
    print(json.dumps(out["hops"], indent=1), file=sys.stderr)
    subprocess.run(["docker", "exec", f"ef-{lab}-{args.x86}", "docker", "exec", NAME, "cp",
                    "/bin/busybox", "/state/tool"], check=True)
    out["elf_hop"] = hop(args.x86, args.jetson)
    nodes[args.x86].RemoveWorkload(npb.RemoveWorkloadRequest(name=NAME), timeout=120)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
