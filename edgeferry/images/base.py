"""Base images built without the internet's image registries.

* `busybox_base()`: ``edgeferry/busybox-base:<hash>`` -- Debian's statically linked
  ``busybox-static`` on a scratch root filesystem (~2 MB): ``/bin/sh``, ``httpd``, ``head``,
  ``sha256sum`` ... as applet symlinks. Base of the synthetic workloads.
* `python_base()`: ``edgeferry/python-base:<hash>`` -- Debian bookworm ``debootstrap
  --variant=minbase`` with python3, documentation/locales/apt lists pruned. Base of the NMS image.
  Same approach as the lab host image (`edgeferry.lab.image`): debootstrap into a temporary
  directory, then ``tar | docker import``, tagged by recipe hash.

Both are built for the controller's architecture (amd64 here); an arm64 (Jetson) variant needs the
same recipe run on an arm64 host or under qemu-user-static.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeferry.errors import EnvironmentProblem, OperationFailed
from edgeferry.images import rootfs
from edgeferry.images.common import (
    IMAGE_NAMESPACE,
    RECIPE_LABEL,
    BuiltImage,
    Log,
    cached,
    image_id,
    recipe_hash,
)

BUSYBOX_REPO = f"{IMAGE_NAMESPACE}/busybox-base"
PYTHON_REPO = f"{IMAGE_NAMESPACE}/python-base"
BUSYBOX_PACKAGE = "busybox-static"
_ROOTFS_LAYOUT = 1  # bump when the rootfs assembly below changes

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    if shutil.which(cmd[0]) is None:
        raise EnvironmentProblem(f"{cmd[0]} is not installed: run `make setup` ({what})")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
        raise OperationFailed(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return proc.stdout


def candidate_version(package: str) -> str:
    """The version apt would install (part of the recipe: a new version means a new image)."""
    out = _run(["apt-cache", "policy", package], f"apt-cache policy {package}")
    for line in out.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate" and value.strip() not in ("", "(none)"):
            return value.strip()
    raise EnvironmentProblem(f"apt knows no candidate for {package}: run `apt-get update`")


def docker_import(root: Path, tag: str, changes: tuple[str, ...], recipe: str) -> None:
    """Import `root` as `tag` with Dockerfile `changes` plus our recipe label."""
    rootfs.docker_import(root, tag, (*changes, f'LABEL {RECIPE_LABEL}="{recipe}"'))


# -- busybox ------------------------------------------------------------------------------------


def busybox_applets(binary: Path) -> list[str]:
    """Applet names the binary provides (``busybox --list``)."""
    out = _run([str(binary), "--list"], "listing busybox applets")
    return sorted({name.strip() for name in out.split() if name.strip() and "/" not in name})


def assemble_busybox_rootfs(binary: Path, root: Path, applets: list[str]) -> None:
    """A minimal root filesystem: /bin/busybox, applet symlinks, /etc/passwd, /tmp (pure files)."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(binary, root / "bin/busybox")
    (root / "bin/busybox").chmod(0o755)
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for rel, mode in (("tmp", 0o1777), ("etc", 0o755), ("root", 0o700), ("www", 0o755)):
        (root / rel).mkdir(exist_ok=True)
        (root / rel).chmod(mode)
    (root / "etc/passwd").write_text(_PASSWD)
    (root / "etc/group").write_text(_GROUP)
    (root / "usr").mkdir()
    (root / "usr/bin").symlink_to("/bin")


def busybox_base(log: Log = print) -> BuiltImage:
    """Build (once) the busybox base image; return it."""
    version = candidate_version(BUSYBOX_PACKAGE)
    recipe = recipe_hash("busybox-base", BUSYBOX_PACKAGE, version, _ROOTFS_LAYOUT, _PASSWD)
    tag = f"{BUSYBOX_REPO}:{recipe}"
    hit = cached(tag)
    if hit is not None:
        return hit
    work = Path(tempfile.mkdtemp(prefix="edgeferry-busybox-", dir="/var/tmp"))
    try:
        started = time.monotonic()
        log(f"building {tag} from Debian's {BUSYBOX_PACKAGE} {version}")
        _run(["apt-get", "download", f"{BUSYBOX_PACKAGE}={version}"], "apt-get download", work)
        (deb,) = work.glob("*.deb")
        _run(["dpkg-deb", "-x", str(deb), str(work / "pkg")], "dpkg-deb -x")
        binary = work / "pkg/bin/busybox"
        root = work / "rootfs"
        assemble_busybox_rootfs(binary, root, busybox_applets(binary))
        docker_import(root, tag, ('CMD ["/bin/sh"]',), recipe)
        return BuiltImage(tag, image_id(tag), time.monotonic() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- python -------------------------------------------------------------------------------------

#: Paths removed from the debootstrap tree: nothing a headless Python service needs.
PRUNED = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/cache/debconf/templates.dat-old",
    "var/log",
)


@dataclass(frozen=True)
class PythonBaseRecipe:
    """What determines the Python base image."""

    suite: str = "bookworm"
    mirror: str = field(default_factory=rootfs.debian_mirror)
    packages: tuple[str, ...] = ("python3", "ca-certificates")
    pruned: tuple[str, ...] = PRUNED

    @property
    def tag(self) -> str:
        h = recipe_hash("python-base", self.suite, self.mirror, self.packages, self.pruned)
        return f"{PYTHON_REPO}:{h}"


def prune_rootfs(root: Path, paths: tuple[str, ...]) -> None:
    for rel in paths:
        target = root / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
            target.mkdir(parents=True)
        elif target.exists() or target.is_symlink():
            target.unlink()


def python_base(recipe: PythonBaseRecipe | None = None, log: Log = print) -> BuiltImage:
    """Build (once) the debootstrap Python base image (about 90 s the first time)."""
    recipe = recipe or PythonBaseRecipe()
    hit = cached(recipe.tag)
    if hit is not None:
        return hit
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="edgeferry-pybase-", dir="/var/tmp"))
    logfile = work.parent / f"edgeferry-debootstrap-{recipe.tag.rsplit(':', 1)[1]}.log"
    try:
        log(f"building {recipe.tag} with debootstrap ({recipe.suite}, ~90 s; log: {logfile})")
        root = work / "rootfs"
        rootfs.debootstrap(
            root,
            suite=recipe.suite,
            mirror=recipe.mirror,
            packages=recipe.packages,
            logfile=logfile,
        )
        prune_rootfs(root, recipe.pruned)
        docker_import(
            root,
            recipe.tag,
            ('CMD ["/usr/bin/python3"]', "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1"),
            recipe.tag,
        )
        return BuiltImage(recipe.tag, image_id(recipe.tag), time.monotonic() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
