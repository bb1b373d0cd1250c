"""Cross-architecture re-base rules: ELF detection, the diff's content digest, which layers are
the diff, and the re-based image config. Expectations: ELF headers written out from the System V
ABI (e_ident, e_machine 62 = x86-64, 183 = AArch64, 40 = ARM), this machine's own /bin/true,
and tar archives built here in different orders."""

from __future__ import annotations

import io
import platform
import tarfile
from pathlib import Path

import pytest

from agents.node.rebase import (
    ArchitectureSpecific,
    DiffScan,
    NotRebasable,
    diff_layers,
    elf_machine,
    rebased_config,
    registry_diff,
    scan_layer,
)


def _elf(machine: int, *, big: bool = False) -> bytes:
    order = "big" if big else "little"
    ident = b"\x7fELF" + bytes([2, 2 if big else 1, 1]) + b"\0" * 9
    return ident + (2).to_bytes(2, order) + machine.to_bytes(2, order) + b"\0" * 44


def test_elf_machines_from_headers() -> None:
    assert elf_machine(_elf(62)) == "x86_64"
    assert elf_machine(_elf(183)) == "aarch64"
    assert elf_machine(_elf(40)) == "arm"
    assert elf_machine(_elf(21, big=True)) == "ppc64"
    assert elf_machine(_elf(999)) == "e_machine 999"
    assert elf_machine(b"#!/bin/sh\necho not elf\n") is None
    assert elf_machine(b"\x7fELF") is None  # truncated
    assert elf_machine(b"\x7fELF\x02\x07" + b"\0" * 20) is None  # bad EI_DATA


def test_this_machines_own_binary() -> None:
    head = Path("/bin/true").resolve().read_bytes()[:20]
    assert elf_machine(head) == platform.machine()


def _tar(files: list[tuple[str, bytes, int, int]]) -> io.BytesIO:
    """A layer tar of (name, content, mode, mtime); a directory entry first."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo("state")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        for name, data, mode, mtime in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_content_digest_ignores_order_and_mtime_but_not_content_or_mode() -> None:
    a = scan_layer(_tar([("state/a", b"1", 0o644, 10), ("state/b", b"2", 0o600, 20)]))
    b = scan_layer(_tar([("state/b", b"2", 0o600, 99), ("state/a", b"1", 0o644, 5)]))
    assert a.content_digest == b.content_digest
    assert {e.path for e in a.entries} == {"/state", "/state/a", "/state/b"}
    changed = scan_layer(_tar([("state/a", b"X", 0o644, 10), ("state/b", b"2", 0o600, 20)]))
    chmod = scan_layer(_tar([("state/a", b"1", 0o755, 10), ("state/b", b"2", 0o600, 20)]))
    assert len({a.content_digest, changed.content_digest, chmod.content_digest}) == 3


def test_executables_in_the_diff_are_found_and_refused_by_name() -> None:
    scan = scan_layer(_tar([("state/data", b"blocks", 0o644, 0),
                            ("state/tool", _elf(62), 0o755, 0),
                            ("opt/run.sh", b"#!/bin/sh\n", 0o755, 0)]))
    assert scan.executables == [("/state/tool", "x86_64")]
    with pytest.raises(ArchitectureSpecific, match=r"1 architecture-specific .* /state/tool "
                                                   r"\(x86_64\)"):
        scan.refuse_executables("linux/arm64")
    DiffScan().refuse_executables("linux/arm64")  # nothing to refuse: no exception
    many = DiffScan(executables=[(f"/bin/t{i}", "x86_64") for i in range(13)])
    with pytest.raises(ArchitectureSpecific, match="and 3 more"):
        many.refuse_executables("linux/arm64")


def test_the_diff_is_what_the_committed_image_adds_to_the_source_base() -> None:
    assert diff_layers(["b1", "b2", "d1", "d2"], ["b1", "b2"]) == ["d1", "d2"]
    with pytest.raises(NotRebasable, match="flattened"):
        diff_layers(["flat"], ["b1", "b2"])
    with pytest.raises(NotRebasable):
        diff_layers(["b1", "x2", "d1"], ["b1", "b2"])
    with pytest.raises(NotRebasable):
        diff_layers(["b1", "b2"], ["b1", "b2"])  # no diff at all: nothing to re-base


def test_rebased_config_keeps_the_run_config_and_takes_the_destination_platform() -> None:
    committed = {"architecture": "amd64", "os": "linux", "created": "2026-11-26T00:00:00Z",
                 "config": {"Env": ["A=1"], "Entrypoint": ["/bin/sh", "/entrypoint.sh"],
                            "Labels": {"org.edgeferry.migration": "m1"}},
                 "rootfs": {"type": "layers", "diff_ids": ["sha256:x1", "sha256:d1"]},
                 "history": [{"created_by": "amd64 base"}, {"created_by": "commit"}]}
    base = {"architecture": "arm64", "variant": "v8", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:y1", "sha256:y2"]},
            "history": [{"created_by": "arm64 base 1"}, {"created_by": "arm64 base 2"}]}
    out = rebased_config(committed, base, ["sha256:d1"], created_by="rebased")
    assert out["architecture"] == "arm64" and out["variant"] == "v8"
    assert out["config"] == committed["config"]
    assert out["rootfs"] == {"type": "layers", "diff_ids": ["sha256:y1", "sha256:y2",
                                                             "sha256:d1"]}
    assert [h["created_by"] for h in out["history"]] == ["arm64 base 1", "arm64 base 2",
                                                          "rebased"]
    back = rebased_config(out, {"architecture": "amd64", "os": "linux",
                                "rootfs": {"diff_ids": ["sha256:x1"]}}, ["sha256:d1"], "b")
    assert back["architecture"] == "amd64" and "variant" not in back


GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _layers(*names: str, media: str = GZ) -> list[dict[str, object]]:
    return [{"digest": f"sha256:{n * 64}"[:71], "size": 10 * (i + 1), "mediaType": media}
            for i, n in enumerate(names)]


def test_registry_diff_is_the_blobs_after_the_source_base() -> None:
    committed = _layers("a", "b", "c", "d")
    blobs = registry_diff(committed, ["sha256:1", "sha256:2", "sha256:3", "sha256:4"],
                          _layers("a", "b"))
    # the third and fourth blobs, each paired with its diff_id from the config
    assert [(b.digest, b.size, b.diff_id) for b in blobs] == [
        ("sha256:" + "c" * 64, 30, "sha256:3"), ("sha256:" + "d" * 64, 40, "sha256:4")]
    assert all(b.gzipped for b in blobs)


def test_registry_diff_refuses_what_is_not_base_plus_diff() -> None:
    ids = ["sha256:1", "sha256:2", "sha256:3"]
    with pytest.raises(NotRebasable, match="not the source base"):  # another base
        registry_diff(_layers("a", "x", "c"), ids, _layers("a", "b"))
    with pytest.raises(NotRebasable, match="not the source base"):  # nothing on top
        registry_diff(_layers("a", "b"), ids[:2], _layers("a", "b"))
    with pytest.raises(NotRebasable, match="3 layers, its config 2"):
        registry_diff(_layers("a", "b", "c"), ids[:2], _layers("a", "b"))


def test_layer_compression_is_read_from_the_media_type() -> None:
    oci_gz = registry_diff(_layers("a", "c", media="application/vnd.oci.image.layer.v1.tar+gzip"),
                           ["sha256:1", "sha256:2"], _layers("a"))
    plain = registry_diff(_layers("a", "c", media="application/vnd.oci.image.layer.v1.tar"),
                          ["sha256:1", "sha256:2"], _layers("a"))
    zstd = registry_diff(_layers("a", "c", media="application/vnd.oci.image.layer.v1.tar+zstd"),
                         ["sha256:1", "sha256:2"], _layers("a"))
    assert oci_gz[0].gzipped and not plain[0].gzipped
    with pytest.raises(NotRebasable, match="zstd"):
        _ = zstd[0].gzipped
