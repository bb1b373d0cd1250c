"""The lab host base image: Debian bookworm built locally with debootstrap, never pulled.

The image is tagged with a hash of its recipe (suite, mirror, packages, configuration files), so it
is built once and rebuilt only when the recipe changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeferry.images.rootfs import debian_mirror, debootstrap, docker_import

IMAGE_REPO = "edgeferry/lab-host"

PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "iputils-ping",
    "procps",
    "ca-certificates",
    "iperf3",
)

# Debian packages the playbooks install on every host (roles/base's __base_packages,
# roles/docker_engine's __docker_engine_packages). The "prebaked" image carries them, so the
# first deploy of a lab finds them installed (the roles still assert them, changed=0) instead of
# spending its largest share downloading and unpacking the Docker engine on every host at once.
# The registry's packages (roles/registry's __registry_packages) are prebaked too, with their
# services installed but not enabled (PREBAKED_DISABLED): the registry role enables and starts
# them on the registry host alone, so no edge runs an unneeded nginx or registry.
PREBAKED = (
    "python3-venv",
    "docker.io",
    "python3-requests",
    "docker-registry",
    "apache2-utils",
    "nginx",
)
PREBAKED_DISABLED = ("nginx.service", "docker-registry.service")

# Files written into the root filesystem after debootstrap: path -> (mode, content).
_HOSTKEY_UNIT = """\
[Unit]
Description=Generate this host's own SSH host keys (the image ships none)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""
_SSHD_CONF = """\
# edgeferry lab host: key-only root login for the controller's generated lab key.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""
CONFIG_FILES: dict[str, tuple[int, str]] = {
    "etc/systemd/system/edgeferry-ssh-hostkeys.service": (0o644, _HOSTKEY_UNIT),
    "etc/ssh/sshd_config.d/edgeferry.conf": (0o644, _SSHD_CONF),
    "etc/apt/apt.conf.d/90edgeferry": (0o644, 'APT::Install-Recommends "false";\n'),
    "etc/edgeferry-lab-host": (0o644, "This host is an edgeferry emulated lab host.\n"),
}
# Units that make no sense in a container (no consoles, no hardware clock, no udev).
MASKED_UNITS = (
    "getty@tty1.service",
    "console-getty.service",
    "systemd-timesyncd.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "systemd-udevd.service",
    "systemd-modules-load.service",
)


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that determines the image's content."""

    suite: str = "bookworm"
    mirror: str = field(default_factory=debian_mirror)
    packages: tuple[str, ...] = PACKAGES
    files: tuple[tuple[str, int, str], ...] = tuple(
        (path, mode, text) for path, (mode, text) in sorted(CONFIG_FILES.items())
    )
    masked: tuple[str, ...] = MASKED_UNITS
    # installed units left disabled (their packages enable them at install)
    disabled: tuple[str, ...] = ()

    @classmethod
    def for_variant(cls, variant: str) -> ImageRecipe:
        """The recipe of a lab file's `host_image`: "prebaked" or "minimal"."""
        if variant == "prebaked":
            return cls(packages=PACKAGES + PREBAKED, disabled=PREBAKED_DISABLED)
        if variant == "minimal":
            return cls()
        raise ValueError(f"unknown host image variant {variant!r}; use prebaked or minimal")

    def digest(self) -> str:
        blob = json.dumps(
            [self.suite, self.mirror, self.packages, self.files, self.masked]
            + ([list(self.disabled)] if self.disabled else []), sort_keys=True
        ).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPO}:{self.digest()}"


def image_exists(tag: str) -> bool:
    result = subprocess.run(
        ["docker", "image", "inspect", tag], capture_output=True, text=True, check=False
    )
    return result.returncode == 0


def configure_rootfs(root: Path, recipe: ImageRecipe) -> None:
    """Apply the recipe's configuration to an unpacked root filesystem (pure file operations)."""
    for rel, mode, text in recipe.files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "edgeferry-ssh-hostkeys.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/edgeferry-ssh-hostkeys.service")
    for unit in recipe.disabled:
        for target in (root / "etc/systemd/system").glob(f"*.wants/{unit}"):
            target.unlink()
    for unit in recipe.masked:
        masked = root / "etc/systemd/system" / unit
        if masked.exists() or masked.is_symlink():
            masked.unlink()
        masked.symlink_to("/dev/null")
    # No shared identity in the image: every host makes its own host keys and machine id.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (root / cache).glob("*.deb"):
            item.unlink()


def build_image(recipe: ImageRecipe, log: Callable[[str], None] = print) -> tuple[str, float]:
    """Build the image unless it is cached; return (tag, seconds spent building, 0 when cached)."""
    if image_exists(recipe.tag):
        return recipe.tag, 0.0
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="edgeferry-rootfs-", dir="/var/tmp"))
    root = workdir / "rootfs"
    logfile = workdir.parent / f"edgeferry-debootstrap-{recipe.digest()}.log"
    try:
        log(
            f"building lab host image {recipe.tag} with debootstrap "
            f"({recipe.suite}, about 2 minutes; log: {logfile})"
        )
        debootstrap(
            root,
            suite=recipe.suite,
            mirror=recipe.mirror,
            packages=recipe.packages,
            logfile=logfile,
        )
        configure_rootfs(root, recipe)
        docker_import(root, recipe.tag, ('CMD ["/sbin/init"]', "ENV container=docker"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return recipe.tag, time.monotonic() - started
