"""Cross-architecture migration, the pure part: scan a committed diff layer, refuse executables,
and describe the image that carries the same diff on another platform's base. No docker here.

A service committed on an x86 edge is ``base(amd64) + diff``; on a Jetson-class edge it must run
as ``base(arm64) + diff``, where ``base(arm64)`` is the arm64 entry of the same image index. The
diff (the service's state: files, not binaries) is moved byte for byte, so its layer digest and
its *content digest* (`DiffScan.content_digest`: every path, type, mode, owner, link target and
file content hash, independent of tar order and timestamps) are identical before and after. A
diff holding ELF files is refused, naming them (`ArchitectureSpecific`): an amd64 executable in
the state would not run on arm64 (or would run emulated, silently).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

ELF_MAGIC = b"\x7fELF"
#: e_machine values (System V ABI / Linux elf-em.h) -> ``uname -m`` style names.
ELF_MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm",
                62: "x86_64", 183: "aarch64", 243: "riscv64"}
#: Names of ELF files shown in a refusal (the rest counted).
MAX_NAMED = 10
#: Bytes read from each file's start to detect ELF (e_ident + e_type + e_machine).
_HEAD = 20


class ArchitectureSpecific(Exception):
    """The diff holds executables built for one architecture; it cannot change platform."""


class NotRebasable(Exception):
    """The committed image is not ``source base + diff layers`` (e.g. flattened)."""


def elf_machine(head: bytes) -> str | None:
    """The machine an ELF file is built for (``x86_64``, ``aarch64`` ...), None when ``head``
    is not the start of an ELF file."""
    if len(head) < _HEAD or not head.startswith(ELF_MAGIC):
        return None
    if head[5] not in (1, 2):  # EI_DATA: 1 little endian, 2 big endian
        return None
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return ELF_MACHINES.get(machine, f"e_machine {machine}")


@dataclass(frozen=True)
class DiffEntry:
    """One member of a diff layer, as it matters for the service's state."""

    path: str
    kind: str  # file, dir, symlink, hardlink, other
    mode: int
    owner: tuple[int, int]
    size: int
    sha256: str = ""
    link: str = ""

    def record(self) -> list[Any]:
        return [self.path, self.kind, self.mode, list(self.owner), self.size, self.sha256,
                self.link]


@dataclass
class DiffScan:
    """What a diff layer holds: its entries, its ELF files (path, machine), its content digest."""

    entries: list[DiffEntry] = field(default_factory=list)
    executables: list[tuple[str, str]] = field(default_factory=list)

    @property
    def content_digest(self) -> str:
        """sha256 over the sorted entry records (tar order and mtimes do not count)."""
        records = sorted(e.record() for e in self.entries)
        blob = json.dumps(records, separators=(",", ":")).encode()
        return f"sha256:{hashlib.sha256(blob).hexdigest()}"

    def refuse_executables(self, target: str) -> None:
        """`ArchitectureSpecific` naming the ELF files when there are any."""
        if not self.executables:
            return
        named = ", ".join(f"{p} ({m})" for p, m in self.executables[:MAX_NAMED])
        more = len(self.executables) - MAX_NAMED
        raise ArchitectureSpecific(
            f"the container's diff holds {len(self.executables)} architecture-specific "
            f"executable(s) and cannot move to {target}: {named}"
            + (f" and {more} more" if more > 0 else "")
            + "; install them in the image (one variant per platform), not in the container")


def _kind(member: tarfile.TarInfo) -> str:
    if member.isfile():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    return "other"


def scan_layer(stream: IO[bytes]) -> DiffScan:
    """Read a layer tar (uncompressed, streamed) once: entries, content hashes, ELF files."""
    scan = DiffScan()
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            path = "/" + member.name.lstrip("./").lstrip("/")
            digest, head = "", b""
            if member.isfile():
                handle = tar.extractfile(member)
                h = hashlib.sha256()
                if handle is not None:
                    head = handle.read(_HEAD)
                    h.update(head)
                    for chunk in iter(lambda: handle.read(1 << 20), b""):  # noqa: B023
                        h.update(chunk)
                digest = h.hexdigest()
                machine = elf_machine(head)
                if machine is not None:
                    scan.executables.append((path, machine))
            scan.entries.append(DiffEntry(path, _kind(member), member.mode,
                                          (member.uid, member.gid), member.size, digest,
                                          member.linkname))
    return scan


def diff_layers(committed: Sequence[str], source_base: Sequence[str]) -> list[str]:
    """The diff_ids the committed image adds on top of the source platform's base image;
    `NotRebasable` when the committed image does not start with that base."""
    if list(committed[:len(source_base)]) != list(source_base) or len(committed) <= len(
            source_base):
        raise NotRebasable(
            f"the committed image ({len(committed)} layers) is not the source base "
            f"({len(source_base)} layers) plus diff layers (flattened, or another base): "
            "it cannot be re-based layer by layer")
    return list(committed[len(source_base):])


def rebased_config(committed: Mapping[str, Any], dest_base: Mapping[str, Any],
                   diffs: Iterable[str], created_by: str) -> dict[str, Any]:
    """The image config of ``dest_base + diffs`` running as the committed image did: the
    committed run config (Env, Cmd, Entrypoint, Labels, User ...), the destination base's
    platform, rootfs and history, one history entry per diff layer."""
    diff_ids = list(diffs)
    out = {k: v for k, v in committed.items()
           if k not in ("architecture", "os", "variant", "rootfs", "history", "os.version")}
    for key in ("architecture", "os", "variant"):
        if dest_base.get(key):
            out[key] = dest_base[key]
    base_ids = list(dest_base.get("rootfs", {}).get("diff_ids") or [])
    out["rootfs"] = {"type": "layers", "diff_ids": base_ids + diff_ids}
    history = [dict(h) for h in dest_base.get("history") or []]
    created = str(committed.get("created", ""))
    history += [{"created": created, "created_by": created_by} for _ in diff_ids]
    out["history"] = history
    return out


@dataclass(frozen=True)
class DiffBlob:
    """One diff layer of a committed image as the registry holds it: the blob (compressed as
    ``media_type`` says) and the diff_id its uncompressed tar must hash to."""

    digest: str
    size: int
    media_type: str
    diff_id: str

    @property
    def gzipped(self) -> bool:
        """gzip (Docker's and OCI's usual layers) or a plain tar; another compression (zstd)
        is `NotRebasable` here."""
        if "gzip" in self.media_type:
            return True
        if self.media_type.endswith(("zstd", "+zstd")):
            raise NotRebasable(f"layer {self.digest} is {self.media_type}: not re-based here")
        return False


def registry_diff(committed_layers: Sequence[Mapping[str, Any]], diff_ids: Sequence[str],
                  source_base_layers: Sequence[Mapping[str, Any]]) -> list[DiffBlob]:
    """The blobs a destination of another platform needs of a committed image: its manifest's
    layers after the source platform's base image's (compared blob by blob), each with its
    diff_id from the committed config. `NotRebasable` when the committed manifest does not
    start with the base's layers or its config lists another number of layers."""
    if len(committed_layers) != len(diff_ids):
        raise NotRebasable(f"the committed manifest lists {len(committed_layers)} layers, its "
                           f"config {len(diff_ids)} diff_ids")
    base = [str(x["digest"]) for x in source_base_layers]
    ours = [str(x["digest"]) for x in committed_layers]
    if ours[:len(base)] != base or len(ours) <= len(base):
        raise NotRebasable(
            f"the committed image ({len(ours)} layers) is not the source base ({len(base)} "
            "layers) plus diff layers in the registry: it cannot be re-based layer by layer")
    return [DiffBlob(str(m["digest"]), int(m["size"]), str(m.get("mediaType", "")), d)
            for m, d in zip(committed_layers[len(base):], diff_ids[len(base):], strict=True)]
