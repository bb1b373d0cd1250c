"""GPU readings from NVML / jetson-stats fakes, and the background CPU sampler."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agents.node.gpu import NO_GPU, read_gpu
from agents.node.sampler import CpuSampler


class FakeNvml:
    """pynvml's calls for two devices (A: 40 GiB, 10 GiB used, 30 %; B: 40 GiB, 0, 50 %)."""

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA H100" if h == 0 else b"NVIDIA A100"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(total=40 * 2**30, used=10 * 2**30 if h == 0 else 0)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=30 if h == 0 else 50, memory=1)


def test_nvml_reading(tmp_path: Path) -> None:
    nvml = FakeNvml()
    r = read_gpu(nvml=nvml, tegra_release=tmp_path / "absent", use_installed=False)
    assert (r.count, r.source) == (2, "nvml")
    assert r.memory_total_bytes == 80 * 2**30 and r.memory_used_bytes == 10 * 2**30
    assert r.utilisation_percent == 40.0
    assert r.description == "nvidia: NVIDIA H100, NVIDIA A100"
    assert nvml.shutdowns == 1


class FakeNvmlV2(FakeNvml):
    """A driver with v2 memory info: device A's 10 GiB "used" (v1) holds 512 MiB reserved by
    the driver, which v2 leaves out; ``v2_works`` False: the driver refuses v2 (old driver)."""

    nvmlMemory_v2 = 0x2000028

    def __init__(self, v2_works: bool = True) -> None:
        super().__init__()
        self.v2_works = v2_works

    def nvmlDeviceGetMemoryInfo(self, h: int, version: int | None = None) -> Any:
        if version is None:
            return super().nvmlDeviceGetMemoryInfo(h)
        if not self.v2_works:
            raise RuntimeError("Function Not Found")
        assert version == self.nvmlMemory_v2
        reserved = 512 * 2**20
        v1_used = 10 * 2**30 if h == 0 else reserved
        return SimpleNamespace(total=40 * 2**30, reserved=reserved, used=v1_used - reserved)


def test_nvml_used_memory_leaves_out_the_driver_reservation_where_v2_exists(
        tmp_path: Path) -> None:
    r = read_gpu(nvml=FakeNvmlV2(), tegra_release=tmp_path / "absent", use_installed=False)
    assert r.memory_used_bytes == 10 * 2**30 - 512 * 2**20
    old = read_gpu(nvml=FakeNvmlV2(v2_works=False), tegra_release=tmp_path / "absent",
                   use_installed=False)
    assert old.memory_used_bytes == 10 * 2**30 and old.memory_total_bytes == 80 * 2**30


def test_no_gpu_is_zero_with_a_marker(tmp_path: Path) -> None:
    r = read_gpu(nvml=FakeNvml(fail_init=True), tegra_release=tmp_path / "absent",
                 use_installed=False)
    assert r == NO_GPU and r.count == 0 and r.description == "no gpu" and not r.present


class FakeBoard:
    def __init__(self) -> None:
        self.board = {"hardware": {"Model": "NVIDIA Jetson AGX Xavier"}}
        self.gpu = {"gpu": {"status": {"load": 12.5}}}
        self.memory = {"RAM": {"tot": 1536 * 1024, "used": 512 * 1024}}  # kB

    def __enter__(self) -> FakeBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_jetson_reading_through_jtop(tmp_path: Path) -> None:
    jtop_module = SimpleNamespace(jtop=lambda interval: FakeBoard())
    r = read_gpu(nvml=FakeNvml(fail_init=True), jtop_module=jtop_module,
                 tegra_release=tmp_path / "absent", use_installed=False)
    assert (r.count, r.source, r.utilisation_percent) == (1, "jtop", 12.5)
    assert r.memory_total_bytes == 1536 * 2**20 and r.memory_used_bytes == 512 * 2**20


def test_jetson_without_jtop_counts_one_gpu(tmp_path: Path) -> None:
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R35 (release)\n")
    model = tmp_path / "model"
    model.write_text("Jetson Nano\0")
    r = read_gpu(tegra_release=release, model_file=model, use_installed=False)
    assert (r.count, r.source, r.description, r.utilisation_percent) == (
        1, "tegra-release", "jetson: Jetson Nano", -1.0)


def test_sampler_rate_and_age_without_blocking() -> None:
    now = [100.0]
    used = [10.0]
    s = CpuSampler(lambda: used[0], source="cgroup", clock=lambda: now[0])
    assert s.latest().age_s == -1.0  # nothing yet
    s.sample()
    now[0], used[0] = 102.0, 11.0  # 1 CPU second in 2 s = half a core
    s.sample()
    now[0] = 103.5
    r = s.latest()
    assert (r.millicores, r.age_s, r.source) == (500, 1.5, "cgroup")
    now[0], used[0] = 104.0, 11.0  # idle for 0.5 s
    s.sample()
    assert s.latest().millicores == 0
