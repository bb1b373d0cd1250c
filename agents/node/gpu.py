"""GPU count and use: NVML (nvidia-ml-py's ``pynvml``) on NVIDIA GPUs, jetson-stats on Jetsons.

`read_gpu` tries, in order: NVML (count, per-device memory total/used and utilisation; "used"
from NVML's v2 memory info where the driver has it, which leaves out the driver's own reservation
as nvidia-smi does, else v1, which counts it: ~615 MiB on an idle H200), then
jetson-stats' ``jtop`` (its service must run; the integrated GPU counts as one, its load and the
shared memory), then ``/etc/nv_tegra_release`` (a Jetson without jtop: count 1, use unknown).
Nothing found -> `NO_GPU` (count 0, ``source = "none"``, description ``"no gpu"``). The
libraries are passed in as modules so tests can give fakes; none is imported at module load.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GpuReading:
    """What the host's GPUs hold and do now; ``utilisation_percent`` -1 = not measured."""

    count: int
    source: str  # "nvml", "jtop", "tegra-release" or "none"
    description: str
    memory_total_bytes: int = 0
    memory_used_bytes: int = 0
    utilisation_percent: float = -1.0

    @property
    def present(self) -> bool:
        """True when the host has at least one GPU."""
        return self.count > 0


NO_GPU = GpuReading(0, "none", "no gpu")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _memory_info(nvml: Any, handle: Any) -> Any:
    """NVML's v2 memory info (used without the driver's reservation) where the driver has it."""
    version = getattr(nvml, "nvmlMemory_v2", None)
    if version is not None:
        with contextlib.suppress(Exception):
            return nvml.nvmlDeviceGetMemoryInfo(handle, version=version)
    return nvml.nvmlDeviceGetMemoryInfo(handle)


def read_nvml(nvml: Any) -> GpuReading | None:
    """Read every NVIDIA GPU through ``nvml`` (the ``pynvml`` module); None when NVML cannot
    start (no driver, no device). Utilisation is the mean of the devices' GPU utilisation."""
    try:
        nvml.nvmlInit()
    except Exception:
        return None
    try:
        count = int(nvml.nvmlDeviceGetCount())
        if count == 0:
            return None
        names, total, used, util = [], 0, 0, 0.0
        for i in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            names.append(_text(nvml.nvmlDeviceGetName(handle)))
            mem = _memory_info(nvml, handle)
            total += int(mem.total)
            used += int(mem.used)
            util += float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        return GpuReading(count, "nvml", "nvidia: " + ", ".join(names), total, used,
                          util / count)
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def read_jtop(jtop_module: Any) -> GpuReading | None:
    """Read a Jetson's integrated GPU through jetson-stats (``jtop`` module); None when its
    service is not running. Memory is the board's shared RAM (``board.memory['RAM']``, kB)."""
    try:
        with jtop_module.jtop(interval=0.5) as board:
            model = board.board.get("hardware", {}).get("Model", "Jetson")
            gpu: dict[str, Any] = board.gpu or {}
            first: dict[str, Any] = next(iter(gpu.values()), {})
            load = first.get("status", {}).get("load", -1.0)
            ram = board.memory.get("RAM", {})
            return GpuReading(1, "jtop", f"jetson: {model}", int(ram.get("tot", 0)) * 1024,
                              int(ram.get("used", 0)) * 1024, float(load))
    except Exception:
        return None


def _module(name: str) -> Any:
    with contextlib.suppress(Exception):
        return importlib.import_module(name)
    return None


def read_gpu(*, nvml: Any = None, jtop_module: Any = None,
             tegra_release: Path = Path("/etc/nv_tegra_release"),
             model_file: Path = Path("/proc/device-tree/model"),
             use_installed: bool = True) -> GpuReading:
    """The host's GPUs (module docstring). ``use_installed``: import pynvml / jtop when the
    corresponding argument is None (tests pass fakes and False)."""
    if nvml is None and use_installed:
        nvml = _module("pynvml")
    if nvml is not None and (reading := read_nvml(nvml)) is not None:
        return reading
    if jtop_module is None and use_installed and tegra_release.exists():
        jtop_module = _module("jtop")
    if jtop_module is not None and (reading := read_jtop(jtop_module)) is not None:
        return reading
    if tegra_release.exists():
        model = "Jetson"
        with contextlib.suppress(OSError):
            model = model_file.read_text().strip("\0\n ") or model
        return GpuReading(1, "tegra-release", f"jetson: {model}")
    return NO_GPU
