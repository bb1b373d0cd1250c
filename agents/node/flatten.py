"""Image depth at commit: when to flatten, and the single-layer image archive. No docker here.

Every migration commits the service's container as one more layer on top of the image it runs
from, so an image migrated N times has (original layers + N) layers. overlay2 mounts at most
`OVERLAY_MAX_LAYERS` lower layers under a container, and ``docker commit`` / ``docker run`` fail
with "max depth exceeded" beyond that: without a bound, a service migrated ~120 times could never
migrate again.

The node agent therefore counts the layers the commit would produce (`committed_layers`: the
RootFS layers of the container's image + 1). Below the node setting ``max_image_layers``
(`DEFAULT_MAX_IMAGE_LAYERS`) it commits as before -- the diff-first migration then moves only
the container diff. At or above it (`must_flatten`) it builds a *flattened* image instead: the
container's whole filesystem (``docker export``, a merged view without whiteouts) as ONE layer,
with the image config the commit would have produced (the container's Config with the migration
labels merged: Cmd, Entrypoint, Env, WorkingDir, User, ExposedPorts, Volumes, Labels,
Healthcheck, StopSignal, ...), loaded with ``docker load`` from the archive `image_archive`
streams. That image migration's push and pull move the whole filesystem (compressed) once, since
the registry holds none of its layer; the migrations after it are diff-only again, on top of it.

Why not "original image + one layer": the Docker API has no way to produce one layer holding a
container's state relative to an older ancestor; building it means diffing two exports and
writing whiteouts by hand (deleted files, replaced directories, hardlinks), which is far easier
to get subtly wrong than an export, whose content the engine itself defines.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

#: overlay2's limit on lower layers under one container (moby ``maxDepth``).
OVERLAY_MAX_LAYERS = 128
#: Default ``max_image_layers``: commit normally below it, flatten at or above it.
DEFAULT_MAX_IMAGE_LAYERS = 64
#: Bounds of the setting: a flattened image has 1 layer, so 2 is the least meaningful threshold;
#: the ceiling keeps a margin under overlay2's limit (a normal commit must still succeed).
MIN_MAX_IMAGE_LAYERS = 2
MAX_MAX_IMAGE_LAYERS = 120

_CHUNK = 1 << 20


def committed_layers(image_layers: int) -> int:
    """Layers of the image a ``docker commit`` would produce from a container whose image has
    ``image_layers`` layers (the container's writable layer becomes one more)."""
    if image_layers < 0:
        raise ValueError("a layer count is never negative")
    return image_layers + 1


def check_max_layers(max_layers: int) -> int:
    """``max_layers`` when it is a usable ``max_image_layers`` setting, else ValueError."""
    if not MIN_MAX_IMAGE_LAYERS <= max_layers <= MAX_MAX_IMAGE_LAYERS:
        raise ValueError(f"max_image_layers must be in [{MIN_MAX_IMAGE_LAYERS}, "
                         f"{MAX_MAX_IMAGE_LAYERS}], got {max_layers}")
    return max_layers


def must_flatten(image_layers: int, max_layers: int) -> bool:
    """True when committing on top of an image of ``image_layers`` layers would reach
    ``max_layers`` or more: the commit must produce a flattened (single-layer) image."""
    return committed_layers(image_layers) >= check_max_layers(max_layers)


def layers_after(image_layers: int, commits: int, max_layers: int | None) -> int:
    """Layer count after ``commits`` successive migrations (commits) starting from an image of
    ``image_layers`` layers; ``max_layers=None`` is the behaviour without flattening."""
    layers = image_layers
    for _ in range(commits):
        flat = max_layers is not None and must_flatten(layers, max_layers)
        layers = 1 if flat else committed_layers(layers)
    return layers


def image_config(container_config: Mapping[str, Any], labels: Mapping[str, str], *,
                 architecture: str, os_name: str, diff_ids: Sequence[str], created: str,
                 created_by: str, variant: str = "") -> dict[str, Any]:
    """The image config (Docker image spec v1.2) of an image built without ``docker commit``:
    the container's run config as a commit records it (with ``labels`` as its Labels) and the
    layers ``diff_ids`` (bottom first); the history names only the top layer."""
    config = {k: v for k, v in container_config.items() if k != "Image"}
    config["Labels"] = dict(labels)
    out: dict[str, Any] = {
        "architecture": architecture, "os": os_name, "created": created, "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": created, "created_by": created_by}],
    }
    if variant:
        out["variant"] = variant
    return out


def flat_image_config(container_config: Mapping[str, Any], labels: Mapping[str, str], *,
                      architecture: str, os_name: str, diff_id: str, created: str,
                      created_by: str, variant: str = "") -> dict[str, Any]:
    """The image config of the flattened image: `image_config` with one layer."""
    return image_config(container_config, labels, architecture=architecture, os_name=os_name,
                        diff_ids=[diff_id], created=created, created_by=created_by,
                        variant=variant)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def image_archive(layer: BinaryIO, layer_size: int, config: bytes,
                  repo_tag: str, lower_layers: int = 0) -> Iterator[bytes]:
    """Stream a ``docker load`` archive (``docker save`` layout) of one image: ``layer`` (an
    uncompressed layer tar of ``layer_size`` bytes, read from its current position), the image
    ``config`` JSON, and a manifest tagging it ``repo_tag``. ``lower_layers``: the config's
    diff_ids below ``layer``, which the engine must already hold (it skips the layers of a chain
    it has, so their files are named in the manifest but not in the archive)."""
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [repo_tag],
                            "Layers": [*(f"lower{i}/layer.tar" for i in range(lower_layers)),
                                       "layer.tar"]}]).encode()
    yield _header("layer.tar", layer_size)
    left = layer_size
    while left:
        chunk = layer.read(min(_CHUNK, left))
        if not chunk:
            raise ValueError(f"layer ended {left} bytes early")
        left -= len(chunk)
        yield chunk
    yield _padding(layer_size)
    for name, body in (("config.json", config), ("manifest.json", manifest)):
        yield _header(name, len(body)) + body + _padding(len(body))
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def read_archive(chunks: Iterator[bytes]) -> dict[str, bytes]:
    """The members of an archive `image_archive` streamed (for tests and checks)."""
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        out = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            out[member.name] = handle.read() if handle else b""
        return out
