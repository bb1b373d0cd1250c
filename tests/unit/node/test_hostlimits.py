"""cgroup parsing and the node's MAX inside its limits, on sample cgroup trees (fake roots)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.node import hostlimits as hl

GIB = 1024**3


def test_cpu_max_quota_over_period_in_millicores() -> None:
    # docker --cpus 0.5 writes "50000 100000"; --cpus 1.5 "150000 100000"
    assert hl.parse_cpu_max("50000 100000\n") == 500
    assert hl.parse_cpu_max("150000 100000") == 1500
    assert hl.parse_cpu_max("25000 50000") == 500
    assert hl.parse_cpu_max("max 100000\n") is None


@pytest.mark.parametrize("text", ["", "50000", "x 100000", "50000 0", "50000 y", "1 2 3"])
def test_cpu_max_garbage_is_refused(text: str) -> None:
    with pytest.raises(hl.CgroupFormatError):
        hl.parse_cpu_max(text)


def test_memory_max_and_v1_no_limit() -> None:
    assert hl.parse_memory_max("1610612736\n") == 1536 * 1024 * 1024  # docker --memory 1.5g
    assert hl.parse_memory_max("max\n") is None
    assert hl.parse_memory_max("9223372036854771712") is None  # v1 "unlimited"
    with pytest.raises(hl.CgroupFormatError):
        hl.parse_memory_max("1.5G")


def test_v1_cfs_quota() -> None:
    assert hl.parse_cfs("-1\n", "100000\n") is None
    assert hl.parse_cfs("200000", "100000") == 2000


def test_cpu_stat_usage() -> None:
    text = "usage_usec 123456789\nuser_usec 100\nsystem_usec 23\n"
    assert hl.parse_cpu_stat_usage(text) == 123456789
    with pytest.raises(hl.CgroupFormatError):
        hl.parse_cpu_stat_usage("user_usec 1\n")


def test_own_cgroup_versions() -> None:
    assert hl.own_cgroup("0::/system.slice/edgeferry-node.service\n")[:2] == (
        2, "/system.slice/edgeferry-node.service")
    v1 = "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n"
    version, _, ctrl = hl.own_cgroup(v1)
    assert version == 1 and ctrl["memory"] == "/docker/abc" and ctrl["cpuacct"] == "/docker/abc"


def _v2_tree(root: Path, *, top: tuple[str, str], leaf: tuple[str, str] | None) -> None:
    """A container's namespace root with docker's limits and a systemd service below it."""
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "cpu.max").write_text(top[0])
    (root / "memory.max").write_text(top[1])
    # the whole host container: every service of the host counts here
    (root / "memory.current").write_text("1073741824\n")
    (root / "cpu.stat").write_text("usage_usec 90000000\nuser_usec 60000000\n")
    leaf_dir = root / "system.slice" / "edgeferry-node.service"
    leaf_dir.mkdir(parents=True)
    (leaf_dir / "cpu.max").write_text(leaf[0] if leaf else "max 100000\n")
    (leaf_dir / "memory.max").write_text(leaf[1] if leaf else "max\n")
    (leaf_dir / "memory.current").write_text("734003200\n")
    (leaf_dir / "cpu.stat").write_text("usage_usec 5000000\nuser_usec 4000000\n")


SELF = "0::/system.slice/edgeferry-node.service\n"


def test_jetson_class_container_limits_bind_from_the_parent(tmp_path: Path) -> None:
    # docker --cpus 0.5 --memory 1536m on the container; the service itself is unlimited
    _v2_tree(tmp_path, top=("50000 100000\n", "1610612736\n"), leaf=None)
    limits = hl.read_limits(tmp_path, SELF)
    assert (limits.version, limits.cpu_millicores, limits.memory_bytes) == (2, 500, 1610612736)
    assert limits.cgroup_dir == tmp_path / "system.slice" / "edgeferry-node.service"
    # use is the host's (the limited container's cgroup), not the agent service's alone
    assert limits.memory_current() == 1073741824
    assert limits.cpu_usage_seconds() == 90.0


def test_the_tighter_of_parent_and_own_limit_wins(tmp_path: Path) -> None:
    _v2_tree(tmp_path, top=("100000 100000\n", "3221225472\n"),
             leaf=("max 100000\n", "2147483648\n"))
    limits = hl.read_limits(tmp_path, SELF)
    assert (limits.cpu_millicores, limits.memory_bytes) == (1000, 2 * GIB)
    # memory binds at the service (its own 2 GiB under the container's 3): its counter;
    # CPU binds at the container: the container's counter
    assert limits.memory_current() == 734003200
    assert limits.cpu_usage_seconds() == 90.0


def test_no_limit_anywhere_leaves_usage_to_the_machine(tmp_path: Path) -> None:
    _v2_tree(tmp_path, top=("max 100000\n", "max\n"), leaf=None)
    limits = hl.read_limits(tmp_path, SELF)
    assert (limits.cpu_millicores, limits.memory_bytes) == (None, None)
    assert limits.memory_current() is None and limits.cpu_usage_seconds() is None


def test_no_cgroup_filesystem_means_no_limits(tmp_path: Path) -> None:
    assert hl.read_limits(tmp_path, "0::/\n") == hl.CgroupLimits()


def test_v1_tree(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu" / "docker" / "abc"
    mem = tmp_path / "memory" / "docker" / "abc"
    cpu.mkdir(parents=True)
    mem.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("150000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (mem / "memory.limit_in_bytes").write_text(str(3 * GIB))
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    limits = hl.read_limits(tmp_path, "4:memory:/docker/abc\n3:cpu:/docker/abc\n")
    assert (limits.version, limits.cpu_millicores, limits.memory_bytes) == (1, 1500, 3 * GIB)


def test_v1_lab_host_reads_the_containers_counters_below_a_service(tmp_path: Path) -> None:
    """What a lab host shows (cgroup v1, cpu and cpuacct co-mounted): the node agent's service
    cgroup under the container's; the counters are the container's."""
    box = "docker/2597e2ed"
    svc = f"{box}/system.slice/edgeferry-node.service"
    for ctrl in ("cpu,cpuacct", "memory"):
        (tmp_path / ctrl / svc).mkdir(parents=True)
    cpu = tmp_path / "cpu,cpuacct"
    (cpu / box / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / box / "cpu.cfs_period_us").write_text("100000\n")
    (cpu / box / "cpuacct.usage").write_text("42000000000\n")  # 42 s, in ns
    (cpu / svc / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu / svc / "cpu.cfs_period_us").write_text("100000\n")
    (cpu / svc / "cpuacct.usage").write_text("3000000000\n")
    mem = tmp_path / "memory"
    (mem / box / "memory.limit_in_bytes").write_text("1610612736\n")
    (mem / box / "memory.usage_in_bytes").write_text("900000000\n")
    (mem / svc / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mem / svc / "memory.usage_in_bytes").write_text("44281856\n")
    limits = hl.read_limits(tmp_path, f"12:memory:/{svc}\n4:cpu,cpuacct:/{svc}\n0::/\n")
    assert (limits.cpu_millicores, limits.memory_bytes) == (500, 1610612736)
    assert limits.cpu_usage_seconds() == 42.0
    assert limits.memory_current() == 900000000


def test_capacity_prefers_override_then_tighter_cgroup_then_machine() -> None:
    limits = hl.CgroupLimits(2, 500, int(1.5 * GIB))
    cap = hl.effective_capacity(machine_cpus=16, machine_memory=128 * GIB,
                                storage_bytes=10**12, network_bps=40_000_000, gpu=0,
                                limits=limits)
    assert (cap.cpu_millicores, cap.memory_bytes) == (500, int(1.5 * GIB))
    assert dict(cap.sources) == {"cpu": "cgroup", "memory": "cgroup", "storage": "machine",
                                 "network": "machine", "gpu": "machine"}
    # a limit above the machine does not raise MAX
    loose = hl.CgroupLimits(2, 64000, 512 * GIB)
    cap = hl.effective_capacity(machine_cpus=2, machine_memory=4 * GIB, storage_bytes=1,
                                network_bps=0, gpu=0, limits=loose)
    assert (cap.cpu_millicores, cap.memory_bytes) == (2000, 4 * GIB)
    over = hl.CapacityOverride(cpu_millicores=8000, memory_bytes=32 * GIB, gpu=1)
    cap = hl.effective_capacity(machine_cpus=2, machine_memory=4 * GIB, storage_bytes=1,
                                network_bps=0, gpu=0, limits=limits, override=over)
    assert (cap.cpu_millicores, cap.memory_bytes, cap.gpu) == (8000, 32 * GIB, 1)
    assert dict(cap.sources)["memory"] == "override"
