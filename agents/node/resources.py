"""Probe the host's resources: capacity (MAX) and measured use, with psutil and Docker.

GPU: ``nvidia-smi -L`` when present (discrete NVIDIA GPUs), otherwise jetson-stats' ``jtop``
when it is installed and its service runs, otherwise ``/etc/nv_tegra_release`` (a Jetson
whose integrated GPU counts as one), otherwise "none".
"""

from __future__ import annotations

import contextlib
import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from agents.node.domain import Resources

Runner = Callable[[list[str]], str]


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    return proc.stdout if proc.returncode == 0 else ""


@dataclass(frozen=True)
class GpuInfo:
    count: int
    description: str


def probe_gpu(run: Runner = _run, which: Callable[[str], str | None] = shutil.which,
              tegra_release: Path = Path("/etc/nv_tegra_release")) -> GpuInfo:
    if which("nvidia-smi"):
        names = [line.split(":", 1)[1].split("(")[0].strip()
                 for line in run(["nvidia-smi", "-L"]).splitlines() if ":" in line]
        if names:
            return GpuInfo(len(names), "nvidia: " + ", ".join(names))
    with contextlib.suppress(Exception):  # jtop raises its own errors when the service is down
        from jtop import jtop

        with jtop(interval=0.5) as board:
            model = board.board.get("hardware", {}).get("Model", "Jetson")
            return GpuInfo(1, f"jetson: {model}")
    if tegra_release.exists():
        model = "Jetson"
        with contextlib.suppress(OSError):
            model = Path("/proc/device-tree/model").read_text().strip("\0\n ") or model
        return GpuInfo(1, f"jetson: {model}")
    return GpuInfo(0, "none")


def nic_speed_bps(nic: str) -> int:
    stats = psutil.net_if_stats().get(nic)
    return int(stats.speed) * 1_000_000 if stats and stats.speed > 0 else 0


def capacity(storage_path: Path, nic: str, network_bps: int, gpu: GpuInfo) -> Resources:
    """MAX: all cores, all memory, the storage of the Docker data filesystem, the uplink."""
    return Resources(
        cpu_millicores=(psutil.cpu_count() or 1) * 1000,
        memory_bytes=psutil.virtual_memory().total,
        storage_bytes=psutil.disk_usage(str(storage_path)).total,
        network_bps=network_bps or nic_speed_bps(nic),
        gpu=gpu.count,
    )


def measured_use(storage_path: Path) -> Resources:
    """What is in use right now (CPU over a short sample, memory, storage)."""
    cores = psutil.cpu_count() or 1
    return Resources(
        cpu_millicores=int(psutil.cpu_percent(interval=0.1) * cores * 10),
        memory_bytes=psutil.virtual_memory().total - psutil.virtual_memory().available,
        storage_bytes=psutil.disk_usage(str(storage_path)).used,
    )


def architecture() -> str:
    return platform.machine()


def hostname() -> str:
    return platform.node()
