"""Check and measure arm64 workloads on a deployed lab with a jetson-class edge (issue 19).

    python scripts/measure_arm64_lab.py inventory/armlab --x86 edge1 --jetson edge2

1. every edge's node agent reports its architecture and workload platform (GetResources);
2. the synthetic and NMS images are built for amd64 and arm64 (cached), pushed to the lab
   registry from this machine's engine, and one OCI image index is written per image;
3. RunWorkload of each index on the x86 and the jetson edge: the node agent pulls its
   platform's variant; ``uname -m`` in the container and the image's architecture are read back
   through SSH, and the time from the RPC to the first HTTP answer is measured (the synthetic
   workload), N times each (`edgeferry.stats` medians).

Prints one JSON document. Not part of the test suite: it needs a deployed lab (minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from agents._proto.edgeferry.node.v1 import node_service_pb2 as npb
from agents.common.client import secure_channel
from agents.node.client import node_stub
from edgeferry.deploy.experiment import deployed_endpoints
from edgeferry.deploy.runner import inventory_name
from edgeferry.images.index_push import RegistryApi, publish_index
from edgeferry.images.multiarch import AMD64, ARM64
from edgeferry.images.nms import nms_image
from edgeferry.images.registry import trust_registry, untrust_registry
from edgeferry.images.synthetic import SyntheticRecipe, synthetic_image
from edgeferry.stats import median
from edgeferry.workspace import state_root


def _in_host(lab: str, host: str, *cmd: str) -> str:
    return subprocess.run(["docker", "exec", f"ef-{lab}-{host}", *cmd], capture_output=True,
                          text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("inventory", type=Path)
    parser.add_argument("--x86", default="edge1")
    parser.add_argument("--jetson", default="edge2")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lab = inventory_name(args.inventory)
    endpoints = deployed_endpoints(args.inventory, ["node", "ras"])
    tls = endpoints.tls
    assert tls is not None
    nodes = {h: node_stub(secure_channel(a, tls.ca_cert, tls.cert, tls.key))
             for h, a in endpoints.of("node").items()}
    out: dict[str, Any] = {"resources": {}}
    for host, stub in sorted(nodes.items()):
        r = stub.GetResources(npb.GetResourcesRequest(), timeout=30)
        out["resources"][host] = {"architecture": r.architecture, "platform": r.platform}

    builds: dict[str, dict[str, Any]] = {}
    for name, build in (("synthetic", lambda p: synthetic_image(SyntheticRecipe(), platform=p)),
                        ("nms", lambda p: nms_image(platform=p))):
        for plat in (AMD64, ARM64):
            started = time.monotonic()
            image = build(plat)
            builds.setdefault(name, {})[str(plat)] = {
                "tag": image.tag, "build_s": round(image.build_seconds, 2),
                "call_s": round(time.monotonic() - started, 2)}
    out["builds"] = builds

    # the registry runs on the control host (the RAS's host), port 5000
    address = next(iter(endpoints.of("ras").values())).rsplit(":", 1)[0] + ":5000"
    password = (state_root() / "state" / lab / "registry-password").read_text().strip()
    auth = {"username": "edgeferry", "password": password}
    trust_registry(address, Path(tls.ca_cert))
    import docker

    client = docker.from_env(timeout=600)
    published: dict[str, Any] = {}
    try:
        for name, per in builds.items():
            repo = per[str(AMD64)]["tag"].rpartition(":")[0]
            started = time.monotonic()
            for plat_s, info in per.items():
                tag = info["tag"].rpartition(":")[2]
                client.images.get(info["tag"]).tag(f"{address}/{repo}", tag)
                for line in client.api.push(f"{address}/{repo}", tag, auth_config=auth,
                                            stream=True, decode=True):
                    if "error" in line:
                        raise SystemExit(f"push {plat_s}: {line['error']}")
            api = RegistryApi(address, "edgeferry", password, Path(tls.ca_cert))
            index = publish_index(api, repo, "multi", {
                p: per[str(p)]["tag"].rpartition(":")[2] for p in (AMD64, ARM64)})
            published[name] = {**index.provenance(),
                               "push_and_index_s": round(time.monotonic() - started, 2)}
    finally:
        untrust_registry(address)
    out["published"] = published

    syn_ref = published["synthetic"]["reference"]
    runs: dict[str, Any] = {}
    for host in (args.x86, args.jetson):
        stub = nodes[host]
        first: list[float] = []
        for i in range(args.runs):
            name = f"arm64check-{i}"
            started = time.monotonic()
            resp = stub.RunWorkload(npb.RunWorkloadRequest(spec=npb.WorkloadSpec(
                name=name, image=syn_ref,
                ports=[npb.PortBinding(container_port=8080, host_port=0)])), timeout=600)
            port = next(p.host_port for p in resp.ports if p.container_port == 8080)
            ip = endpoints.of("node")[host].rsplit(":", 1)[0]
            while True:
                try:
                    with urllib.request.urlopen(f"http://{ip}:{port}/health", timeout=2) as r:
                        if r.read().strip() == b"ok":
                            break
                except OSError:
                    time.sleep(0.02)
            first.append(time.monotonic() - started)
            if i == 0:
                runs[host] = {
                    "uname": _in_host(lab, host, "docker", "exec", name, "uname", "-m"),
                    "image_arch": _in_host(lab, host, "docker", "inspect", "-f",
                                           "{{.Architecture}}", _in_host(
                                               lab, host, "docker", "inspect", "-f",
                                               "{{.Image}}", name)),
                    "first_run_includes_pull_s": round(first[0], 3)}
            stub.RemoveWorkload(npb.RemoveWorkloadRequest(name=name), timeout=60)
        runs[host]["start_to_first_response_s"] = [round(x, 3) for x in first]
        runs[host]["median_warm_s"] = round(median(first[1:]), 3) if len(first) > 1 else None
    out["runs"] = runs
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
