"""arm64 emulation for jetson-class lab hosts: qemu-aarch64 registered with binfmt_misc.

Debian's ``qemu-user-static`` ships the registration line in
``/usr/lib/binfmt.d/qemu-aarch64.conf`` (``:name:type:offset:magic:mask:interpreter:flags``).
`ensure_qemu_aarch64` mounts binfmt_misc when it is not mounted, then registers that line unless
an equivalent entry is already there. The entry must carry the fix-binary flag ``F``: the kernel
opens the interpreter once at registration, so an arm64 container (another mount namespace, no
qemu inside) still finds it. An entry without ``F`` (or with another interpreter, magic or
mask) is removed and registered again; an equal one is left alone, so a second `lab up` changes
nothing.

Parsing and the decision are pure (`parse_conf_line`, `parse_entry`, `plan`); only
`ensure_qemu_aarch64` touches /proc. A kernel that refuses (no binfmt_misc, a read-only /proc in
a sandbox, EPERM) is an `EnvironmentProblem` with the exact error and what to do.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agents.common.platforms import native_platform, parse_platform
from edgeferry.errors import EnvironmentProblem

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
ENTRY_NAME = "qemu-aarch64"
PACKAGE = "qemu-user-static"


@dataclass(frozen=True)
class Registration:
    """One binfmt_misc magic registration (the fields the kernel compares)."""

    name: str
    magic: bytes
    mask: bytes
    offset: int
    interpreter: str
    flags: frozenset[str]

    @property
    def fix_binary(self) -> bool:
        return "F" in self.flags

    def same_as(self, other: Registration) -> bool:
        """Equal in everything the kernel matches and runs (flag order is irrelevant)."""
        return (self.magic, self.mask, self.offset, self.interpreter, self.flags) == (
            other.magic, other.mask, other.offset, other.interpreter, other.flags)


def _unescape(field: str) -> bytes:
    r"""``\x7f\x45...`` (binfmt.d escapes, possibly mixed with literal characters) to bytes."""
    out = bytearray()
    i = 0
    while i < len(field):
        if field.startswith("\\x", i) and i + 4 <= len(field):
            out.append(int(field[i + 2:i + 4], 16))
            i += 4
        else:
            out += field[i].encode("latin-1")
            i += 1
    return bytes(out)


def parse_conf_line(line: str) -> Registration:
    """A binfmt.d / ``register`` line ``:name:M:offset:magic:mask:interpreter:flags``."""
    text = line.strip()
    if not text.startswith(":"):
        raise ValueError(f"not a binfmt_misc registration line: {text[:60]!r}")
    parts = text[1:].split(":")
    if len(parts) != 7:
        raise ValueError(f"a registration has 7 fields, this one {len(parts)}: {text[:60]!r}")
    name, kind, offset, magic, mask, interpreter, flags = parts
    if kind != "M":
        raise ValueError(f"only magic (M) registrations are supported, not {kind!r}")
    magic_b, mask_b = _unescape(magic), _unescape(mask)
    if mask_b and len(mask_b) != len(magic_b):
        raise ValueError(f"{name}: mask ({len(mask_b)} bytes) and magic ({len(magic_b)}) differ")
    return Registration(name, magic_b, mask_b, int(offset or 0), interpreter,
                        frozenset(flags.strip()))


def parse_entry(name: str, text: str) -> Registration:
    """The kernel's view of a registration: the text of ``binfmt_misc/<name>``."""
    fields: dict[str, str] = {}
    for raw in text.splitlines():
        key, _, value = raw.strip().partition(" ")
        if key == "flags:":
            fields["flags"] = value.strip()
        elif key:
            fields[key] = value.strip()
    if "interpreter" not in fields or "magic" not in fields:
        raise ValueError(f"binfmt_misc entry {name} has no interpreter/magic: {text[:80]!r}")
    magic = bytes.fromhex(fields["magic"])
    mask = bytes.fromhex(fields["mask"]) if "mask" in fields else b""
    return Registration(name, magic, mask, int(fields.get("offset", "0")),
                        fields["interpreter"], frozenset(fields.get("flags", "")))


def plan(wanted: Registration, present: Registration | None) -> str:
    """What to do: "keep" (an equal entry is registered), "register" (none is),
    "replace" (one with the same name differs, e.g. lacks the fix-binary flag)."""
    if present is None:
        return "register"
    return "keep" if present.same_as(wanted) else "replace"


def is_mounted(binfmt_dir: Path = BINFMT_DIR) -> bool:
    return (binfmt_dir / "register").exists()


def _mount(binfmt_dir: Path) -> None:
    proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt_dir)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not is_mounted(binfmt_dir):
        raise EnvironmentProblem(
            f"cannot mount binfmt_misc on {binfmt_dir} ({proc.stderr.strip() or 'no register'}):"
            " jetson-class hosts need arm64 emulation; load the binfmt_misc module or run on a"
            " machine that allows it")


def _write(path: Path, data: str, what: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, data.encode("latin-1"))
        finally:
            os.close(fd)
    except OSError as err:
        raise EnvironmentProblem(
            f"the kernel refused to {what} ({path}: {err.strerror or err}): jetson-class hosts "
            "need qemu-aarch64 registered with binfmt_misc (root, a writable binfmt_misc)"
        ) from None


def ensure_qemu_aarch64(binfmt_dir: Path = BINFMT_DIR, conf: Path = QEMU_CONF) -> str:
    """Make the kernel run arm64 ELF files with Debian's static qemu (fix-binary flag); return
    what was done: "kept", "registered" or "re-registered (...)"."""
    if not conf.exists():
        raise EnvironmentProblem(
            f"{conf} is missing: install Debian's {PACKAGE} (`./edgeferry.sh setup` does) for "
            "the jetson-class hosts' arm64 workloads")
    wanted = parse_conf_line(conf.read_text())
    if not wanted.fix_binary:
        raise EnvironmentProblem(f"{conf} registers {wanted.name} without the fix-binary flag F;"
                                 " containers would not find the interpreter")
    if not Path(wanted.interpreter).exists():
        raise EnvironmentProblem(f"{wanted.interpreter} (named by {conf}) is missing: "
                                 f"reinstall {PACKAGE}")
    if not is_mounted(binfmt_dir):
        _mount(binfmt_dir)
    entry = binfmt_dir / wanted.name
    present = parse_entry(wanted.name, entry.read_text()) if entry.exists() else None
    action = plan(wanted, present)
    if action == "keep":
        return "kept"
    if present is not None:
        _write(entry, "-1", f"remove the differing {wanted.name} entry")
    _write(binfmt_dir / "register", conf.read_text().strip(), f"register {wanted.name}")
    if not entry.exists():
        raise EnvironmentProblem(f"registered {wanted.name} but {entry} did not appear")
    if action == "replace" and present is not None:
        return f"re-registered (flags were {''.join(sorted(present.flags)) or 'none'})"
    return "registered"



def emulation(workload_platform: str, machine: str | None = None) -> str:
    """How a host's workloads of ``workload_platform`` run on this machine: "native" or
    "qemu-user" (the host container itself, its systemd, sshd, Docker engine and agents, is
    always native: see `edgeferry.lab.config.CLASS_PLATFORMS`)."""
    if not workload_platform:  # the engine's own platform
        return "native"
    native = native_platform(machine or platform.machine())
    return "native" if parse_platform(workload_platform).matches(native) else "qemu-user"
