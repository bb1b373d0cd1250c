"""The direct order against the Docker engine: a stopped container's changes exported as one
layer (difflayer.py holds the pure rules), and that layer loaded on the image it came from.

    for part in export_diff(engine, "ef-nms", labels, MAX_DIFF_BYTES):   # the source:
        ...  # bytes of the layer, then an `Exported` (digest, size, config, base image)
    load_diff(engine, path, size, config, base_image_id, target)         # the destination

The engine lists the changes (``GET /containers/{id}/changes``) and gives each fetched path as a
tar (``GET /containers/{id}/archive``); the config is what ``docker commit`` would record (the
container's Config with the migration labels) over the image's layers plus the new one. The
destination's ``docker load`` hashes the layer against the config's last diff_id and stacks it
on the layers it already holds (the archive names the lower layers without carrying them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import threading
import time
from base64 import b64decode
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from queue import Full, Queue
from typing import Any

from docker.errors import APIError, ImageNotFound
from docker.errors import NotFound as DockerNotFound

from agents.common.platforms import Platform
from agents.node.difflayer import (
    DELETED,
    BadChanges,
    ChunkReader,
    Fetch,
    LayerPlan,
    LayerWriter,
    plan_layer,
    remaining_after,
    without_mounts,
)
from agents.node.domain import ImageRef, InvalidRequest, PhaseFailed
from agents.node.engine import DockerEngine, Timed
from agents.node.flatten import image_archive, image_config

#: Go's os.ModeDir in the engine's path stat
GO_MODE_DIR = 1 << 31
#: the direct order's bounds: a diff layer, its image config, and one streamed chunk
MAX_DIFF_BYTES = 8 << 30
MAX_DIFF_CONFIG_BYTES = 1 << 20
DIFF_CHUNK_BYTES = 1 << 20
#: an export's chunks (gRPC messages) and how many it may make ahead of the link (16 MiB)
EXPORT_CHUNK_BYTES = 256 << 10
EXPORT_QUEUE_CHUNKS = 64


def bytes_digest(data: bytes) -> str:
    """sha256:<hex> of ``data`` (an image config's digest is its image id)."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def last_diff_id(config: bytes) -> str:
    """The top layer's diff_id in an image config ("" when it names none or is not one)."""
    try:
        ids = json.loads(config)["rootfs"]["diff_ids"]
        return str(ids[-1]) if isinstance(ids, list) and ids else ""
    except (ValueError, KeyError, TypeError):
        return ""


def receive_file(path: Path, chunks: Iterable[bytes], limit: int) -> tuple[str, int]:
    """Write ``chunks`` to a new 0600 file at ``path``; (sha256:<hex>, bytes). More than
    ``limit`` bytes, or a chunk over DIFF_CHUNK_BYTES, is refused (the file is removed)."""
    sha, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limit or len(chunk) > DIFF_CHUNK_BYTES:
                    raise InvalidRequest(f"the stream holds more than {limit} bytes (or a "
                                         f"chunk over {DIFF_CHUNK_BYTES} bytes)")
                sha.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return f"sha256:{sha.hexdigest()}", size


def path_stat(engine: DockerEngine, container_id: str, path: str) -> dict[str, Any] | None:
    """The engine's stat of ``path`` in a container (HEAD of its archive), None if absent."""
    api = engine.client.api
    resp = api.head(api._url("/containers/{0}/archive", container_id),
                    params={"path": path})
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        raise PhaseFailed(f"stat {path} in {container_id[:12]}: HTTP {resp.status_code}")
    header = resp.headers.get("X-Docker-Container-Path-Stat", "")
    return dict(json.loads(b64decode(header))) if header else {}


@dataclass(frozen=True)
class Exported:
    """The end of an export: the layer's digest and size, the image config (JSON bytes), the
    image the container ran, the entry and whiteout counts, the seconds it took, the seconds
    the engine took to list the changes and each archive fetch (from the call to its end)."""

    digest: str
    size: int
    config: bytes
    base_image_id: str
    entries: int
    whiteouts: int
    seconds: float
    listed_s: float = 0.0
    fetch_s: tuple[float, ...] = ()
    early: int = 0

    def engine_summary(self) -> str:
        """"changes listed in 0.05 s; 3 archive fetches (2 before that listing, from the one
        made before the stop), 0.61 s in all (longest 0.30 s)"."""
        most = max(self.fetch_s, default=0.0)
        first = (f" ({self.early} before that listing, from the one made before the stop)"
                 if self.early else "")
        return (f"changes listed in {self.listed_s:.2f} s; {len(self.fetch_s)} archive fetches"
                f"{first}, {sum(self.fetch_s):.2f} s in all (longest {most:.2f} s)")


class _QueueWriter:
    """A write-only file that hands what is written to a bounded queue in chunks of
    EXPORT_CHUNK_BYTES (the producer waits while the consumer is behind; `cancelled` stops it)."""

    def __init__(self, queue: Queue[Any], cancelled: threading.Event) -> None:
        self.queue, self.cancelled, self.buf = queue, cancelled, bytearray()

    def _put(self, item: Any) -> None:
        while True:
            if self.cancelled.is_set():
                raise PhaseFailed("the export was cancelled")
            with contextlib.suppress(Full):
                self.queue.put(item, timeout=0.5)
                return

    def write(self, data: bytes) -> int:
        self.buf += data
        while len(self.buf) >= EXPORT_CHUNK_BYTES:
            self._put(bytes(self.buf[:EXPORT_CHUNK_BYTES]))
            del self.buf[:EXPORT_CHUNK_BYTES]
        return len(data)

    def flush(self) -> None:
        if self.buf:
            self._put(bytes(self.buf))
            self.buf.clear()


class EarlyListings:
    """Change lists made before a stop, by (migration id, epoch), for the export of that
    attempt: the newest ``keep_at_most`` (an attempt whose export never comes is dropped)."""

    def __init__(self, keep_at_most: int = 8) -> None:
        self._lists: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._most, self._lock = keep_at_most, threading.Lock()

    def keep(self, key: tuple[str, int], changes: list[dict[str, Any]]) -> None:
        with self._lock:
            self._lists.pop(key, None)
            self._lists[key] = changes
            while len(self._lists) > self._most:
                self._lists.pop(next(iter(self._lists)))

    def take(self, key: tuple[str, int]) -> list[dict[str, Any]] | None:
        with self._lock:
            return self._lists.pop(key, None)


def export_diff(engine: DockerEngine, name: str, labels: Mapping[str, str],
                max_bytes: int, early: Sequence[Mapping[str, Any]] | None = None,
                ) -> Iterator[bytes | Exported]:
    """The stopped container ``name``'s changes as one layer tar (difflayer.py), streamed as
    the engine gives each path (a thread fetches ahead, at most EXPORT_QUEUE_CHUNKS chunks),
    then an `Exported` with the config of ``its image + that layer`` as ``docker commit``
    would record it. Mounted paths (secrets, volumes) are left out, as a commit leaves them.
    The paths that carry bytes are fetched first, modified directories' own entries last (the
    engine applies a directory's entry whenever it comes), so the link is busy early.

    ``early``: the change list the engine gave while the container still ran (the stop's
    ``list_changes``). Its paths are fetched first -- now, from the stopped container -- and
    the link carries them while the engine lists the changes again (a listing walks the
    image: 0.4 s for the NMS); the second listing decides the layer (`remaining_after`)."""
    container = engine._container(name)
    container.reload()
    if container.status == "running":
        raise PhaseFailed(f"{name} is running: stop it before exporting its changes")
    image = engine.client.images.get(str(container.attrs["Image"])).attrs
    mounts = [str(m.get("Destination", "")) for m in container.attrs.get("Mounts") or []
              if m.get("Destination")]
    started = time.monotonic()
    queue: Queue[Any] = Queue(maxsize=EXPORT_QUEUE_CHUNKS)
    cancelled = threading.Event()
    counts: dict[str, int] = {}
    timings: dict[str, Any] = {"listed": 0.0, "fetches": [], "early": 0}

    def planned(listed: Iterable[Mapping[str, Any]], stat: bool) -> LayerPlan:
        changes = without_mounts(listed, mounts)
        exists = {str(c["Path"]): stat and path_stat(engine, container.id,
                                                     str(c["Path"])) is not None
                  for c in changes if c.get("Kind") == DELETED}
        return plan_layer(changes, exists)

    def fetch_all(writer: LayerWriter, fetches: Iterable[Fetch],
                  gone_ok: bool = False) -> list[Fetch]:
        """Fetch and write ``fetches``; the ones made. ``gone_ok``: a path the engine no
        longer has is left out (an early one, deleted before the stop: nothing was written)."""
        made = []
        for fetch in sorted(fetches, key=lambda f: f.header_only):
            asked = time.monotonic()
            try:
                stream, stat = engine.client.api.get_archive(container.id, fetch.path,
                                                             chunk_size=1 << 20)
            except DockerNotFound:
                if not gone_ok:
                    raise
                continue
            is_dir = bool(int((stat or {}).get("mode", 0)) & GO_MODE_DIR)
            try:  # a directory's entry alone: its subtree is not read
                writer.add_fetched(fetch, ChunkReader(stream), header_only=is_dir and (
                    fetch.header_only or fetch.if_file))
            finally:
                stream.close()
                timings["fetches"].append(time.monotonic() - asked)
            made.append(fetch)
        return made

    def produce() -> None:
        sink = _QueueWriter(queue, cancelled)
        try:
            # deleted paths are never fetched early (whiteouts come from the second listing)
            listed_early = planned(early, stat=False).fetches if early is not None else ()
            writer = LayerWriter(sink, max_bytes, skip=mounts)
            try:
                first = fetch_all(writer, listed_early, gone_ok=True)
                timings["early"] = len(first)
                listing = time.monotonic()
                plan = planned(engine.client.api.diff(container.id) or [], stat=True)
                timings["listed"] = time.monotonic() - listing
                fetch_all(writer, remaining_after(first, plan))
                writer.add_whiteouts(plan.whiteouts)
            except BaseException:
                writer.discard()
                raise
            digest, size = writer.close()
            sink.flush()
            counts.update(entries=writer.entries, whiteouts=len(plan.whiteouts))
            sink._put(("done", digest, size))
        except APIError as err:
            hand(PhaseFailed(f"export the changes of {name}: {err.explanation or err}"))
        except (BadChanges, tarfile.TarError) as err:
            hand(PhaseFailed(f"export the changes of {name}: {err}"))
        except BaseException as err:  # handed to the consumer
            hand(err)

    def hand(err: BaseException) -> None:
        with contextlib.suppress(PhaseFailed):  # nobody waits for it once cancelled
            _QueueWriter(queue, cancelled)._put(("error", err))

    thread = threading.Thread(target=produce, name=f"export-{name}", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if isinstance(item, bytes):
                yield item
                continue
            if item[0] == "error":
                raise item[1]
            _, digest, size = item
            break
    finally:
        cancelled.set()
        thread.join(timeout=10)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    config = image_config(
        container.attrs["Config"], {**(container.labels or {}), **labels},
        architecture=str(image["Architecture"]), os_name=str(image["Os"]),
        variant=str(image.get("Variant") or ""),
        diff_ids=[*(image["RootFS"].get("Layers") or []), digest], created=created,
        created_by=f"edgeferry: the changes of {container.name} (direct order)")
    yield Exported(digest, size, json.dumps(config).encode(), str(container.attrs["Image"]),
                   counts["entries"], counts["whiteouts"], time.monotonic() - started,
                   timings["listed"], tuple(timings["fetches"]), timings["early"])


def load_diff(engine: DockerEngine, layer: Path, size: int, config_bytes: bytes, base_image_id: str,
              target: ImageRef) -> Timed:
    """Load the layer tar at ``layer`` on top of the local image ``base_image_id`` as
    ``target`` with the source's config: the engine hashes the tar against the config's
    last diff_id and finds the layers below it in the base (refused when they differ)."""
    try:
        config = json.loads(config_bytes)
        diff_ids = [str(d) for d in config["rootfs"]["diff_ids"]]
        built_for = Platform(str(config.get("os") or "linux"),
                             str(config.get("architecture") or ""),
                             str(config.get("variant") or ""))
    except (ValueError, KeyError, TypeError) as err:
        raise PhaseFailed(f"the diff's image config is not usable: {err}") from None
    if built_for.architecture and not built_for.matches(engine.platform):
        raise PhaseFailed(f"the diff was committed on {built_for}, this host runs "
                          f"{engine.platform}: the direct order moves a diff between hosts of "
                          "one platform (the diff order re-bases it)")
    try:
        base = list(engine.client.images.get(base_image_id).attrs["RootFS"].get("Layers")
                    or [])
    except ImageNotFound:
        raise PhaseFailed(f"the image the source ran ({base_image_id[:19]}) is not on this "
                          "host: pre-pull it before the stop") from None
    if not diff_ids or base != diff_ids[:-1]:
        raise PhaseFailed(f"the diff's config stacks on {len(diff_ids) - 1} layers that are "
                          f"not those of {base_image_id[:19]} ({len(base)} layers)")
    started = time.monotonic()
    with layer.open("rb") as fh:
        image = engine.load_archive(image_archive(fh, size, config_bytes, str(target), len(base)),
                                    str(target), diff_ids, "load")
    return Timed(time.monotonic() - started, {"image_id": str(image.id)})

