"""The emulated lab provider: systemd host containers on a shaped Docker network.

`EmulatedLab(spec).up()` reconciles the machine to the spec and reports what it changed; a second
call with the same spec changes nothing. `down()` removes containers, network, volumes, qdiscs
(they live on the containers' veths), generated inventory and lab state. Hosts are returned by role
(EnOSlib style) through `LabState`.

`EmulatedLab` only orders the steps; each concern has its own room: the engine (`engine`), the
network (`network`), the host containers (`hosts`), SSH access (`access`), the links (`links`)
and what was built (`state`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from edgeferry.lab.access import LabAccess
from edgeferry.lab.binfmt import emulation, ensure_qemu_aarch64
from edgeferry.lab.config import LabSpec
from edgeferry.lab.engine import docker_client, require_root
from edgeferry.lab.hosts import HostContainers, container_name, volume_name
from edgeferry.lab.image import ImageRecipe, build_image
from edgeferry.lab.inventory import render_inventory, write_inventory
from edgeferry.lab.links.lab import LabLinks
from edgeferry.lab.machine import machine_step
from edgeferry.lab.network import LabNetwork, network_name
from edgeferry.lab.state import LabState, UpResult
from edgeferry.workspace import inventory_dir

Log = Callable[[str], None]


class EmulatedLab:
    """Reconciles one lab (containers `ef-<lab>-<host>`, network `ef-<lab>`) with its spec."""

    def __init__(self, spec: LabSpec, log: Log = print, client: docker.DockerClient | None = None):
        self.spec = spec
        self.log = log
        self._client = client
        self.access = LabAccess(spec)
        self.links = LabLinks(spec, log)

    # -- names and parts -----------------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    @property
    def network(self) -> LabNetwork:
        return LabNetwork(self.spec, self.client)

    @property
    def hosts(self) -> HostContainers:
        return HostContainers(self.spec, self.client, self.log)

    @property
    def network_name(self) -> str:
        return network_name(self.spec.name)

    def container_name(self, host: str) -> str:
        return container_name(self.spec.name, host)

    def volume_name(self, host: str) -> str:
        return volume_name(self.spec.name, host)

    @property
    def state_dir(self) -> Path:
        return self.access.state_dir

    @property
    def private_key(self) -> Path:
        return self.access.private_key

    @property
    def known_hosts(self) -> Path:
        return self.access.known_hosts

    # -- up ------------------------------------------------------------------------------------
    def up(self, *, check_bandwidth: bool = True) -> UpResult:
        require_root()
        started = time.monotonic()
        changes: list[str] = []
        self.client.ping()  # fail fast, before any work, when the engine is not reachable
        network, hosts = self.network, self.hosts
        with machine_step(self.log):  # the machine's, not this lab's: one `lab up` at a time
            network.check_subnet_free()
            if any(self.spec.workload_platform(h) == "linux/arm64" for h in self.spec.hosts):
                done = ensure_qemu_aarch64()
                if done != "kept":
                    changes.append(f"binfmt_misc: qemu-aarch64 {done} (fix-binary)")
            recipe = ImageRecipe.for_variant(self.spec.host_image)
            tag, build_seconds = build_image(recipe, log=self.log)
            if build_seconds:
                changes.append(f"built image {tag} in {build_seconds:.0f} s")
            previous = LabState.load(self.spec.name)
            if previous and previous.fingerprint != self.spec.fingerprint():
                self.log(f"lab {self.spec.name!r}: spec changed since the last `lab up`; "
                         "reconciling")
            net = network.ensure(changes)
        public_key = self.access.ensure_keypair(changes)
        containers: dict[str, Container] = {}
        for host in self.spec.hosts:
            containers[host.name] = hosts.ensure(host, tag, net, changes)
        for host in self.spec.hosts:
            hosts.wait_booted(host, containers[host.name])
            self.access.ensure_authorized_key(containers[host.name], public_key, host, changes)
        self.access.write_known_hosts(containers, changes)
        shaped_before = {
            h.name: self.links.current_rates(containers[h.name]) for h in self.spec.hosts
        }
        for host in self.spec.hosts:
            self.links.ensure_shaping(
                host, containers[host.name], shaped_before[host.name], changes
            )
        self.access.check_ssh()
        inv_dir = inventory_dir(self.spec.name)
        if write_inventory(
            inv_dir, render_inventory(self.spec, self.private_key, self.known_hosts)
        ):
            changes.append(f"wrote inventory {inv_dir}/hosts.yml")
        state = LabState(
            name=self.spec.name,
            spec=self.spec.model_dump(mode="json"),
            fingerprint=self.spec.fingerprint(),
            image=tag,
            network=self.network_name,
            hosts={
                h.name: {
                    "role": h.role,
                    "profile": h.profile,
                    "class": self.spec.host_class(h),
                    "workload_platform": self.spec.workload_platform(h),
                    "emulation": emulation(self.spec.workload_platform(h)),
                    "address": h.address,
                    "container": self.container_name(h.name),
                    "cpus": self.spec.profiles[h.profile].cpus,
                    "memory_bytes": self.spec.profiles[h.profile].memory_bytes,
                    "configured_bps": self.spec.rate_bps(h),
                }
                for h in self.spec.hosts
            },
            bandwidth=dict(previous.bandwidth) if previous else {},
            timings=dict(previous.timings) if previous else {},
            inventory=str(inv_dir),
            private_key=str(self.private_key),
            known_hosts=str(self.known_hosts),
            created=previous.created if previous and not changes else time.time(),
        )
        if check_bandwidth and (changes or not self.links.bandwidth_current(state)):
            state.bandwidth = self.measure_bandwidth(containers)
            changes.append("validated shaping with iperf3")
        if build_seconds:
            state.timings["image_build_s"] = round(build_seconds, 2)
        if changes:
            state.timings["last_up_s"] = round(time.monotonic() - started, 2)
        state.save()
        self.links.assert_bandwidth(state)
        return UpResult(state=state, changes=changes)

    def measure_bandwidth(
        self, containers: dict[str, Container] | None = None
    ) -> dict[str, dict[str, Any]]:
        """iperf3 between every edge host and the control host, both directions (see
        `LabLinks.measure`); the containers are looked up when not given."""
        if containers is None:
            hosts = self.hosts
            containers = {h.name: hosts.get(h.name) for h in self.spec.hosts}
        return self.links.measure(containers)

    # -- down / status -------------------------------------------------------------------------
    def down(self) -> list[str]:
        require_root()
        removed: list[str] = []
        hosts, network = self.hosts, self.network
        for container in hosts.labelled():
            container.remove(force=True, v=True)
            removed.append(f"container {container.name}")
        for net in network.present():
            net.remove()
            removed.append(f"network {net.name}")
        for volume in hosts.volumes():
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
        inv = inventory_dir(self.spec.name)
        if inv.exists():
            shutil.rmtree(inv)
            removed.append(f"inventory {inv}")
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
            removed.append(f"lab state {self.state_dir}")
        return removed

    def leftovers(self) -> list[str]:
        """Anything of this lab still on the machine (used by tests and `lab down`)."""
        hosts = self.hosts
        found = [c.name for c in hosts.labelled()]
        found += [n.name for n in self.network.present()]
        found += [v.name for v in hosts.volumes()]
        found += [str(p) for p in (inventory_dir(self.spec.name), self.state_dir) if p.exists()]
        return found

    def host_status(self) -> dict[str, dict[str, Any]]:
        status: dict[str, dict[str, Any]] = {}
        hosts = self.hosts
        for host in self.spec.hosts:
            try:
                container = hosts.get(host.name)
                running = container.status
                rates = (
                    self.links.current_rates(container) if running == "running" else (None, None)
                )
            except docker.errors.NotFound:
                running, rates = "absent", (None, None)
            status[host.name] = {
                "container": running,
                "shaped_up_bps": rates[0],
                "shaped_down_bps": rates[1],
            }
        return status
