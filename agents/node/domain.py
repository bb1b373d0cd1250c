"""Node agent domain rules. No grpc, no docker: pure values and functions.

* `Resources`: the five dimensions of seed 000 (CPU millicores, memory, storage, network bps,
  GPUs) with FREE = MAX - ALLOC clamped at zero.
* `must_forward` is BloSM Algorithm 3's test: a request is migrated to a neighbour when, for any
  resource it asks for, REQ_res >= R_rem with R_rem = R_tot - R_used. `choose_neighbour` picks
  the nearest neighbour where the request does not trigger that test.
* `ImageRef` parses ``registry/repo:tag`` and ``registry/repo@sha256:...``.
* `push_transfers` / `pull_transfers` turn the engine's progress events plus the registry
  manifest into per-layer "moved or skipped" records, so the bytes actually pushed or pulled
  are the compressed sizes of the layers that moved.
* `check_epoch` is the migration fence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any


class NodeError(Exception):
    """Base class of node-agent errors that requests can cause."""


class InvalidRequest(NodeError):
    """A field is malformed."""


class Fenced(NodeError):
    """A phase request carries an epoch older than one already seen for the migration."""


class NotFound(NodeError):
    """The referenced workload, container or image does not exist."""


class Conflict(NodeError):
    """The object exists and belongs to something else."""


class PhaseFailed(NodeError):
    """The engine or registry failed the phase."""


class DigestMismatch(PhaseFailed):
    """The pulled image is not the one that was pushed."""


class NoCapacity(NodeError):
    """Neither this host nor any neighbour can serve the request."""


# -- resources ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    cpu_millicores: int = 0
    memory_bytes: int = 0
    storage_bytes: int = 0
    network_bps: int = 0
    gpu: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def minus(self, other: Resources) -> Resources:
        """Component-wise difference clamped at zero (FREE never goes negative)."""
        return Resources(
            *(max(0, a - b) for a, b in zip(self.values(), other.values(), strict=True))
        )

    def values(self) -> tuple[int, ...]:
        """The five amounts in field order (millicores, memory B, storage B, network bps, GPUs)."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def as_dict(self) -> dict[str, int]:
        """Field name -> amount, JSON-ready; :meth:`from_dict` reads it back."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resources:
        """Read :meth:`as_dict` output; absent dimensions are 0, others are coerced with ``int``."""
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})

    def any_positive(self) -> bool:
        """True when some dimension is above zero (something requested, or free to advertise)."""
        return any(v > 0 for v in self.values())

    @staticmethod
    def total(items: Iterable[Resources]) -> Resources:
        """The component-wise sum of ``items`` (all zero when there are none)."""
        out = Resources()
        for item in items:
            out = out + item
        return out


def must_forward(required: Resources, total: Resources, used: Resources) -> bool:
    """Algorithm 3: REQ_res >= R_rem (R_rem = R_tot - R_used) for any requested dimension.

    Only dimensions the request asks for (> 0) are compared: a request for no GPU is not
    forwarded just because the host has no GPU left.
    """
    remaining = total.minus(used)
    return any(
        req > 0 and req >= rem
        for req, rem in zip(required.values(), remaining.values(), strict=True)
    )


@dataclass(frozen=True)
class Neighbour:
    """A neighbouring edge as seen when a request must move."""

    name: str
    distance: float
    free: Resources


def choose_neighbour(required: Resources, candidates: Sequence[Neighbour]) -> Neighbour | None:
    """The nearest neighbour that can serve ``required`` locally (ties broken by name)."""
    fitting = [
        n for n in candidates if not must_forward(required, n.free, Resources())
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda n: (n.distance, n.name))


# -- names and image references -----------------------------------------------------------------

MIGRATION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_migration_id(value: str) -> str:
    """Return ``value`` if it matches `MIGRATION_ID_RE`; otherwise raise `InvalidRequest`."""
    if not MIGRATION_ID_RE.match(value):
        raise InvalidRequest(f"migration id {value!r} must match {MIGRATION_ID_RE.pattern}")
    return value


def check_container_name(value: str) -> str:
    """Return ``value`` if it matches `CONTAINER_NAME_RE`; otherwise raise `InvalidRequest`."""
    if not CONTAINER_NAME_RE.match(value):
        raise InvalidRequest(f"workload name {value!r} must match {CONTAINER_NAME_RE.pattern}")
    return value


@dataclass(frozen=True)
class ImageRef:
    """``[registry/]repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Split an image reference; raise `InvalidRequest` for a bad digest, tag or repository.

        The first path component is a registry only if it has a ``.`` or ``:`` or is
        ``localhost`` (the engine's rule); ``digest`` must be ``sha256:`` + 64 hex digits.
        """
        rest, _, digest = text.partition("@")
        if digest and not DIGEST_RE.match(digest):
            raise InvalidRequest(f"bad digest in image reference {text!r}")
        name, tag = rest, ""
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            name, tag = rest[:colon], rest[colon + 1 :]
            if not TAG_RE.match(tag):
                raise InvalidRequest(f"bad tag in image reference {text!r}")
        registry = ""
        first, sep, remainder = name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, name = first, remainder
        if not REPOSITORY_RE.match(name):
            raise InvalidRequest(f"bad repository in image reference {text!r}")
        return cls(registry, name, tag, digest)

    @property
    def name(self) -> str:
        """``registry/repository`` (the repository alone when no registry): no tag, no digest."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def pinned(self, digest: str) -> str:
        """The reference ``name@digest``: this image pinned to ``digest``, its tag dropped."""
        return f"{self.name}@{digest}"


# -- layer byte accounting ----------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    transferred: bool


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def layer_statuses(events: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Progress-stream statuses seen per short id (``{"id": ..., "status": ...}`` events)."""
    out: dict[str, set[str]] = {}
    for event in events:
        if "id" in event and "status" in event:
            out.setdefault(str(event["id"]), set()).add(str(event["status"]).split(" ")[0])
    return out


def push_transfers(
    diff_ids: Sequence[str],
    manifest_layers: Sequence[Mapping[str, Any]],
    statuses: Mapping[str, set[str]],
) -> list[Layer]:
    """Which layers a push uploaded.

    The engine's push progress ids are the truncated *diff ids* (uncompressed layer digests,
    ``RootFS.Layers``); the manifest lists the compressed blobs in the same order. A layer was
    uploaded when its status was ``Pushed``; ``Layer already exists`` / ``Mounted from`` moved
    nothing.
    """
    if len(diff_ids) != len(manifest_layers):
        raise PhaseFailed(
            f"the image has {len(diff_ids)} layers but the manifest lists {len(manifest_layers)}"
        )
    return [
        Layer(str(m["digest"]), int(m["size"]), "Pushed" in statuses.get(_short(d), set()))
        for d, m in zip(diff_ids, manifest_layers, strict=True)
    ]


def pull_transfers(
    manifest_layers: Sequence[Mapping[str, Any]], statuses: Mapping[str, set[str]]
) -> list[Layer]:
    """Which layers a pull downloaded (progress ids are truncated compressed digests)."""
    out = []
    for m in manifest_layers:
        seen = statuses.get(_short(str(m["digest"])), set())
        moved = bool(seen & {"Downloading", "Download", "Pull", "Verifying", "Extracting"})
        out.append(Layer(str(m["digest"]), int(m["size"]), moved and "Already" not in seen))
    return out


def moved_bytes(layers: Iterable[Layer]) -> int:
    """Bytes that crossed the network: the manifest sizes of the layers actually transferred."""
    return sum(layer.size for layer in layers if layer.transferred)


# -- fencing ------------------------------------------------------------------------------------


def check_epoch(migration_id: str, epoch: int, max_seen: int | None) -> int:
    """Return the new fence (max epoch) or raise `Fenced` for a stale epoch."""
    if epoch < 1:
        raise InvalidRequest("epoch must be >= 1")
    if max_seen is not None and epoch < max_seen:
        raise Fenced(
            f"migration {migration_id}: epoch {epoch} is older than epoch {max_seen} "
            "already seen; the SMF has moved on"
        )
    return max(epoch, max_seen or 0)
