"""binfmt_misc registration of qemu-aarch64: parsing, the keep/register/replace decision and the
idempotent `ensure_qemu_aarch64` on a stand-in binfmt_misc directory.

Expectations come from outside the module: the line Debian's qemu-user-static 7.2 ships and the
text the Linux 6.18 kernel printed for that registration on this project's machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeferry.errors import EnvironmentProblem
from edgeferry.lab import binfmt

# /usr/lib/binfmt.d/qemu-aarch64.conf of qemu-user-static 1:7.2+dfsg-7+deb12u18.
DEBIAN_LINE = (
    r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00"
    r"\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
    r":/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF"
)
# cat /proc/sys/fs/binfmt_misc/qemu-aarch64 after writing DEBIAN_LINE to `register`.
KERNEL_ENTRY = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""
# The same registration made by a tool that left out the fix-binary flag.
KERNEL_ENTRY_NO_F = KERNEL_ENTRY.replace("flags: POF", "flags: P")


def test_debian_line_parses_to_the_aarch64_elf_header() -> None:
    reg = binfmt.parse_conf_line(DEBIAN_LINE)
    assert reg.name == "qemu-aarch64"
    # ELF magic, 64-bit, little endian, version 1; e_machine 0xb7 = EM_AARCH64 (183).
    assert reg.magic[:4] == b"\x7fELF"
    assert reg.magic[4] == 2 and reg.magic[5] == 1
    assert int.from_bytes(reg.magic[18:20], "little") == 183
    assert len(reg.magic) == len(reg.mask) == 20
    assert reg.fix_binary and reg.flags == {"O", "P", "F"}
    assert reg.interpreter == "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"


def test_the_kernels_rendering_equals_the_debian_line() -> None:
    wanted = binfmt.parse_conf_line(DEBIAN_LINE)
    kernel = binfmt.parse_entry("qemu-aarch64", KERNEL_ENTRY)
    assert kernel.same_as(wanted)
    assert binfmt.plan(wanted, kernel) == "keep"


def test_an_entry_without_fix_binary_is_replaced_and_a_missing_one_registered() -> None:
    wanted = binfmt.parse_conf_line(DEBIAN_LINE)
    assert binfmt.plan(wanted, binfmt.parse_entry("qemu-aarch64", KERNEL_ENTRY_NO_F)) == "replace"
    assert binfmt.plan(wanted, None) == "register"
    other_interp = KERNEL_ENTRY.replace("aarch64-binfmt-P", "qemu-aarch64")
    assert binfmt.plan(wanted, binfmt.parse_entry("qemu-aarch64", other_interp)) == "replace"


@pytest.mark.parametrize("line", [
    "qemu-aarch64:M::\\x7f:\\xff:/x:F",          # no leading colon
    ":qemu-aarch64:E::py::/usr/bin/python3:",      # extension registration
    ":qemu-aarch64:M::\\x7f\\x45:\\xff:/x:F",      # mask shorter than magic
    ":a:M::\\x7f:\\xff:/x",                        # a field short
])
def test_malformed_lines_are_refused(line: str) -> None:
    with pytest.raises(ValueError):
        binfmt.parse_conf_line(line)


def _fake(tmp_path: Path, entry: str | None) -> tuple[Path, Path]:
    interp = tmp_path / "qemu-aarch64-static"
    interp.write_text("")
    conf = tmp_path / "qemu-aarch64.conf"
    conf.write_text(DEBIAN_LINE.replace("/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
                                        str(interp)) + "\n")
    proc = tmp_path / "binfmt_misc"
    proc.mkdir()
    (proc / "register").write_text("")
    if entry is not None:
        (proc / "qemu-aarch64").write_text(
            entry.replace("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", str(interp)))
    return proc, conf


def test_an_equal_registration_is_kept_without_writing(tmp_path: Path) -> None:
    proc, conf = _fake(tmp_path, KERNEL_ENTRY)
    before = {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in proc.iterdir()}
    assert binfmt.ensure_qemu_aarch64(proc, conf) == "kept"
    assert binfmt.ensure_qemu_aarch64(proc, conf) == "kept"
    assert {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in proc.iterdir()} == before


def test_a_differing_entry_is_removed_then_the_line_registered(tmp_path: Path) -> None:
    proc, conf = _fake(tmp_path, KERNEL_ENTRY_NO_F)
    # A plain directory is no kernel: the files hold what the kernel would have received.
    assert binfmt.ensure_qemu_aarch64(proc, conf) == "re-registered (flags were P)"
    assert (proc / "register").read_text() == conf.read_text().strip()
    assert (proc / "qemu-aarch64").read_text().startswith("-1")


def test_a_registration_that_does_not_appear_is_reported(tmp_path: Path) -> None:
    proc, conf = _fake(tmp_path, None)
    with pytest.raises(EnvironmentProblem, match="did not appear"):
        binfmt.ensure_qemu_aarch64(proc, conf)
    assert (proc / "register").read_text() == conf.read_text().strip()


def test_missing_package_and_refusing_kernel_are_environment_problems(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="qemu-user-static"):
        binfmt.ensure_qemu_aarch64(tmp_path, tmp_path / "absent.conf")
    proc, conf = _fake(tmp_path, None)
    (proc / "register").unlink()
    (proc / "register").mkdir()  # exists ("mounted"), but open(O_WRONLY) fails: EISDIR
    with pytest.raises(EnvironmentProblem, match="kernel refused to register"):
        binfmt.ensure_qemu_aarch64(proc, conf)
