"""The node's capacity inside its limits: cgroup CPU quota and memory limit, else the machine.

Lab hosts are systemd containers started with ``docker --cpus/--memory``: the machine has more
cores and memory than the host may use, and the limits are in the container's cgroup. This
module reads them (no grpc, no docker; files only, under a root that tests replace):

* cgroup v2 (unified): ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``),
  ``memory.max`` (bytes or ``max``), ``memory.current``, ``cpu.stat`` (``usage_usec``);
* cgroup v1: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1 = none),
  ``memory.limit_in_bytes`` (a huge page-rounded value = none), ``memory.usage_in_bytes``,
  ``cpuacct.usage`` (ns).

The agent's own cgroup comes from ``/proc/self/cgroup``; the effective limit is the smallest one
set on the path from that cgroup up to the mount root (a parent's limit binds its children).
`effective_capacity` combines the machine, the limits and a per-host override (the inventory's
``edgeferry_resources``): override > cgroup limit > machine.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: cgroup v1 reports "no memory limit" as a huge page-rounded number; anything above is "none"
V1_NO_LIMIT = 1 << 62
MIB = 1024 * 1024
GIB = 1024 * MIB


class CgroupFormatError(ValueError):
    """A cgroup file does not hold what the kernel writes there."""


def parse_cpu_max(text: str) -> int | None:
    """cgroup v2 ``cpu.max`` -> millicores allowed (None when ``max``: no quota).

    ``"50000 100000"`` is half a core = 500 millicores; ``"max 100000"`` is unlimited."""
    parts = text.split()
    if len(parts) != 2:
        raise CgroupFormatError(f"cpu.max holds {text.strip()!r}, not '<quota|max> <period>'")
    quota, period = parts
    if not period.isdigit() or int(period) == 0:
        raise CgroupFormatError(f"cpu.max period {period!r} is not a positive integer")
    if quota == "max":
        return None
    if not quota.isdigit():
        raise CgroupFormatError(f"cpu.max quota {quota!r} is not an integer or 'max'")
    return int(quota) * 1000 // int(period)


def parse_cfs(quota_text: str, period_text: str) -> int | None:
    """cgroup v1 ``cpu.cfs_quota_us`` + ``cpu.cfs_period_us`` -> millicores (None: quota -1)."""
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError:
        raise CgroupFormatError(f"cfs quota/period {quota_text!r}/{period_text!r}") from None
    if period <= 0:
        raise CgroupFormatError(f"cpu.cfs_period_us {period} is not positive")
    return None if quota < 0 else quota * 1000 // period


def parse_memory_max(text: str) -> int | None:
    """cgroup v2 ``memory.max`` (or v1 ``memory.limit_in_bytes``) -> bytes (None: no limit)."""
    value = text.strip()
    if value == "max":
        return None
    if not value.isdigit():
        raise CgroupFormatError(f"memory limit {value!r} is not a byte count or 'max'")
    limit = int(value)
    return None if limit >= V1_NO_LIMIT else limit


def parse_cpu_stat_usage(text: str) -> int:
    """cgroup v2 ``cpu.stat`` -> ``usage_usec`` (microseconds of CPU used by the cgroup)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            if not value.strip().isdigit():
                raise CgroupFormatError(f"cpu.stat usage_usec {value!r} is not an integer")
            return int(value)
    raise CgroupFormatError("cpu.stat has no usage_usec line")


def own_cgroup(proc_self_cgroup: str) -> tuple[int, str, dict[str, str]]:
    """``/proc/self/cgroup`` -> (version, unified path, v1 controller -> path).

    Version 2 when there is a ``0::<path>`` line and no v1 memory/cpu hierarchy, else 1."""
    unified = ""
    v1: dict[str, str] = {}
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            unified = path
        for c in controllers.split(","):
            if c:
                v1[c] = path
    version = 1 if ("memory" in v1 or "cpu" in v1) else 2
    return version, unified or "/", v1


def _chain(mount: Path, path: str) -> list[Path]:
    """``mount/path`` and every parent up to ``mount`` (deepest first)."""
    rel = PurePosixPath(path if path.startswith("/") else "/" + path).relative_to("/")
    dirs = [mount / rel]
    for parent in rel.parents:
        dirs.append(mount / parent)
    return [d for d in dirs if d.is_dir()]


def _read(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        return path.read_text()
    return None


def _smallest(values: list[int | None]) -> int | None:
    set_ = [v for v in values if v is not None]
    return min(set_) if set_ else None


@dataclass(frozen=True)
class CgroupLimits:
    """What the kernel lets this agent's cgroup use (None = not limited there) and where the
    usage counters of the *limited* cgroup are (for `agents.node.sampler` and the measured
    memory use).

    The usage is read where the binding limit is set (the host container's cgroup on a lab
    host), not in the agent's own service cgroup: MAX describes the host, so the use compared
    with it must be the host's too. No limit -> no counter here (the caller measures the
    machine)."""

    version: int = 0  # 0: no cgroup files found
    cpu_millicores: int | None = None
    memory_bytes: int | None = None
    cgroup_dir: Path | None = None  # the agent's own cgroup (memory hierarchy on v1)
    cpu_usage_file: Path | None = None  # cpu.stat (v2) / cpuacct.usage (v1) of the CPU limit
    memory_dir: Path | None = None  # the cgroup carrying the memory limit

    def describe(self) -> str:
        """One line saying which limits bind (for the report's resource source)."""
        if self.version == 0:
            return "no cgroup"
        cpu = "no cpu quota" if self.cpu_millicores is None else f"cpu {self.cpu_millicores} m"
        mem = ("no memory limit" if self.memory_bytes is None
               else f"memory {self.memory_bytes / MIB:.0f} MiB")
        where = self.memory_dir or (self.cpu_usage_file.parent if self.cpu_usage_file
                                    else self.cgroup_dir)
        return f"cgroup v{self.version} {where}: {cpu}, {mem}"

    def memory_current(self) -> int | None:
        """Bytes the memory-limited cgroup uses now (memory.current / memory.usage_in_bytes)."""
        if self.memory_dir is None:
            return None
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        text = _read(self.memory_dir / name)
        return int(text) if text is not None and text.strip().isdigit() else None

    def cpu_usage_seconds(self) -> float | None:
        """CPU seconds the CPU-limited cgroup used since it was created (cpu.stat /
        cpuacct.usage)."""
        if self.cpu_usage_file is None:
            return None
        text = _read(self.cpu_usage_file)
        if text is None:
            return None
        if self.version == 2:
            return parse_cpu_stat_usage(text) / 1e6
        return int(text) / 1e9 if text.strip().isdigit() else None


def _binding(pairs: list[tuple[Path, int | None]]) -> tuple[int | None, Path | None]:
    """(smallest limit, the cgroup that sets it) over (cgroup, limit) pairs; (None, None) when
    no cgroup on the path sets one. The deepest cgroup wins a tie (pairs are deepest first)."""
    best: tuple[int | None, Path | None] = (None, None)
    for d, value in pairs:
        if value is not None and (best[0] is None or value < best[0]):
            best = (value, d)
    return best


def read_limits(root: Path = Path("/sys/fs/cgroup"),
                proc_self_cgroup: str | None = None) -> CgroupLimits:
    """The limits of this process's cgroup (and its parents) under ``root``.

    ``proc_self_cgroup``: the text of /proc/self/cgroup (read when None). No cgroup filesystem
    -> ``CgroupLimits()`` (version 0, no limits)."""
    if proc_self_cgroup is None:
        proc_self_cgroup = _read(Path("/proc/self/cgroup")) or ""
    version, unified, v1 = own_cgroup(proc_self_cgroup)
    if version == 2:
        if not (root / "cgroup.controllers").exists():
            return CgroupLimits()
        chain = _chain(root, unified)
        cpu, cpu_dir = _binding([(d, parse_cpu_max(t)) for d in chain
                                 if (t := _read(d / "cpu.max")) is not None])
        mem, mem_dir = _binding([(d, parse_memory_max(t)) for d in chain
                                 if (t := _read(d / "memory.max")) is not None])
        return CgroupLimits(2, cpu, mem, chain[0] if chain else root,
                            cpu_dir / "cpu.stat" if cpu_dir else None, mem_dir)
    cpu_path = v1.get("cpu", v1.get("cpuacct", "/"))
    cpu_mount = next((root / m for m in ("cpu", "cpu,cpuacct") if (root / m).is_dir()),
                     root / "cpu")
    cpu_chain = _chain(cpu_mount, cpu_path)
    mem_chain = _chain(root / "memory", v1.get("memory", "/"))
    if not cpu_chain and not mem_chain:
        return CgroupLimits()
    quotas: list[tuple[Path, int | None]] = []
    for d in cpu_chain:
        quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            quotas.append((d, parse_cfs(quota, period)))
    cpu, cpu_dir = _binding(quotas)
    usage_file = None
    if cpu_dir is not None:  # cpuacct is co-mounted with cpu, or a hierarchy of its own
        rel = cpu_dir.relative_to(cpu_mount)
        usage_file = next((f for f in (cpu_dir / "cpuacct.usage",
                                       root / "cpuacct" / rel / "cpuacct.usage") if f.is_file()),
                          None)
    mem, mem_dir = _binding([(d, parse_memory_max(t)) for d in mem_chain
                             if (t := _read(d / "memory.limit_in_bytes")) is not None])
    return CgroupLimits(1, cpu, mem, mem_chain[0] if mem_chain else None, usage_file, mem_dir)


@dataclass(frozen=True)
class CapacityOverride:
    """A per-host MAX from the inventory (``edgeferry_resources``); None = not overridden."""

    cpu_millicores: int | None = None
    memory_bytes: int | None = None
    storage_bytes: int | None = None
    network_bps: int | None = None
    gpu: int | None = None


@dataclass(frozen=True)
class Capacity:
    """MAX in node units, and where each dimension came from (``override``, ``cgroup``,
    ``machine``)."""

    cpu_millicores: int
    memory_bytes: int
    storage_bytes: int
    network_bps: int
    gpu: int
    sources: tuple[tuple[str, str], ...]


def effective_capacity(*, machine_cpus: int, machine_memory: int, storage_bytes: int,
                       network_bps: int, gpu: int, limits: CgroupLimits,
                       override: CapacityOverride | None = None) -> Capacity:
    """MAX = override where given, else the cgroup limit where tighter than the machine, else
    the machine."""
    o = override or CapacityOverride()
    src: list[tuple[str, str]] = []

    def pick(name: str, forced: int | None, limit: int | None, machine: int) -> int:
        if forced is not None:
            src.append((name, "override"))
            return forced
        if limit is not None and limit < machine:
            src.append((name, "cgroup"))
            return limit
        src.append((name, "machine"))
        return machine

    cpu = pick("cpu", o.cpu_millicores, limits.cpu_millicores, machine_cpus * 1000)
    mem = pick("memory", o.memory_bytes, limits.memory_bytes, machine_memory)
    sto = pick("storage", o.storage_bytes, None, storage_bytes)
    net = pick("network", o.network_bps, None, network_bps)
    gp = pick("gpu", o.gpu, None, gpu)
    return Capacity(cpu, mem, sto, net, gp, tuple(src))
