"""Shared pieces of the image builders: recipe hashing, the Docker client, build from a context.

Every builder tags its image ``edgeferry/<name>:<recipe hash>``; the hash covers everything that
determines the image's content (base tag, files, parameters), so an existing tag means "already
built" and nothing is rebuilt (`edgeferry.lab.image.image_exists` is the shared check).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from edgeferry.errors import EnvironmentProblem, OperationFailed
from edgeferry.lab.image import image_exists

IMAGE_NAMESPACE = "edgeferry"
#: Label put on every image we build (clean-up and provenance).
RECIPE_LABEL = "org.edgeferry.recipe"

Log = Callable[[str], None]


def recipe_hash(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable recipe parts (12 hex digits)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


@dataclass(frozen=True)
class BuiltImage:
    """Result of a build: the tag, its image id, and seconds spent building (0 when cached)."""

    tag: str
    image_id: str
    build_seconds: float

    @property
    def cached(self) -> bool:
        return self.build_seconds == 0.0


def docker_client() -> Any:
    """A Docker SDK client for the local engine, or EnvironmentProblem with what to do."""
    import docker  # imported here: only builders and the node agent need it
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as err:
        raise EnvironmentProblem(
            f"cannot reach the Docker engine ({err}); start dockerd or set DOCKER_HOST"
        ) from None
    return client


def save_image(tag: str, out: IO[bytes]) -> None:
    """Write the local image ``tag`` to ``out`` as a `docker save` archive that names it ``tag``.

    Asked by name on purpose: `save(named=True)` names the archive after the image's *first*
    tag, and an image with two tags (the same content built twice, or tagged for a push that
    left its tag behind) would then load elsewhere under the other name."""
    for chunk in docker_client().images.get(tag).save(named=tag):
        out.write(chunk)


def image_id(tag: str) -> str:
    return str(docker_client().images.get(tag).id)


def cached(tag: str) -> BuiltImage | None:
    """The already-built image for ``tag``, or None."""
    if image_exists(tag):
        return BuiltImage(tag, image_id(tag), 0.0)
    return None


def build_context(files: Mapping[str, tuple[int, bytes]]) -> io.BytesIO:
    """An in-memory tar build context from ``{path: (mode, content)}`` (fixed mtimes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (mode, data) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def build_from_context(
    tag: str, files: Mapping[str, tuple[int, bytes]], *, recipe: str, log: Log = print,
    platform: str | None = None,
) -> BuiltImage:
    """``docker build`` (classic builder: FROM resolves local images, nothing is pulled);
    ``platform`` (``linux/arm64``) builds on a base of that platform, RUN steps under qemu."""
    from docker.errors import APIError, BuildError

    started = time.monotonic()
    client = docker_client()
    try:
        image, _logs = client.images.build(
            fileobj=build_context(files),
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            labels={RECIPE_LABEL: recipe},
            **({"platform": platform} if platform else {}),
        )
    except BuildError as err:
        tail = " | ".join(
            str(chunk.get("stream", chunk.get("error", ""))).strip()
            for chunk in list(err.build_log)[-4:]
        )
        raise OperationFailed(f"building {tag} failed: {err.msg}; last lines: {tail}") from None
    except APIError as err:
        raise OperationFailed(f"building {tag} failed: {err.explanation or err}") from None
    elapsed = time.monotonic() - started
    log(f"built {tag} in {elapsed:.1f} s")
    return BuiltImage(tag, str(image.id), elapsed)
