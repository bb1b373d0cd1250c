"""OCI platforms: parsing ``os/arch[/variant]``, the image index, choosing a host's variant.

Pure functions shared by the controller (which writes one OCI image index per workload image,
`edgeferry.images.multiarch`) and the node agent (which pulls the variant for the platform its
workloads run, `agents.node.engine`). Vocabulary of the OCI image spec: architecture ``amd64``,
``arm64`` (variant ``v8`` implied), os ``linux``; `platform.machine()` names (``x86_64``,
``aarch64``) map onto them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.oci.image.manifest.v1+json")

#: `platform.machine()` / `uname -m` names -> OCI architecture.
MACHINE_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
#: The default variant of an architecture (the OCI spec: arm64 means arm64/v8).
DEFAULT_VARIANT = {"arm64": "v8"}


class PlatformError(ValueError):
    """A malformed platform string, or an index without a variant for the wanted platform."""


@dataclass(frozen=True, order=True)
class Platform:
    """An OCI platform (os, architecture, variant; variant "" when none is stated)."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def normalized(self) -> Platform:
        """The same platform with the implied variant spelled out (arm64 -> arm64/v8)."""
        return Platform(self.os, self.architecture,
                        self.variant or DEFAULT_VARIANT.get(self.architecture, ""))

    def matches(self, other: Platform) -> bool:
        """Equal after normalisation (linux/arm64 matches linux/arm64/v8)."""
        return self.normalized() == other.normalized()

    def as_oci(self) -> dict[str, str]:
        """The ``platform`` object of an index entry."""
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


def parse_platform(text: str) -> Platform:
    """``linux/arm64``, ``linux/arm64/v8``, ``linux/amd64`` (Docker's ``--platform`` syntax)."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(p and p.isascii() and p.replace("_", "").isalnum()
                                           for p in parts):
        raise PlatformError(f"platform {text!r} is not os/architecture[/variant]")
    return Platform(*(p.lower() for p in parts))


def native_platform(machine: str, os_name: str = "linux") -> Platform:
    """The platform of a machine as `platform.machine()` / ``uname -m`` names it."""
    arch = MACHINE_ARCH.get(machine.lower())
    if arch is None:
        raise PlatformError(f"unknown machine {machine!r} (known: {sorted(MACHINE_ARCH)})")
    return Platform(os_name, arch)


@dataclass(frozen=True)
class Descriptor:
    """One entry of an image index: a single-platform manifest."""

    media_type: str
    digest: str
    size: int
    platform: Platform

    def as_oci(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size,
                "platform": self.platform.as_oci()}


def image_index(entries: Iterable[Descriptor],
                annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An OCI image index (schemaVersion 2) of single-platform manifests, one per platform."""
    items = sorted(entries, key=lambda d: d.platform.normalized())
    seen: set[Platform] = set()
    for d in items:
        if d.media_type not in MANIFEST_TYPES:
            raise PlatformError(f"{d.digest}: an index entry must be an image manifest, "
                                f"not {d.media_type}")
        if not d.digest.startswith("sha256:") or len(d.digest) != 71 or d.size <= 0:
            raise PlatformError(f"index entry {d.digest!r} (size {d.size}) is malformed")
        key = d.platform.normalized()
        if key in seen:
            raise PlatformError(f"two index entries for {key}")
        seen.add(key)
    if not items:
        raise PlatformError("an image index needs at least one manifest")
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                             "manifests": [d.as_oci() for d in items]}
    if annotations:
        index["annotations"] = dict(sorted(annotations.items()))
    return index


def index_bytes(index: Mapping[str, Any]) -> bytes:
    """The canonical bytes we upload (the registry's digest is the sha256 of exactly these)."""
    return json.dumps(index, sort_keys=True, separators=(",", ":")).encode()


def is_index(document: Mapping[str, Any]) -> bool:
    """True for an OCI image index or a Docker manifest list."""
    return document.get("mediaType") in INDEX_TYPES or (
        "manifests" in document and "layers" not in document)


def descriptors(document: Mapping[str, Any]) -> list[Descriptor]:
    """The platform entries of an index (entries without a platform are skipped: attestations
    and other artifacts carry none)."""
    out = []
    for entry in document.get("manifests") or []:
        plat = entry.get("platform")
        if not isinstance(plat, Mapping) or "architecture" not in plat or "os" not in plat:
            continue
        out.append(Descriptor(str(entry.get("mediaType", "")), str(entry["digest"]),
                              int(entry.get("size", 0)),
                              Platform(str(plat["os"]), str(plat["architecture"]),
                                       str(plat.get("variant", "")))))
    return out


def select(document: Mapping[str, Any], wanted: Platform) -> Descriptor:
    """The index entry for ``wanted`` (implied variants matched); PlatformError naming the
    platforms the index has when it has none for ``wanted``."""
    entries = descriptors(document)
    for d in entries:
        if d.platform.matches(wanted):
            return d
    have = ", ".join(str(d.platform) for d in entries) or "none"
    raise PlatformError(f"the image has no variant for {wanted} (it has: {have})")
