"""Lab specification: which hosts, which hardware profiles, which network and link rate.

A spec comes from the embedded default (`data/default-lab.yaml`) or a user's lab file, then flags
override it. Everything is validated here, before anything touches Docker, so bad input fails with a
one-line message that says what to fix.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents.audit.domain import PolicyError
from edgeferry.auditpolicy import check_edge_attributes, edge_attributes
from edgeferry.errors import ConfigError

_RATE_UNITS = {
    "bit": 1,
    "kbit": 10**3,
    "mbit": 10**6,
    "gbit": 10**9,
    "bps": 8,
    "kbps": 8 * 10**3,
    "mbps": 8 * 10**6,
    "gbps": 8 * 10**9,
}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgKMG]?)[bB]?\s*$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def parse_rate(text: str | int | float) -> int:
    """Parse a link rate such as `40mbit`, `1gbit`, `5mbps` (bytes) into bits per second."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError(f"bandwidth must be positive, got {text}")
        return int(text)
    match = _RATE_RE.match(str(text))
    if not match or match.group(2).lower() not in _RATE_UNITS:
        raise ValueError(
            f"bandwidth {text!r} does not parse: use a number and a unit, "
            "e.g. 40mbit, 500kbit, 1gbit"
        )
    value = float(match.group(1)) * _RATE_UNITS[match.group(2).lower()]
    if value < 8000:
        raise ValueError(f"bandwidth {text!r} is below 8kbit, which tbf cannot shape usefully")
    return int(value)


def format_rate(bps: float) -> str:
    """Human form of a rate in bits per second (e.g. 40.0 Mbit/s)."""
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.1f} {unit}"
    return f"{bps:.0f} bit/s"


def parse_size(text: str | int) -> int:
    """Parse a memory size such as `1536m`, `3g`, `512M` into bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ValueError(f"memory size {text!r} does not parse: use e.g. 512m or 2g")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


# Host classes the playbooks know (roles/edgeferry_validate's edgeferry_validate_profiles): a
# profile's name is the user's, its class says which one of these it is.
HOST_CLASSES = ("x86", "jetson")
#: The platform a host class's workloads run as. A jetson-class lab host is a native (x86_64)
#: systemd container; its nested Docker engine runs the arm64 workloads under qemu-user
#: (binfmt_misc, `edgeferry.lab.binfmt`). A fully arm64 host was tried and does not work under
#: qemu-user: runc fails "nsexec: could not ensure we are a cloned binary" (docs/arm64.md).
CLASS_PLATFORMS = {"x86": "linux/amd64", "jetson": "linux/arm64"}
#: A profile's `workloads:` choice: the engine's own platform (default), or its class's
#: platform (`CLASS_PLATFORMS`: a jetson-class host's workloads as linux/arm64 under qemu-user).
WORKLOAD_CHOICES = ("native", "class")


class Profile(BaseModel):
    """A hardware profile: its host class (x86 or jetson) and the CPU and memory limits applied
    to every host of the profile. Its name (the key in `profiles`) is the user's own."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    description: str = ""
    host_class: Literal["x86", "jetson"] | None = Field(default=None, alias="class")
    cpus: float = Field(gt=0, le=64)
    memory: str
    #: "native": workloads run as the machine's platform (default: every shipped image is
    #: single-platform); "class": as the class's platform (jetson: linux/arm64 under qemu-user,
    #: which needs multi-architecture images: experiments/labs/armlab.yaml, docs/arm64.md).
    workloads: Literal["native", "class"] = "native"

    @field_validator("memory")
    @classmethod
    def _memory_parses(cls, value: str) -> str:
        if parse_size(value) < 256 * 2**20:
            raise ValueError(f"memory {value!r} is below 256m; a systemd host needs more")
        return value

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory)


class HostSpec(BaseModel):
    """One emulated host."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: Literal["control", "edge"]
    profile: str
    address: str | None = None  # fixed address inside the lab subnet; assigned when omitted
    bandwidth: str | int | None = None  # per-host override of the lab's rate (edge hosts only)
    # seed-002 edge attributes (Table 2: eDAl ... eHRgpu) of an edge host, rendered into the
    # inventory over the defaults of `edgeferry.auditpolicy` (edge hosts only)
    audit: dict[str, Any] | None = None
    # seed-002 region of an edge host (the audit registry's; region migrations try its edges)
    region: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    # seed 003: this host's TCFDL cluster (edgeferry_tcfdl_cluster; unset: a for the control
    # host, b for edges), used when the lab enables TCFDL (`tcfdl: true`)
    tcfdl_cluster: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                f"host name {value!r} must start with a letter and use a-z, 0-9, '-' (max 31)"
            )
        return value

    @model_validator(mode="after")
    def _audit_ok(self) -> HostSpec:
        if self.audit is None:
            return self
        if self.role != "edge":
            raise ValueError(f"host {self.name!r}: audit: attributes are for edge hosts only")
        try:
            check_edge_attributes(self.name, self.audit)  # the audit agent's own validation
        except PolicyError as err:
            raise ValueError(f"host {self.name!r}: audit: {err}") from None
        return self


class LabSpec(BaseModel):
    """The whole lab, validated. `fingerprint()` changes when anything that shapes the lab does."""

    model_config = ConfigDict(extra="forbid")

    name: str = "lab"
    subnet: str = "10.250.0.0/24"
    bandwidth: str | int = "40mbit"
    profiles: dict[str, Profile]
    hosts: list[HostSpec]
    # The lab host image: "prebaked" (default) carries the Debian packages the playbooks install
    # on every host (Docker engine, venv support), so a first deploy checks them instead of
    # downloading them; "minimal" carries only what a freshly installed machine has (systemd,
    # sshd, Python), so the first deploy installs everything as on new hardware.
    host_image: Literal["prebaked", "minimal"] = "prebaked"
    # Seed 003: deploy TCFDL (edgeferry_tcfdl_enabled: nats-server per cluster, the manager,
    # masters, TEE proxies, function instances); off by default.
    tcfdl: bool = False

    @field_validator("name")
    @classmethod
    def _lab_name_ok(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"lab name {value!r} must start with a letter and use a-z, 0-9, '-'")
        return value

    @field_validator("subnet")
    @classmethod
    def _subnet_ok(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as err:
            raise ValueError(
                f"subnet {value!r} is not a network like 10.250.0.0/24 ({err})"
            ) from err
        if net.version != 4 or net.prefixlen > 28:
            raise ValueError(f"subnet {value!r} must be IPv4 with a prefix of /28 or larger")
        return str(net)

    @field_validator("bandwidth")
    @classmethod
    def _bandwidth_ok(cls, value: str | int) -> str | int:
        parse_rate(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LabSpec:
        names = [h.name for h in self.hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"host names must be unique; repeated: {', '.join(dupes)}")
        if sum(1 for h in self.hosts if h.role == "control") != 1:
            raise ValueError("a lab needs exactly one host with role 'control'")
        if not any(h.role == "edge" for h in self.hosts):
            raise ValueError("a lab needs at least one host with role 'edge'")
        for name, profile in self.profiles.items():
            if profile.host_class is None:
                if name not in HOST_CLASSES:
                    raise ValueError(
                        f"profile {name!r} needs `class: x86` or `class: jetson` (the host "
                        f"class the playbooks deploy; only profiles named "
                        f"{' or '.join(HOST_CLASSES)} may leave it out)"
                    )
                profile.host_class = name  # type: ignore[assignment]
        for host in self.hosts:
            if host.profile not in self.profiles:
                known = ", ".join(sorted(self.profiles))
                raise ValueError(
                    f"host {host.name!r} has unknown profile {host.profile!r}; known: {known}"
                )
            if host.bandwidth is not None:
                parse_rate(host.bandwidth)
        self._assign_addresses()
        return self

    def _assign_addresses(self) -> None:
        net = ipaddress.ip_network(self.subnet)
        usable = list(net.hosts())
        gateway = usable[0]
        taken: dict[str, str] = {}
        for host in self.hosts:
            if host.address is None:
                continue
            try:
                addr = ipaddress.ip_address(host.address)
            except ValueError as err:
                raise ValueError(
                    f"host {host.name!r}: address {host.address!r} is invalid"
                ) from err
            if addr not in net or addr == gateway or addr == net.broadcast_address:
                raise ValueError(
                    f"host {host.name!r}: address {addr} is not a usable host address of "
                    f"{net} (the gateway {gateway} is reserved)"
                )
            if str(addr) in taken:
                raise ValueError(f"hosts {taken[str(addr)]!r} and {host.name!r} share {addr}")
            taken[str(addr)] = host.name
        candidates = (a for a in usable[9:] if str(a) not in taken)  # .10 upwards
        for host in self.hosts:
            if host.address is None:
                try:
                    host.address = str(next(candidates))
                except StopIteration:
                    raise ValueError(
                        f"subnet {net} is too small for {len(self.hosts)} hosts"
                    ) from None

    # -- derived views -------------------------------------------------------------------------
    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    @property
    def control(self) -> HostSpec:
        return next(h for h in self.hosts if h.role == "control")

    @property
    def edges(self) -> list[HostSpec]:
        return [h for h in self.hosts if h.role == "edge"]

    def rate_bps(self, host: HostSpec) -> int | None:
        """Configured link rate of a host in bit/s (None: the host's link is not shaped)."""
        if host.role != "edge":
            return None
        return parse_rate(host.bandwidth if host.bandwidth is not None else self.bandwidth)

    def host_class(self, host: HostSpec) -> str:
        """The host class (x86 or jetson) of a host: its profile's class."""
        cls = self.profiles[host.profile].host_class
        assert cls is not None  # filled in by validation
        return cls

    def workload_platform(self, host: HostSpec) -> str:
        """The platform (``linux/amd64``, ``linux/arm64``) a host's workloads run as: its
        class's when its profile says ``workloads: class``, else "" (the engine's own)."""
        if self.profiles[host.profile].workloads != "class":
            return ""
        return CLASS_PLATFORMS[self.host_class(host)]

    def audit_attributes(self, host: HostSpec) -> dict[str, str]:
        """The seed-002 attributes in force at an edge host: the documented defaults of
        `edgeferry.auditpolicy` (by its class), then what its `audit:` entry states."""
        return edge_attributes(host.name, self.host_class(host), host.audit)

    def fingerprint(self) -> str:
        """Stable hash of the spec (with resolved addresses) used to detect changes."""
        doc = self.model_dump(mode="json")
        # fields added later count only when set, so existing labs keep their fingerprint
        if not doc.get("tcfdl"):
            doc.pop("tcfdl", None)
        for host in doc["hosts"]:
            if host.get("tcfdl_cluster") is None:
                host.pop("tcfdl_cluster", None)
        blob = json.dumps(doc, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "lab"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = f"unknown key {where!r}; remove it or check its spelling"
        return f"{source}: {msg}"
    return f"{source}: {where}: {msg}"


def default_lab_document() -> dict[str, Any]:
    text = resources.files("edgeferry.lab").joinpath("data/default-lab.yaml").read_text()
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def load_spec(
    lab_file: Path | None = None,
    *,
    name: str | None = None,
    subnet: str | None = None,
    bandwidth: str | None = None,
    edges: int | None = None,
    edge_profile: str | None = None,
) -> LabSpec:
    """Build a validated LabSpec from the default or a lab file, then apply flag overrides."""
    if lab_file is None:
        doc, source = default_lab_document(), "default lab"
    else:
        source = str(lab_file)
        try:
            doc = yaml.safe_load(Path(lab_file).read_text())
        except FileNotFoundError:
            raise ConfigError(f"lab file {lab_file} does not exist") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{lab_file}: not valid YAML ({err})".replace("\n", " ")) from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{lab_file}: expected a mapping with name, subnet, profiles, hosts")
        doc.setdefault("profiles", default_lab_document()["profiles"])
    if name is not None:
        doc["name"] = name
    if subnet is not None:
        doc["subnet"] = subnet
    if bandwidth is not None:
        doc["bandwidth"] = bandwidth
    if edges is not None or edge_profile is not None:
        doc["hosts"] = _resize_edges(doc, edges, edge_profile)
    try:
        return LabSpec.model_validate(doc)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def _resize_edges(
    doc: dict[str, Any], edges: int | None, edge_profile: str | None
) -> list[dict[str, Any]]:
    hosts = [dict(h) for h in doc.get("hosts", [])]
    control = [h for h in hosts if h.get("role") == "control"]
    current = [h for h in hosts if h.get("role") == "edge"]
    count = len(current) if edges is None else edges
    if count < 1:
        raise ConfigError("--edges must be at least 1")
    if count > 32:
        raise ConfigError("--edges must be at most 32 on one machine")
    profiles = [h.get("profile", "x86") for h in current] or ["x86"]
    result = list(control)
    for i in range(count):
        profile = edge_profile or profiles[i % len(profiles)]
        entry = dict(current[i]) if i < len(current) else {"name": f"edge{i + 1}", "role": "edge"}
        entry["profile"] = profile
        if i >= len(current):
            entry.pop("address", None)
        result.append(entry)
    return result
