"""Workload images for amd64 and arm64, from Debian packages, never pulled.

    base = python_base_for(ARM64)              # edgeferry/python-base:<hash>-arm64
    nms = nms_image(platform=ARM64)             # docker build on top of it (RUN under qemu)

The arm64 root filesystem is ``debootstrap --arch=arm64 --foreign`` plus its second stage in a
chroot (the arm64 binaries run by qemu-user through binfmt_misc, `edgeferry.lab.binfmt`). It is
built once and cached as a tarball under ``<workspace>/.edgeferry/cache/rootfs/`` (named by its
recipe hash); the arm64 Python base is that tree pruned, the arm64 busybox base takes its
``/bin/busybox``. A base is *loaded* (``docker load`` of an archive whose image config states
``arm64``/``v8``) rather than imported: the 20.10 engine's ``docker import --platform`` records
the engine's own architecture (measured: ``linux/arm64`` came out as ``amd64``). Images built
FROM it inherit the architecture; their ``RUN`` steps run under qemu.

amd64 (the controller's own platform) uses `edgeferry.images.base` unchanged.
"""

from __future__ import annotations

import hashlib
import json
import platform as host_platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.common.platforms import Platform, native_platform, parse_platform
from agents.node.flatten import image_archive
from edgeferry.errors import ConfigError, OperationFailed
from edgeferry.images import base, rootfs
from edgeferry.images.common import (
    RECIPE_LABEL,
    BuiltImage,
    Log,
    cached,
    docker_client,
    recipe_hash,
)
from edgeferry.lab.binfmt import ensure_qemu_aarch64
from edgeferry.workspace import state_root

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
SUPPORTED = (AMD64, ARM64)
_CREATED = "1970-01-01T00:00:00Z"  # fixed: the same rootfs gives the same image


def controller_platform() -> Platform:
    """The platform images built here without emulation have (this machine's)."""
    return native_platform(host_platform.machine())


def platform_of(value: Platform | str | None) -> Platform:
    """A supported platform from a Platform, ``os/arch`` text, or None (the controller's)."""
    plat = controller_platform() if value is None else (
        value if isinstance(value, Platform) else parse_platform(value))
    if not any(plat.matches(p) for p in SUPPORTED):
        supported = ", ".join(map(str, SUPPORTED))
        raise ConfigError(f"platform {plat} is not supported (use {supported})")
    return next(p for p in SUPPORTED if plat.matches(p))


def is_native(plat: Platform) -> bool:
    return plat.matches(controller_platform())


def cache_dir() -> Path:
    return state_root() / "cache" / "rootfs"


@dataclass(frozen=True)
class ForeignRootfs:
    """A Debian root filesystem for another architecture: packages of the Python base plus
    busybox-static (the busybox base's binary), one recipe so it is built once."""

    arch: str = "arm64"
    suite: str = "bookworm"
    mirror: str = field(default_factory=rootfs.debian_mirror)
    packages: tuple[str, ...] = ("python3", "ca-certificates", base.BUSYBOX_PACKAGE)

    def digest(self) -> str:
        return recipe_hash("foreign-rootfs", self.arch, self.suite, self.mirror, self.packages)

    @property
    def tarball(self) -> Path:
        return cache_dir() / f"debian-{self.suite}-{self.arch}-{self.digest()}.tar"

    def ensure(self, log: Log = print) -> tuple[Path, float]:
        """The cached tarball, building it first when absent; (path, seconds spent building)."""
        if self.tarball.exists():
            return self.tarball, 0.0
        if self.arch == "arm64":
            ensure_qemu_aarch64()
        started = time.monotonic()
        self.tarball.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"edgeferry-{self.arch}-", dir="/var/tmp"))
        logfile = work.parent / f"edgeferry-debootstrap-{self.arch}-{self.digest()}.log"
        try:
            log(f"building the {self.arch} root filesystem with debootstrap --foreign + "
                f"second stage under qemu (several minutes, once; log: {logfile})")
            root = work / "rootfs"
            rootfs.debootstrap_foreign(root, arch=self.arch, suite=self.suite,
                                       mirror=self.mirror, packages=self.packages,
                                       logfile=logfile)
            for deb in (root / "var/cache/apt/archives").glob("*.deb"):
                deb.unlink()  # downloaded packages: not part of the tree
            partial = self.tarball.with_suffix(".partial")
            rootfs.tar_rootfs(root, partial)
            partial.rename(self.tarball)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self.tarball, time.monotonic() - started


def rootfs_config(plat: Platform, diff_id: str, *, cmd: list[str], env: list[str],
                  labels: dict[str, str]) -> dict[str, Any]:
    """The image config of a one-layer base image for ``plat``."""
    config: dict[str, Any] = {
        "architecture": plat.architecture, "os": plat.os, "created": _CREATED,
        "config": {"Cmd": cmd, "Env": env, "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": _CREATED, "created_by": "edgeferry: debootstrap rootfs"}],
    }
    variant = plat.normalized().variant
    if variant:
        config["variant"] = variant
    return config


def load_rootfs(root: Path, tag: str, plat: Platform, *, cmd: list[str], env: list[str],
                recipe: str) -> None:
    """``docker load`` the tree ``root`` as ``tag``, one layer, its config naming ``plat``."""
    client = docker_client()
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="edgeferry-layer-") as tmp:
        layer = Path(tmp) / "layer.tar"
        rootfs.tar_rootfs(root, layer)
        digest = hashlib.sha256()
        with layer.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        diff_id = f"sha256:{digest.hexdigest()}"
        config = rootfs_config(plat, diff_id, cmd=cmd, env=env, labels={RECIPE_LABEL: recipe})
        size = layer.stat().st_size
        with layer.open("rb") as fh:
            events = list(client.api.load_image(
                image_archive(fh, size, json.dumps(config).encode(), tag)))
    for event in events:
        if "error" in event:
            raise OperationFailed(f"docker load of {tag} failed: {event['error']}")
    got = client.images.get(tag).attrs
    if got.get("Architecture") != plat.architecture:
        raise OperationFailed(f"{tag} loaded as {got.get('Architecture')}, not {plat}")


def _foreign_tree(plat: Platform, work: Path, log: Log) -> Path:
    tarball, _ = ForeignRootfs(arch=plat.architecture).ensure(log)
    root = work / "rootfs"
    rootfs.untar_rootfs(tarball, root)
    return root


def python_base_for(plat: Platform | str | None = None, log: Log = print) -> BuiltImage:
    """The Python base image for ``plat`` (built once)."""
    target = platform_of(plat)
    if is_native(target):
        return base.python_base(log=log)
    recipe = base.PythonBaseRecipe()
    rfs = ForeignRootfs(arch=target.architecture)
    tag = f"{base.PYTHON_REPO}:{recipe_hash(recipe.tag, rfs.digest())}-{target.architecture}"
    hit = cached(tag)
    if hit is not None:
        return hit
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="edgeferry-pybase-") as tmp:
        root = _foreign_tree(target, Path(tmp), log)
        base.prune_rootfs(root, recipe.pruned)
        load_rootfs(root, tag, target, cmd=["/usr/bin/python3"],
                    env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"], recipe=tag)
    return BuiltImage(tag, str(docker_client().images.get(tag).id), time.monotonic() - started)


def busybox_base_for(plat: Platform | str | None = None, log: Log = print) -> BuiltImage:
    """The busybox base image for ``plat`` (built once; arm64 takes the arm64 rootfs's
    ``/bin/busybox``, whose applets it lists by running it under qemu)."""
    target = platform_of(plat)
    if is_native(target):
        return base.busybox_base(log)
    rfs = ForeignRootfs(arch=target.architecture)
    tag = f"{base.BUSYBOX_REPO}:{recipe_hash('busybox-base', rfs.digest(), base._PASSWD)}" \
          f"-{target.architecture}"
    hit = cached(tag)
    if hit is not None:
        return hit
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="edgeferry-busybox-") as tmp:
        tree = _foreign_tree(target, Path(tmp), log)
        binary = tree / "bin/busybox"
        if not binary.exists():
            binary = tree / "usr/bin/busybox"
        root = Path(tmp) / "bbroot"
        base.assemble_busybox_rootfs(binary, root, base.busybox_applets(binary))
        load_rootfs(root, tag, target, cmd=["/bin/sh"],
                    env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    recipe=tag)
    return BuiltImage(tag, str(docker_client().images.get(tag).id), time.monotonic() - started)
