"""The emulated lab provider: systemd host containers on a shaped Docker network.

`EmulatedLab(spec).up()` reconciles the machine to the spec and reports what it changed; a second
call with the same spec changes nothing. `down()` removes containers, network, volumes, qdiscs
(they live on the containers' veths), generated inventory and lab state. Hosts are returned by role
(EnOSlib style) through `LabState`.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from edgeferry.errors import ConfigError, EnvironmentProblem, OperationFailed
from edgeferry.lab.bandwidth import BandwidthSample, parse_iperf3_json
from edgeferry.lab.config import HostSpec, LabSpec
from edgeferry.lab.image import ImageRecipe, build_image
from edgeferry.lab.inventory import render_inventory, write_inventory
from edgeferry.lab.shaping import TbfConfig, delete_args, parse_tbf_rate
from edgeferry.lab.sshkeys import ensure_keypair
from edgeferry.workspace import inventory_dir, lab_state_dir, workspace

LABEL_LAB = "io.edgeferry.lab"
LABEL_HOST = "io.edgeferry.host"
LABEL_HOSTSPEC = "io.edgeferry.hostspec"
LABEL_WORKSPACE = "io.edgeferry.workspace"
BANDWIDTH_TOLERANCE = 0.15
IPERF_SECONDS = 3
IPERF_OMIT = 1
IPERF_ATTEMPTS = 2

Log = Callable[[str], None]


def require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "the emulated lab needs root (containers, veth shaping): run as root or with sudo"
        )


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as err:
        raise EnvironmentProblem(
            "Docker engine not reachable (is dockerd running? `make setup` starts it): "
            f"{str(err).splitlines()[0][:160]}"
        ) from None
    return client


@dataclass
class LabState:
    """What `lab up` built and measured; persisted as JSON beside the lab's SSH key."""

    name: str
    spec: dict[str, Any]
    fingerprint: str
    image: str
    network: str
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    bandwidth: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    inventory: str = ""
    private_key: str = ""
    known_hosts: str = ""
    created: float = 0.0

    @classmethod
    def path_for(cls, lab: str) -> Path:
        return lab_state_dir(lab) / "state.json"

    @classmethod
    def load(cls, lab: str) -> LabState | None:
        path = cls.path_for(lab)
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        path = self.path_for(self.name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True))
        tmp.replace(path)

    def hosts_by_role(self, role: str) -> list[str]:
        return [n for n, h in self.hosts.items() if h["role"] == role]


@dataclass
class UpResult:
    state: LabState
    changes: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class EmulatedLab:
    """Reconciles one lab (containers `ef-<lab>-<host>`, network `ef-<lab>`) with its spec."""

    def __init__(self, spec: LabSpec, log: Log = print, client: docker.DockerClient | None = None):
        self.spec = spec
        self.log = log
        self._client = client

    # -- names ---------------------------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    @property
    def network_name(self) -> str:
        return f"ef-{self.spec.name}"

    def container_name(self, host: str) -> str:
        return f"ef-{self.spec.name}-{host}"

    def volume_name(self, host: str) -> str:
        return f"ef-{self.spec.name}-{host}-docker"

    @property
    def state_dir(self) -> Path:
        return lab_state_dir(self.spec.name)

    @property
    def private_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    # -- up ------------------------------------------------------------------------------------
    def up(self, *, check_bandwidth: bool = True) -> UpResult:
        require_root()
        started = time.monotonic()
        changes: list[str] = []
        self.client.ping()  # fail fast, before any work, when the engine is not reachable
        self._check_subnet_free()
        recipe = ImageRecipe()
        tag, build_seconds = build_image(recipe, log=self.log)
        if build_seconds:
            changes.append(f"built image {tag} in {build_seconds:.0f} s")
        previous = LabState.load(self.spec.name)
        if previous and previous.fingerprint != self.spec.fingerprint():
            self.log(f"lab {self.spec.name!r}: spec changed since the last `lab up`; reconciling")
        network = self._ensure_network(changes)
        public_key, created = ensure_keypair(self.private_key, f"edgeferry-lab-{self.spec.name}")
        if created:
            changes.append(f"generated SSH key {self.private_key}")
        containers: dict[str, Container] = {}
        for host in self.spec.hosts:
            containers[host.name] = self._ensure_host(host, tag, network, changes)
        for host in self.spec.hosts:
            self._wait_booted(host, containers[host.name])
            self._ensure_authorized_key(containers[host.name], public_key, host, changes)
        self._write_known_hosts(containers, changes)
        shaped_before = {h.name: self._current_rates(containers[h.name]) for h in self.spec.hosts}
        for host in self.spec.hosts:
            self._ensure_shaping(host, containers[host.name], shaped_before[host.name], changes)
        self._check_ssh()
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
        if check_bandwidth and (changes or not self._bandwidth_current(state)):
            state.bandwidth = self.measure_bandwidth(containers)
            changes.append("validated shaping with iperf3")
        if build_seconds:
            state.timings["image_build_s"] = round(build_seconds, 2)
        if changes:
            state.timings["last_up_s"] = round(time.monotonic() - started, 2)
        state.save()
        self._assert_bandwidth(state)
        return UpResult(state=state, changes=changes)

    def _check_subnet_free(self) -> None:
        ours = ipaddress.ip_network(self.spec.subnet)
        for net in self.client.networks.list():
            if net.name == self.network_name:
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
            net = self.client.networks.get(self.network_name)
        except docker.errors.NotFound:
            return None
        return f"br-{net.id[:12]}"

    def _ensure_network(self, changes: list[str]) -> Any:
        try:
            net = self.client.networks.get(self.network_name)
            subnets = [c.get("Subnet") for c in net.attrs["IPAM"]["Config"] or []]
            if self.spec.subnet not in subnets:
                raise ConfigError(
                    f"network {self.network_name} exists with subnet {subnets}, not "
                    f"{self.spec.subnet}: run `edgeferry lab down --name {self.spec.name}` first"
                )
            return net
        except docker.errors.NotFound:
            pass
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=self.spec.subnet, gateway=self.spec.gateway)]
        )
        net = self.client.networks.create(
            self.network_name, driver="bridge", ipam=ipam, labels={LABEL_LAB: self.spec.name}
        )
        changes.append(f"created network {self.network_name} ({self.spec.subnet})")
        return net

    def _hostspec_hash(self, host: HostSpec, image: str) -> str:
        profile = self.spec.profiles[host.profile]
        return f"{image}|{host.role}|{host.address}|{profile.cpus}|{profile.memory_bytes}"

    def _ensure_host(
        self, host: HostSpec, image: str, network: Any, changes: list[str]
    ) -> Container:
        name = self.container_name(host.name)
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
                    "pick another lab name with --name (and --subnet) or run from that workspace"
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
        volume = self.volume_name(host.name)
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

    def _exec(self, container: Container, cmd: list[str], check: bool = True) -> str:
        result = container.exec_run(cmd, demux=False)
        output = result.output.decode(errors="replace") if result.output else ""
        if check and result.exit_code != 0:
            raise OperationFailed(
                f"{container.name}: `{' '.join(cmd)}` failed ({result.exit_code}): "
                f"{output.strip()[:300]}"
            )
        return output

    def _wait_booted(self, host: HostSpec, container: Container, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            container.reload()
            if container.status != "running":
                logs = container.logs(tail=5).decode(errors="replace")
                raise OperationFailed(f"host {host.name} stopped while booting: {logs.strip()}")
            state = self._exec(container, ["systemctl", "is-system-running"], check=False).strip()
            ssh = self._exec(container, ["systemctl", "is-active", "ssh"], check=False).strip()
            if state in ("running", "degraded") and ssh == "active":
                return
            time.sleep(0.5)
        raise OperationFailed(
            f"host {host.name} did not finish booting in {timeout:.0f} s ({state})"
        )

    def _ensure_authorized_key(
        self, container: Container, public_key: str, host: HostSpec, changes: list[str]
    ) -> None:
        current = self._exec(container, ["cat", "/root/.ssh/authorized_keys"], check=False)
        if current.strip() == public_key:
            return
        data = (public_key + "\n").encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("authorized_keys")
            info.size, info.mode, info.uid, info.gid = len(data), 0o600, 0, 0
            tar.addfile(info, io.BytesIO(data))
        self._exec(container, ["install", "-d", "-m", "0700", "/root/.ssh"])
        container.put_archive("/root/.ssh", buf.getvalue())
        changes.append(f"installed the lab SSH key on {host.name}")

    def _write_known_hosts(self, containers: dict[str, Container], changes: list[str]) -> None:
        # Host keys are read through the engine (a trusted channel), never trusted on first use.
        lines = []
        for host in self.spec.hosts:
            key = self._exec(containers[host.name], ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            keytype, blob = key.split()[:2]
            lines.append(f"{host.address} {keytype} {blob}")
        content = "\n".join(lines) + "\n"
        if self.known_hosts.exists() and self.known_hosts.read_text() == content:
            return
        self.known_hosts.write_text(content)
        changes.append("recorded host keys in known_hosts")

    # -- shaping -------------------------------------------------------------------------------
    def _veth_of(self, container: Container) -> str:
        index = self._exec(container, ["cat", "/sys/class/net/eth0/iflink"]).strip()
        for name in os.listdir("/sys/class/net"):
            try:
                if Path(f"/sys/class/net/{name}/ifindex").read_text().strip() == index:
                    return name
            except OSError:
                continue
        raise OperationFailed(
            f"cannot find the bridge-side veth of {container.name} (ifindex {index})"
        )

    def _current_rates(self, container: Container) -> tuple[int | None, int | None]:
        inner = parse_tbf_rate(self._exec(container, ["tc", "qdisc", "show", "dev", "eth0"]))
        outer_dev = self._veth_of(container)
        outer = parse_tbf_rate(_run(["tc", "qdisc", "show", "dev", outer_dev]))
        return inner, outer

    def _ensure_shaping(
        self,
        host: HostSpec,
        container: Container,
        current: tuple[int | None, int | None],
        changes: list[str],
    ) -> None:
        rate = self.spec.rate_bps(host)
        veth = self._veth_of(container)
        if rate is None:
            if current != (None, None):
                self._exec(container, delete_args("eth0"), check=False)
                _run(delete_args(veth), check=False)
                changes.append(f"removed shaping on {host.name}")
            return
        if all(r is not None and abs(r - rate) <= rate * 0.01 for r in current):
            return
        tbf = TbfConfig(rate)
        self._exec(container, tbf.replace_args("eth0"))
        _run(tbf.replace_args(veth))
        changes.append(f"shaped {host.name} to {rate / 1e6:g} Mbit/s both ways (tbf)")

    # -- bandwidth validation ------------------------------------------------------------------
    def _bandwidth_current(self, state: LabState) -> bool:
        return all(
            state.bandwidth.get(h.name, {}).get("configured_bps") == self.spec.rate_bps(h)
            for h in self.spec.edges
        )

    def measure_bandwidth(self, containers: dict[str, Container] | None = None) -> dict[str, dict]:
        """iperf3 between every edge host and the control host, both directions.

        The receiving side always runs the iperf3 client in reverse mode (-R), so every interval
        sample counts bytes that arrived, not bytes queued into a socket buffer.
        """
        if containers is None:
            containers = {
                h.name: self.client.containers.get(self.container_name(h.name))
                for h in self.spec.hosts
            }
        control = self.spec.control
        results: dict[str, dict] = {}
        for host in self.spec.edges:
            configured = self.spec.rate_bps(host)
            entry: dict[str, Any] = {"configured_bps": configured}
            # up: edge -> control (server on the edge sends); down: control -> edge.
            plan = (("up", host, control), ("down", control, host))
            for direction, sender, receiver in plan:
                # A busy machine can starve one 3 s sample: a link outside the tolerance is
                # measured once more, and the attempts are recorded with the figure kept.
                attempts = 0
                while True:
                    attempts += 1
                    self.log(f"measuring {host.name} {direction} with iperf3 ({IPERF_SECONDS} s)")
                    sample = self._iperf(containers, sender, receiver, direction)
                    ok = sample.within(configured or 0, BANDWIDTH_TOLERANCE)
                    if ok or attempts == IPERF_ATTEMPTS:
                        break
                entry[direction] = sample.to_dict()
                entry[f"{direction}_ok"] = ok
                entry[f"{direction}_attempts"] = attempts
            entry["measured_at"] = time.time()
            results[host.name] = entry
        return results

    def _iperf(
        self,
        containers: dict[str, Container],
        sender: HostSpec,
        receiver: HostSpec,
        direction: str,
    ) -> BandwidthSample:
        server = containers[sender.name]
        self._exec(server, ["pkill", "-x", "iperf3"], check=False)
        self._exec(server, ["iperf3", "-s", "-D", "-1", "--bind", str(sender.address)])
        cmd = [
            "iperf3",
            "-c",
            str(sender.address),
            "-R",
            "-J",
            "-t",
            str(IPERF_SECONDS),
            "-O",
            str(IPERF_OMIT),
            "-i",
            "0.5",
        ]
        for attempt in range(20):
            output = self._exec(containers[receiver.name], cmd, check=False)
            if "Connection refused" not in output or attempt == 19:
                break
            time.sleep(0.1)
        self._exec(server, ["pkill", "-x", "iperf3"], check=False)
        return parse_iperf3_json(
            output,
            direction,
            method=f"{' '.join(cmd)} on {receiver.name}, server on {sender.name}; "
            "first interval dropped as warm-up",
            drop_first=True,
        )

    def _assert_bandwidth(self, state: LabState) -> None:
        bad = [
            f"{name} {d}: {entry[d]['mean_bps'] / 1e6:.1f} vs "
            f"{entry['configured_bps'] / 1e6:g} Mbit/s"
            for name, entry in state.bandwidth.items()
            for d in ("up", "down")
            if d in entry and not entry.get(f"{d}_ok", False)
        ]
        if bad:
            raise OperationFailed(
                "measured bandwidth is outside ±15 % of the configured rate ("
                + "; ".join(bad)
                + "); the machine may be overloaded: rerun `edgeferry lab up`"
            )

    def _check_ssh(self) -> None:
        if shutil.which("ssh") is None:
            raise EnvironmentProblem("ssh client missing: apt-get install openssh-client")
        for host in self.spec.hosts:
            result = subprocess.run(
                [
                    "ssh",
                    "-i",
                    str(self.private_key),
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    f"UserKnownHostsFile={self.known_hosts}",
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "ConnectTimeout=10",
                    f"root@{host.address}",
                    "true",
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            if result.returncode != 0:
                raise OperationFailed(
                    f"SSH to {host.name} ({host.address}) failed: {result.stderr.strip()}"
                )

    # -- down / status -------------------------------------------------------------------------
    def down(self) -> list[str]:
        require_root()
        removed: list[str] = []
        for container in self.client.containers.list(
            all=True, filters={"label": f"{LABEL_LAB}={self.spec.name}"}
        ):
            container.remove(force=True, v=True)
            removed.append(f"container {container.name}")
        for net in self.client.networks.list(names=[self.network_name]):
            if net.name == self.network_name:
                net.remove()
                removed.append(f"network {net.name}")
        for volume in self.client.volumes.list(filters={"label": f"{LABEL_LAB}={self.spec.name}"}):
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
        found = [
            c.name
            for c in self.client.containers.list(
                all=True, filters={"label": f"{LABEL_LAB}={self.spec.name}"}
            )
        ]
        found += [
            n.name
            for n in self.client.networks.list(names=[self.network_name])
            if n.name == self.network_name
        ]
        found += [
            v.name
            for v in self.client.volumes.list(filters={"label": f"{LABEL_LAB}={self.spec.name}"})
        ]
        found += [str(p) for p in (inventory_dir(self.spec.name), self.state_dir) if p.exists()]
        return found

    def host_status(self) -> dict[str, dict[str, Any]]:
        status: dict[str, dict[str, Any]] = {}
        for host in self.spec.hosts:
            try:
                container = self.client.containers.get(self.container_name(host.name))
                running = container.status
                rates = self._current_rates(container) if running == "running" else (None, None)
            except docker.errors.NotFound:
                running, rates = "absent", (None, None)
            status[host.name] = {
                "container": running,
                "shaped_up_bps": rates[0],
                "shaped_down_bps": rates[1],
            }
        return status


def _run(cmd: list[str], check: bool = True) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise OperationFailed(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}")
    return result.stdout


def spec_of_running_lab(name: str) -> LabSpec | None:
    """The spec a lab was brought up with (from its state), or None when it is not up."""
    state = LabState.load(name)
    if state is None:
        return None
    return LabSpec.model_validate(state.spec)
