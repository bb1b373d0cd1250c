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
