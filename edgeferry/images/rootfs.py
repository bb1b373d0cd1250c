"""Root filesystems built locally, turned into Docker images: debootstrap and `docker import`.

Shared by the lab host image (`edgeferry.lab.image`) and the workload bases
(`edgeferry.images.base`); no image ever comes from an internet registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgeferry.errors import EnvironmentProblem, OperationFailed

DEFAULT_MIRROR = "http://deb.debian.org/debian"


def debian_mirror() -> str:
    """The Debian mirror debootstrap uses ($EDGEFERRY_DEBIAN_MIRROR overrides the default)."""
    return os.environ.get("EDGEFERRY_DEBIAN_MIRROR", DEFAULT_MIRROR)


def debootstrap(
    root: Path, *, suite: str, mirror: str, packages: tuple[str, ...], logfile: Path
) -> None:
    """Run `debootstrap --variant=minbase` into `root`, logged to `logfile`."""
    if shutil.which("debootstrap") is None:
        raise EnvironmentProblem(
            "debootstrap is not installed: run `./edgeferry.sh setup` (apt-get install debootstrap)"
        )
    with logfile.open("w") as out:
        proc = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                suite,
                str(root),
                mirror,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        tail = logfile.read_text().strip().splitlines()[-3:]
        raise OperationFailed(
            f"debootstrap failed (exit {proc.returncode}); is {mirror} reachable? "
            f"last lines: {' | '.join(tail)}"
        )


def docker_import(root: Path, tag: str, changes: tuple[str, ...]) -> None:
    """`tar -C root -c . | docker import` with Dockerfile `changes` (CMD, ENV, LABEL ...)."""
    tar = subprocess.Popen(
        ["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    )
    args = ["docker", "import"]
    for change in changes:
        args += ["--change", change]
    imp = subprocess.run(
        [*args, "-", tag], stdin=tar.stdout, capture_output=True, text=True, check=False
    )
    tar.wait()
    if imp.returncode != 0 or tar.returncode != 0:
        raise OperationFailed(f"docker import of {tag} failed: {imp.stderr.strip()}")


def tar_rootfs(root: Path, out: Path) -> None:
    """``tar -C root --numeric-owner -c .`` into ``out`` (a layer or a cached root filesystem)."""
    proc = subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(out), "."],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OperationFailed(f"tar of {root} failed: {proc.stderr.strip()[-300:]}")


def untar_rootfs(tarball: Path, root: Path) -> None:
    """Unpack a cached root filesystem tarball into ``root`` (owners and modes kept)."""
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(tarball)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OperationFailed(f"unpacking {tarball} failed: {proc.stderr.strip()[-300:]}")


def debootstrap_foreign(
    root: Path, *, arch: str, suite: str, mirror: str, packages: tuple[str, ...], logfile: Path
) -> None:
    """`debootstrap --arch=<arch> --foreign` then its second stage in a chroot, the foreign
    binaries run by qemu-user through binfmt_misc (registered with the fix-binary flag, so the
    chroot needs no qemu of its own)."""
    if shutil.which("debootstrap") is None or shutil.which("chroot") is None:
        raise EnvironmentProblem("debootstrap/chroot missing: run `./edgeferry.sh setup`")
    with logfile.open("w") as out:
        for cmd in (
            ["debootstrap", f"--arch={arch}", "--foreign", "--variant=minbase",
             f"--include={','.join(packages)}", suite, str(root), mirror],
            ["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"],
        ):
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
            if proc.returncode != 0:
                out.close()
                tail = logfile.read_text().strip().splitlines()[-3:]
                raise OperationFailed(
                    f"{cmd[0]} {'--second-stage ' if cmd[0] == 'chroot' else ''}for {arch} "
                    f"failed (exit {proc.returncode}); last lines: {' | '.join(tail)}")
