"""Device check (issue 16): the node agent reports an NVIDIA GPU's memory and utilisation.

Run on a host with an NVIDIA GPU and its driver (``nvidia-smi`` on the PATH)::

    python scripts/gpu_node_agent_check.py --out gpu-check.json [--load-seconds 25]

What is real: the node agent's server (``agents.common.server.AgentServer``, mTLS with a fresh
lab CA, NodeService's authorization table), its ``NodeCore`` and ``HostProbe`` and the GPU path
``agents.node.gpu.read_gpu`` -> nvidia-ml-py (``pynvml``) -> the driver. The caller is a
``controller`` client over mTLS, as ``edgeferry`` calls it; a caller of a role that the table
does not list for GetResources must be refused (PERMISSION_DENIED).

What is not: the lent GPU machines run no Docker engine, and the node agent asks its engine only
for its version, root directory, uplink interface and workload platform while answering
GetResources; ``NoDaemon`` answers those four from this machine. Nothing of the GPU reading goes
through it.

The independent expectation is ``nvidia-smi --query-gpu`` read right after each report. A load
(PyTorch: a held allocation of ``--hold-gib`` GiB and bf16 matrix products, in a child process)
runs between the idle reading and the last one, so the readings must move with it.
Exit status: 0 when every check holds, 1 when one fails, 2 when there is no NVIDIA GPU or no
PyTorch here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform as host_platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb  # noqa: E402
from agents.common.client import secure_channel  # noqa: E402
from agents.common.config import load_config  # noqa: E402
from agents.common.server import AgentServer  # noqa: E402
from agents.node.agent import add_node_service, build_core  # noqa: E402
from agents.node.client import node_stub  # noqa: E402
from edgeferry.pki import LabCA  # noqa: E402

MIB = 1024 * 1024
LOAD = r"""
import sys, time, torch
hold = torch.empty(int(float(sys.argv[1]) * (1 << 30)), dtype=torch.uint8, device="cuda")
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
print("loaded", flush=True)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    for _ in range(20):
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize()
"""


class NoDaemon:
    """The four engine answers GetResources needs, where no Docker engine runs (docstring)."""

    interface = ""
    platform = f"linux/{host_platform.machine()}"

    def version(self) -> str:
        return "none (no Docker engine on this machine)"

    def info(self) -> dict[str, Any]:
        return {"DockerRootDir": tempfile.gettempdir()}


def smi() -> dict[str, float]:
    """nvidia-smi's reading of GPU 0: memory in MiB, utilisation in percent."""
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,memory.used,utilization.gpu",
         "--format=csv,noheader,nounits", "-i", "0"],
        check=True, capture_output=True, text=True, timeout=30).stdout.strip()
    name, total, used, util = (x.strip() for x in out.split(","))
    return {"name": name, "memory_total_mib": float(total), "memory_used_mib": float(used),  # type: ignore[dict-item]
            "utilisation_percent": float(util)}


def reading(stub: Any) -> dict[str, Any]:
    r = stub.GetResources(pb.GetResourcesRequest(), timeout=30)
    return {"at": time.time(), "gpu": r.gpu, "gpu_count": r.max.gpu, "gpu_source": r.gpu_source,
            "memory_total_mib": r.gpu_memory_total_bytes / MIB,
            "memory_used_mib": r.gpu_memory_used_bytes / MIB,
            "utilisation_percent": r.gpu_utilisation_percent, "nvidia_smi": smi()}


def wait_for(stub: Any, ok: Any, seconds: float) -> dict[str, Any]:
    """Poll GetResources (the agent refreshes its GPU reading every few seconds) until ``ok``."""
    end = time.monotonic() + seconds
    last = reading(stub)
    while not ok(last) and time.monotonic() < end:
        time.sleep(0.5)
        last = reading(stub)
    return last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"))
    parser.add_argument("--load-seconds", type=float, default=25.0)
    parser.add_argument("--hold-gib", type=float, default=16.0)
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None:
        print("no nvidia-smi here: this check needs a host with an NVIDIA GPU", file=sys.stderr)
        return 2
    if importlib.util.find_spec("torch") is None:
        print("the GPU load needs PyTorch with CUDA (pip install torch)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="ef-gpu-"))
    ca = LabCA.create(work / "ca")
    node = ca.issue("node.gpuhost", work / "issued", dns_names=["localhost"],
                    ip_addresses=["127.0.0.1"])
    controller = ca.issue_client("controller", work / "issued")
    outsider = ca.issue_client("ledger-peer.gpuhost", work / "issued")
    config = load_config(None, {}, defaults={
        "name": "node", "listen_host": "127.0.0.1", "listen_port": 0,
        "data_dir": str(work / "data"), "grace_seconds": 1.0,
        "tls.ca_cert": str(ca.cert_path), "tls.cert": str(node.cert_path),
        "tls.key": str(node.key_path)})
    server = AgentServer(config)
    core = build_core(config, engine=NoDaemon())  # type: ignore[arg-type]
    add_node_service(server, core)
    core.host.start()
    server.start()
    target = f"127.0.0.1:{server.port}"
    checks: list[tuple[str, bool, str]] = []
    result: dict[str, Any] = {"host": host_platform.node()}
    load = None
    try:
        with secure_channel(target, ca.cert_path, controller.cert_path,
                            controller.key_path, "localhost") as channel:
            stub = node_stub(channel)
            idle = reading(stub)
            result["idle"] = idle
            if idle["gpu_source"] == "none":
                print(f"the node agent sees no GPU: {idle['gpu']}", file=sys.stderr)
            load = subprocess.Popen([sys.executable, "-c", LOAD, str(args.hold_gib),
                                     str(args.load_seconds)], stdout=subprocess.PIPE, text=True)
            assert load.stdout is not None
            load.stdout.readline()  # "loaded": the allocation is held, products are running
            hold_mib = args.hold_gib * 1024
            loaded = wait_for(stub, lambda r: r["memory_used_mib"] >= idle["memory_used_mib"]
                              + 0.9 * hold_mib and r["utilisation_percent"] >= 50,
                              args.load_seconds - 5)
            result["loaded"] = loaded
            load.wait(timeout=args.load_seconds + 60)
            after = wait_for(stub, lambda r: r["memory_used_mib"] < idle["memory_used_mib"]
                             + 0.1 * hold_mib, 30)
            result["after"] = after
        with secure_channel(target, ca.cert_path, outsider.cert_path, outsider.key_path,
                            "localhost") as channel:
            try:
                node_stub(channel).GetResources(pb.GetResourcesRequest(), timeout=30)
                denied = "answered"
            except grpc.RpcError as err:
                denied = err.code().name
        result["ledger_peer_get_resources"] = denied
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        server.stop(0)

    def near(ours: float, theirs: float, slack: float) -> bool:
        return abs(ours - theirs) <= slack

    for label in ("idle", "loaded", "after"):
        r = result[label]
        s = r["nvidia_smi"]
        checks.append((f"{label}: source nvml", r["gpu_source"] == "nvml", r["gpu_source"]))
        checks.append((f"{label}: total memory = nvidia-smi's",
                       near(r["memory_total_mib"], s["memory_total_mib"], 1.0),
                       f"{r['memory_total_mib']:.0f} vs {s['memory_total_mib']:.0f} MiB"))
        # both leave out the driver's reservation (agents.node.gpu reads NVML's v2 memory info)
        checks.append((f"{label}: used memory within 64 MiB of nvidia-smi's",
                       near(r["memory_used_mib"], s["memory_used_mib"], 64.0),
                       f"{r['memory_used_mib']:.0f} vs {s['memory_used_mib']:.0f} MiB"))
    rise = result["loaded"]["memory_used_mib"] - result["idle"]["memory_used_mib"]
    checks.append(("under load: used memory rose by the held allocation (>= 90 %)",
                   rise >= 0.9 * args.hold_gib * 1024, f"+{rise:.0f} MiB"))
    checks.append(("under load: utilisation >= 50 % (nvidia-smi >= 50 % too)",
                   result["loaded"]["utilisation_percent"] >= 50
                   and result["loaded"]["nvidia_smi"]["utilisation_percent"] >= 50,
                   f"{result['loaded']['utilisation_percent']:.0f} % vs "
                   f"{result['loaded']['nvidia_smi']['utilisation_percent']:.0f} %"))
    checks.append(("after the load: memory back within 10 % of the hold",
                   result["after"]["memory_used_mib"] - result["idle"]["memory_used_mib"]
                   < 0.1 * args.hold_gib * 1024,
                   f"{result['after']['memory_used_mib']:.0f} MiB"))
    checks.append(("a ledger-peer certificate is refused GetResources",
                   denied == "PERMISSION_DENIED", denied))
    result["checks"] = [{"check": c, "ok": ok, "seen": seen} for c, ok, seen in checks]
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{result['idle']['gpu']} ({result['idle']['gpu_count']} GPU, "
          f"source {result['idle']['gpu_source']})")
    print(f"{'reading':<8} {'used MiB':>9} {'smi MiB':>9} {'total MiB':>10} {'util %':>7} "
          f"{'smi %':>6}")
    for label in ("idle", "loaded", "after"):
        r = result[label]
        s = r["nvidia_smi"]
        print(f"{label:<8} {r['memory_used_mib']:>9.0f} {s['memory_used_mib']:>9.0f} "
              f"{r['memory_total_mib']:>10.0f} {r['utilisation_percent']:>7.1f} "
              f"{s['utilisation_percent']:>6.0f}")
    for c, ok, seen in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {c}: {seen}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
