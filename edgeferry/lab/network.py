"""The lab's Docker bridge network ``ef-<lab>``: a subnet that clashes with nothing."""

from __future__ import annotations

import ipaddress
import subprocess
from typing import Any

import docker
import docker.errors

from edgeferry.errors import ConfigError
from edgeferry.lab.config import LabSpec
from edgeferry.lab.engine import LABEL_LAB


def network_name(lab: str) -> str:
    """The Docker network of lab ``lab``."""
    return f"ef-{lab}"


class LabNetwork:
    """The bridge network of one lab."""

    def __init__(self, spec: LabSpec, client: docker.DockerClient) -> None:
        self.spec = spec
        self.client = client
        self.name = network_name(spec.name)

    def check_subnet_free(self) -> None:
        """Refuse a lab subnet that overlaps another Docker network or a host route."""
        ours = ipaddress.ip_network(self.spec.subnet)
        for net in self.client.networks.list():
            if net.name == self.name:
                continue
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                subnet = cfg.get("Subnet")
                if subnet and ":" not in subnet and ours.overlaps(ipaddress.ip_network(subnet)):
                    raise ConfigError(
                        f"lab subnet {ours} overlaps Docker network {net.name!r} ({subnet}); "
                        "choose another with --subnet or in the lab file"
                    )
        routes = subprocess.run(
            ["ip", "-4", "-o", "route", "show"], capture_output=True, text=True, check=False
        ).stdout
        own_bridge = self._own_bridge()
        for line in routes.splitlines():
            dest = line.split()[0]
            if dest == "default" or (own_bridge and f" dev {own_bridge} " in f"{line} "):
                continue
            try:
                if ours.overlaps(ipaddress.ip_network(dest, strict=False)):
                    raise ConfigError(
                        f"lab subnet {ours} overlaps the host route {line.strip()!r}; "
                        "choose another with --subnet or in the lab file"
                    )
            except ValueError:
                continue

    def _own_bridge(self) -> str | None:
        try:
            net = self.client.networks.get(self.name)
        except docker.errors.NotFound:
            return None
        return f"br-{net.id[:12]}"

    def ensure(self, changes: list[str]) -> Any:
        """The network, created when absent; one with another subnet is refused."""
        try:
            net = self.client.networks.get(self.name)
            subnets = [c.get("Subnet") for c in net.attrs["IPAM"]["Config"] or []]
            if self.spec.subnet not in subnets:
                raise ConfigError(
                    f"network {self.name} exists with subnet {subnets}, not "
                    f"{self.spec.subnet}: run `edgeferry lab down --name {self.spec.name}` first"
                )
            return net
        except docker.errors.NotFound:
            pass
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=self.spec.subnet, gateway=self.spec.gateway)]
        )
        net = self.client.networks.create(
            self.name, driver="bridge", ipam=ipam, labels={LABEL_LAB: self.spec.name}
        )
        changes.append(f"created network {self.name} ({self.spec.subnet})")
        return net

    def present(self) -> list[Any]:
        """The network if it exists (a list of at most one)."""
        return [n for n in self.client.networks.list(names=[self.name]) if n.name == self.name]
