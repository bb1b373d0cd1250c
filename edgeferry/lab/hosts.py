"""The lab's hosts: one systemd container ``ef-<lab>-<host>`` per host of the spec."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from edgeferry.errors import ConfigError, OperationFailed
from edgeferry.lab.config import HostSpec, LabSpec
from edgeferry.lab.engine import (
    LABEL_HOST,
    LABEL_HOSTSPEC,
    LABEL_LAB,
    LABEL_WORKSPACE,
    exec_in,
)
from edgeferry.workspace import workspace

Log = Callable[[str], None]


def container_name(lab: str, host: str) -> str:
    """The container of ``host`` in lab ``lab``."""
    return f"ef-{lab}-{host}"


def volume_name(lab: str, host: str) -> str:
    """The volume holding ``host``'s /var/lib/docker in lab ``lab``."""
    return f"ef-{lab}-{host}-docker"


class HostContainers:
    """Creates, (re)starts and finds the host containers of one lab."""

    def __init__(self, spec: LabSpec, client: docker.DockerClient, log: Log) -> None:
        self.spec = spec
        self.client = client
        self.log = log

    def get(self, host: str) -> Container:
        """The container of ``host`` (docker.errors.NotFound when it does not exist)."""
        return self.client.containers.get(container_name(self.spec.name, host))

    def labelled(self) -> list[Container]:
        """Every container of this lab, running or not."""
        return list(self.client.containers.list(
            all=True, filters={"label": f"{LABEL_LAB}={self.spec.name}"}
        ))

    def volumes(self) -> list[Any]:
        """Every volume of this lab."""
        return list(self.client.volumes.list(filters={"label": f"{LABEL_LAB}={self.spec.name}"}))

    def _hostspec_hash(self, host: HostSpec, image: str) -> str:
        profile = self.spec.profiles[host.profile]
        return f"{image}|{host.role}|{host.address}|{profile.cpus}|{profile.memory_bytes}"

    def ensure(self, host: HostSpec, image: str, network: Any, changes: list[str]) -> Container:
        """``host``'s container running with its spec; an outdated one is recreated, one
        owned by another workspace refused."""
        name = container_name(self.spec.name, host.name)
        wanted = self._hostspec_hash(host, image)
        try:
            existing = self.client.containers.get(name)
        except docker.errors.NotFound:
            existing = None
        if existing is not None:
            owner = existing.labels.get(LABEL_WORKSPACE)
            if owner is not None and owner != str(workspace()):
                raise ConfigError(
                    f"lab {self.spec.name!r} is already up from the workspace {owner}; "
                    "pick another lab name with --name (and --subnet) or run from that workspace "
                    f"(if the run that brought it up is over, `edgeferry lab down --name "
                    f"{self.spec.name}` removes it)"
                )
            if existing.labels.get(LABEL_HOSTSPEC) == wanted:
                if existing.status != "running":
                    existing.start()
                    changes.append(f"started {host.name}")
                return existing
            self.log(f"{host.name}: configuration changed, recreating its container")
            existing.remove(force=True)
            changes.append(f"removed outdated {host.name}")
        profile = self.spec.profiles[host.profile]
        volume = volume_name(self.spec.name, host.name)
        self.client.volumes.create(volume, labels={LABEL_LAB: self.spec.name})
        container = self.client.containers.create(
            image,
            name=name,
            hostname=host.name,
            labels={
                LABEL_LAB: self.spec.name,
                LABEL_HOST: host.name,
                LABEL_HOSTSPEC: wanted,
                LABEL_WORKSPACE: str(workspace()),
            },
            cap_add=["ALL"],
            cap_drop=["SYS_RESOURCE"],
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            device_cgroup_rules=["a *:* rwm"],
            cgroupns="host",
            tmpfs={"/run": "rw,mode=755", "/run/lock": "rw"},
            volumes={
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                volume: {"bind": "/var/lib/docker", "mode": "rw"},
            },
            stop_signal="SIGRTMIN+3",
            nano_cpus=int(profile.cpus * 1e9),
            mem_limit=profile.memory_bytes,
            network=network.name,
            networking_config={
                network.name: docker.types.EndpointConfig(
                    self.client.api._version, ipv4_address=host.address
                )
            },
            detach=True,
        )
        container.start()
        container.reload()
        changes.append(f"started host {host.name} ({host.profile}, {host.address})")
        return container

    def wait_booted(self, host: HostSpec, container: Container, timeout: float = 120) -> None:
        """Wait until systemd is up (running or degraded) and sshd active in ``host``."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            container.reload()
            if container.status != "running":
                logs = container.logs(tail=5).decode(errors="replace")
                raise OperationFailed(f"host {host.name} stopped while booting: {logs.strip()}")
            state = exec_in(container, ["systemctl", "is-system-running"], check=False).strip()
            ssh = exec_in(container, ["systemctl", "is-active", "ssh"], check=False).strip()
            if state in ("running", "degraded") and ssh == "active":
                return
            time.sleep(0.5)
        raise OperationFailed(
            f"host {host.name} did not finish booting in {timeout:.0f} s ({state})"
        )
