"""Probe the host's resources: capacity (MAX) inside its limits, and measured use.

`HostProbe` holds what is read once (the cgroup limits, agents/node/hostlimits.py; the per-host
override from the inventory) and what is sampled in the background (CPU use,
agents/node/sampler.py; no request waits for a sample). MAX per dimension: override > the
cgroup's CPU quota / memory limit when tighter than the machine > the machine (cores, RAM);
storage = the Docker data filesystem; network = the configured uplink rate, else the NIC's speed;
GPUs = NVML / jetson-stats (agents/node/gpu.py). Measured use: CPU from the sampler (the cgroup's
``cpu.stat`` when the host is a limited container, else the machine's non-idle time), memory from
the cgroup's ``memory.current`` when memory is limited, else the machine's used RAM; GPU memory
and utilisation re-read at most every `GPU_REFRESH_S` seconds.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from agents.node.domain import Resources
from agents.node.gpu import NO_GPU, GpuReading, read_gpu
from agents.node.hostlimits import (
    Capacity,
    CapacityOverride,
    CgroupLimits,
    effective_capacity,
    read_limits,
)
from agents.node.sampler import CpuReading, CpuSampler, machine_cpu_seconds

GPU_REFRESH_S = 5.0


def nic_speed_bps(nic: str) -> int:
    """The NIC's link speed in bit/s (0 when unknown)."""
    stats = psutil.net_if_stats().get(nic)
    return int(stats.speed) * 1_000_000 if stats and stats.speed > 0 else 0


class HostProbe:
    """The host's MAX inside its limits and its measured use (module docstring)."""

    def __init__(self, *, cgroup_root: Path = Path("/sys/fs/cgroup"),
                 proc_self_cgroup: str | None = None,
                 override: CapacityOverride | None = None,
                 gpu: GpuReading | None = None,
                 gpu_reader: Callable[[], GpuReading] = read_gpu,
                 sample_interval: float = 1.0) -> None:
        self.limits: CgroupLimits = read_limits(cgroup_root, proc_self_cgroup)
        self.override = override
        self._gpu_reader = gpu_reader
        self._gpu = gpu if gpu is not None else gpu_reader()
        self._gpu_at = time.monotonic()
        self._gpu_lock = threading.Lock()
        counter, source = machine_cpu_seconds, "machine"
        try:
            if self.limits.cpu_usage_seconds() is not None:
                counter, source = self._cgroup_cpu_seconds, f"cgroup v{self.limits.version}"
        except ValueError:
            pass
        self.sampler = CpuSampler(counter, source=source, interval=sample_interval)

    def _cgroup_cpu_seconds(self) -> float:
        value = self.limits.cpu_usage_seconds()
        if value is None:
            raise OSError("cgroup CPU counter vanished")
        return value

    def start(self) -> HostProbe:
        """Start the background CPU sampler."""
        self.sampler.start()
        return self

    def stop(self) -> None:
        """Stop the background CPU sampler."""
        self.sampler.stop()

    def gpu(self) -> GpuReading:
        """The GPU reading, re-read when older than `GPU_REFRESH_S` (never when there is none)."""
        with self._gpu_lock:
            stale = time.monotonic() - self._gpu_at > GPU_REFRESH_S
            if self._gpu.present and self._gpu.source != "tegra-release" and stale:
                self._gpu = self._gpu_reader()
                self._gpu_at = time.monotonic()
            return self._gpu

    def capacity(self, storage_path: Path, nic: str, network_bps: int) -> Capacity:
        """MAX inside the limits, with where each dimension came from."""
        return effective_capacity(
            machine_cpus=psutil.cpu_count() or 1,
            machine_memory=psutil.virtual_memory().total,
            storage_bytes=psutil.disk_usage(str(storage_path)).total,
            network_bps=network_bps or nic_speed_bps(nic),
            gpu=self._gpu.count,
            limits=self.limits,
            override=self.override,
        )

    def cpu(self) -> CpuReading:
        """The last background CPU reading and its age (never blocks)."""
        return self.sampler.latest()

    def memory_used(self) -> int:
        """Bytes in use: the cgroup's when memory is limited there, else the machine's."""
        if self.limits.memory_bytes is not None:
            current = self.limits.memory_current()
            if current is not None:
                return current
        vm = psutil.virtual_memory()
        return int(vm.total - vm.available)

    def measured_use(self, storage_path: Path) -> Resources:
        """What is in use now: CPU (last sample), memory, storage, GPUs busy (none counted)."""
        return Resources(
            cpu_millicores=self.cpu().millicores,
            memory_bytes=self.memory_used(),
            storage_bytes=psutil.disk_usage(str(storage_path)).used,
        )


def static_probe(gpu: GpuReading = NO_GPU) -> HostProbe:
    """A probe that reads no cgroup (tests and hosts without one): machine MAX, no GPU."""
    return HostProbe(cgroup_root=Path("/nonexistent-cgroup"), proc_self_cgroup="0::/\n",
                     gpu=gpu)


def capacity_resources(cap: Capacity) -> Resources:
    """`Capacity` -> node `Resources` (the same five amounts)."""
    return Resources(cap.cpu_millicores, cap.memory_bytes, cap.storage_bytes, cap.network_bps,
                     cap.gpu)


def architecture() -> str:
    """The CPU architecture (e.g. x86_64, aarch64)."""
    return platform.machine()


def hostname() -> str:
    """This host's name."""
    return platform.node()
