"""The migration phases against the host's own Docker engine (docker SDK) and the registry API.

Every method measures its own monotonic wall time and returns plain values; `core.NodeCore`
records them. Registry credentials come from the agent's configuration (`RegistryAccess`) and
are passed to the engine per call (no ``docker login`` state on the host). The engine must trust
the registry's CA through ``/etc/docker/certs.d/<registry>/ca.crt`` (the Ansible registry role
installs it); the agent uses the same CA file for its own manifest queries.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import socket
import ssl
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import docker
import psutil
from docker.errors import APIError, DockerException, ImageNotFound
from docker.errors import NotFound as DockerNotFound

from agents.common.platforms import (
    INDEX_TYPES,
    Platform,
    PlatformError,
    is_index,
    native_platform,
    select,
)
from agents.node.crossarch import RebaseFailed, rebase_image, rebase_layers
from agents.node.difflayer import MAX_CHANGES
from agents.node.domain import (
    DigestMismatch,
    ImageRef,
    Layer,
    NotFound,
    PhaseFailed,
    layer_statuses,
    pull_transfers,
    push_transfers,
)
from agents.node.flatten import (
    DEFAULT_MAX_IMAGE_LAYERS,
    committed_layers,
    flat_image_config,
    image_archive,
    must_flatten,
)
from agents.node.rebase import ArchitectureSpecific, DiffBlob, NotRebasable, registry_diff

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LABEL_MIGRATION = "org.edgeferry.migration"
LABEL_EPOCH = "org.edgeferry.epoch"
LABEL_WORKLOAD = "org.edgeferry.workload"
#: The reference a workload was first started from (a multi-architecture image index): a
#: destination of another platform re-bases the committed diff onto that index's entry for it.
LABEL_BASE = "org.edgeferry.base-image"
MAX_MANIFEST_BYTES = 4 << 20  # a manifest or image config read from the registry
#: a diff layer's tar may be this many times its compressed blob (+ LAYER_SLACK_BYTES); more is
#: refused as a decompression bomb
LAYER_EXPANSION, LAYER_SLACK_BYTES = 20, 64 << 20


@dataclass(frozen=True)
class RegistryAccess:
    """Where the private registry is and how to authenticate to it."""

    address: str  # host:port
    username: str
    password: str
    ca_cert: Path
    namespace: str = ""  # the account pushes only under <address>/<namespace>/

    def push_repository(self, repository: str) -> str:
        """``repository`` inside this account's namespace (unchanged when already there)."""
        if not self.namespace or repository.startswith(f"{self.namespace}/"):
            return repository
        return f"{self.namespace}/{repository}"

    @property
    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password,
                "serveraddress": self.address}

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]]:
        """(digest, manifest) of ``repository:reference`` from the registry API (an image
        index or manifest list comes back as such: `resolve` picks a platform's entry). The
        digest is the sha256 of the bytes served, read up to `MAX_MANIFEST_BYTES`: a
        ``Docker-Content-Digest`` that differs, or a digest ``reference`` they do not hash to,
        is a `DigestMismatch`."""
        with self._get(f"{repository}/manifests/{reference}",
                       ", ".join((MANIFEST_V2, OCI_MANIFEST, *INDEX_TYPES))) as resp:
            claimed = resp.headers.get("Docker-Content-Digest", "")
            body = resp.read(MAX_MANIFEST_BYTES + 1)
        if len(body) > MAX_MANIFEST_BYTES:
            raise DigestMismatch(f"manifest {repository} {reference} exceeds "
                                 f"{MAX_MANIFEST_BYTES} bytes")
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        by_digest = reference.startswith("sha256:")
        asked = f"{repository}{'@' if by_digest else ':'}{reference}"
        if claimed and claimed != digest:
            raise DigestMismatch(f"registry claims {claimed} for {asked}, whose bytes hash to "
                                 f"{digest}")
        if by_digest and reference != digest:
            raise DigestMismatch(f"registry served another manifest for {asked}")
        document: dict[str, Any] = json.loads(body)
        return digest, document

    def _get(self, path: str, accept: str = "") -> Any:
        """An authenticated GET of ``/v2/<path>`` (a PhaseFailed naming the HTTP status or the
        network error otherwise)."""
        token = b64encode(f"{self.username}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", **({"Accept": accept} if accept else {})}
        req = urllib.request.Request(f"https://{self.address}/v2/{path}", headers=headers)
        try:
            return urllib.request.urlopen(req, context=self.ssl_context(), timeout=30)
        except urllib.error.HTTPError as err:
            raise PhaseFailed(f"registry {self.address}: {path}: HTTP {err.code}") from None
        except (urllib.error.URLError, OSError) as err:
            raise PhaseFailed(f"registry {self.address} unreachable: {err}") from None

    def blob(self, repository: str, digest: str, into: Path, limit: int) -> int:
        """Download blob ``digest`` of ``repository`` into the file ``into``, checking its
        sha256 and that it has at most ``limit`` bytes (`DigestMismatch`); its size."""
        algo, _, want = digest.partition(":")
        if algo != "sha256" or len(want) != 64:
            raise PhaseFailed(f"blob digest {digest!r} is not sha256")
        h, size = hashlib.sha256(), 0
        with self._get(f"{repository}/blobs/{digest}") as resp, into.open("wb") as out:
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise DigestMismatch(f"blob {digest} of {repository} exceeds {limit} bytes")
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != want:
            raise DigestMismatch(f"registry served sha256:{h.hexdigest()} for blob {digest}")
        return size

    def resolve(self, repository: str, reference: str,
                platform: Platform) -> tuple[str, dict[str, Any], str]:
        """(manifest digest, manifest, index digest or "") of ``repository:reference`` for
        ``platform``: a single-platform manifest as it is, an index resolved to its entry for
        ``platform`` (the entry's digest checked against what the registry serves)."""
        digest, document = self.manifest(repository, reference)
        if not is_index(document):
            return digest, document, ""
        try:
            entry = select(document, platform)
        except PlatformError as err:
            raise PhaseFailed(f"{repository}:{reference}: {err}") from None
        child_digest, child = self.manifest(repository, entry.digest)
        if child_digest and child_digest != entry.digest:
            raise DigestMismatch(f"registry serves {child_digest} for the {platform} entry "
                                 f"{entry.digest} of {repository}:{reference}")
        return entry.digest, child, digest


def interface_for(host: str, port: int) -> str:
    """The local network interface that carries traffic to ``host`` (route lookup)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port or 1))
        local: str = probe.getsockname()[0]
    for nic, addrs in psutil.net_if_addrs().items():
        if any(a.address == local for a in addrs):
            return nic
    return "lo" if local.startswith("127.") else ""


def interface_counters(nic: str) -> tuple[int, int]:
    """(bytes_sent, bytes_recv) of ``nic`` (0, 0 when unknown)."""
    stats = psutil.net_io_counters(pernic=True).get(nic)
    return (stats.bytes_sent, stats.bytes_recv) if stats else (0, 0)


def engine_time(text: str) -> float | None:
    """Epoch seconds of an engine timestamp (RFC 3339, "...Z"; Python 3.11 reads its
    nanoseconds to the microsecond); None when it is the zero time or not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if moment.year < 2 or moment.tzinfo is None else moment.timestamp()


@dataclass
class Timed:
    """A phase result: wall seconds plus whatever the phase produced."""

    seconds: float
    values: dict[str, Any] = field(default_factory=dict)


def _raise_stream_error(events: list[dict[str, Any]], what: str) -> None:
    for event in events:
        if "error" in event:
            detail = event.get("errorDetail", {}).get("message") or event["error"]
            raise PhaseFailed(f"{what}: {detail}")


class DockerEngine:
    """The host's Docker engine, driven through the Docker SDK."""

    def __init__(self, registry: RegistryAccess | None, *, interface: str = "",
                 client: Any = None, platform: Platform | None = None) -> None:
        """``platform``: the platform workloads run as (None: the engine's own); a jetson-class
        lab host's native engine runs ``linux/arm64`` workloads under qemu-user."""
        try:
            self.client = client or docker.from_env(timeout=900)
        except DockerException as err:
            raise PhaseFailed(f"cannot reach the Docker engine: {err}") from None
        self.registry = registry
        self._interface = interface
        self._platform = platform
        self._native: Platform | None = None

    @property
    def platform(self) -> Platform:
        """The platform this host's workloads run as (configured, else the engine's)."""
        if self._platform is not None:
            return self._platform
        if self._native is None:
            self._native = native_platform(str(self.info().get("Architecture") or ""))
        return self._native

    def _platform_arg(self) -> dict[str, str]:
        """``platform=`` for pulls and creates when one is configured (else the engine's own
        choice, as before)."""
        return {"platform": str(self._platform)} if self._platform is not None else {}

    @property
    def interface(self) -> str:
        if not self._interface and self.registry is not None:
            host, _, port = self.registry.address.rpartition(":")
            with contextlib.suppress(OSError):
                self._interface = interface_for(host.strip("[]"), int(port or 443))
        return self._interface

    def _need_registry(self) -> RegistryAccess:
        if self.registry is None:
            raise PhaseFailed("no registry configured (settings.registry)")
        return self.registry

    def info(self) -> dict[str, Any]:
        return dict(self.client.info())

    def version(self) -> str:
        return str(self.client.version().get("Version", ""))

    def _container(self, name: str) -> Any:
        try:
            return self.client.containers.get(name)
        except DockerNotFound:
            raise NotFound(f"no container named {name}") from None

    # -- phases -------------------------------------------------------------------------------
    def stop(self, name: str, timeout: int) -> Timed:
        container = self._container(name)
        started, wall = time.monotonic(), time.time()
        try:
            container.stop(timeout=timeout)
        except APIError as err:
            raise PhaseFailed(f"stop {name}: {err.explanation or err}") from None
        elapsed = time.monotonic() - started
        container.reload()
        state = container.attrs["State"]
        exited = engine_time(str(state.get("FinishedAt") or ""))
        return Timed(elapsed, {"exit_code": int(state["ExitCode"]),
                               "exited_after_s": None if exited is None else exited - wall})

    def changes(self, name: str) -> Timed:
        """The container's changes against its image (``GET /containers/{id}/changes``), as
        ``values["changes"]`` (a list of {"Path", "Kind"}); at most MAX_CHANGES of them."""
        container = self._container(name)
        started = time.monotonic()
        try:
            listed = list(self.client.api.diff(container.id) or [])
        except APIError as err:
            raise PhaseFailed(f"list the changes of {name}: {err.explanation or err}") from None
        if len(listed) > MAX_CHANGES:
            raise PhaseFailed(f"{name} has more than {MAX_CHANGES} changed paths")
        return Timed(time.monotonic() - started, {"changes": listed})

    def start(self, name: str) -> Timed:
        """Start a stopped container in place; ``started`` is False when it was running."""
        container = self._container(name)
        if container.status == "running":
            return Timed(0.0, {"started": False})
        started = time.monotonic()
        try:
            container.start()
        except APIError as err:
            raise PhaseFailed(f"start {name}: {err.explanation or err}") from None
        return Timed(time.monotonic() - started, {"started": True})

    def untag(self, image_ref: ImageRef) -> None:
        """Drop a local tag (the image goes when nothing else references it)."""
        with contextlib.suppress(ImageNotFound, DockerNotFound, APIError):
            self.client.images.remove(str(image_ref), noprune=False)

    def image_layers(self, image: str) -> int:
        """Number of RootFS layers of a local image."""
        try:
            return len(self.client.images.get(image).attrs["RootFS"].get("Layers") or [])
        except ImageNotFound:
            raise NotFound(f"no local image {image}") from None

    def commit(self, name: str, image_ref: ImageRef, labels: Mapping[str, str], *,
               max_layers: int = DEFAULT_MAX_IMAGE_LAYERS,
               scratch_dir: Path | None = None) -> Timed:
        """Commit container ``name`` as ``image_ref``; below ``max_layers`` layers as one more
        layer on its image, at or above it as a flattened single-layer image (flatten.py: the
        push then moves the whole filesystem this once). ``scratch_dir`` holds the export."""
        container = self._container(name)
        listed = self.client.api.containers(all=True, size=True, filters={"id": container.id})
        diff = int((listed[0].get("SizeRw") if listed else 0) or 0)
        image_layers = self.image_layers(str(container.attrs["Image"]))
        merged = {**(container.labels or {}), **labels}
        started = time.monotonic()
        if must_flatten(image_layers, max_layers):
            image_id, flat_bytes = self._flatten(container, image_ref, merged, scratch_dir)
            return Timed(time.monotonic() - started, {
                "image_id": image_id, "diff_bytes": diff, "flattened": True, "layers": 1,
                "would_be_layers": committed_layers(image_layers), "flat_bytes": flat_bytes})
        try:
            image = container.commit(
                repository=image_ref.name, tag=image_ref.tag, conf={"Labels": merged},
            )
        except APIError as err:
            raise PhaseFailed(f"commit {name}: {err.explanation or err}") from None
        return Timed(time.monotonic() - started, {
            "image_id": image.id, "diff_bytes": diff, "flattened": False,
            "layers": committed_layers(image_layers)})

    def _flatten(self, container: Any, image_ref: ImageRef, labels: Mapping[str, str],
                 scratch_dir: Path | None) -> tuple[str, int]:
        """``docker export`` of the container loaded as a one-layer image tagged ``image_ref``
        with the config a commit would record; (image id, uncompressed layer bytes)."""
        source = self.client.images.get(str(container.attrs["Image"])).attrs
        digest = hashlib.sha256()
        size = 0
        with tempfile.TemporaryFile(dir=scratch_dir, prefix="flatten-") as layer:
            try:
                for chunk in self.client.api.export(container.id):
                    digest.update(chunk)
                    layer.write(chunk)
                    size += len(chunk)
            except APIError as err:
                raise PhaseFailed(f"export {container.name}: {err.explanation or err}") from None
            layer.seek(0)
            diff_id = f"sha256:{digest.hexdigest()}"
            created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            config = flat_image_config(
                container.attrs["Config"], labels, architecture=str(source["Architecture"]),
                os_name=str(source["Os"]), variant=str(source.get("Variant") or ""),
                diff_id=diff_id, created=created,
                created_by=f"edgeferry: flattened {container.name} (docker export)")
            image = self.load_archive(
                image_archive(layer, size, json.dumps(config).encode(), str(image_ref)),
                str(image_ref), [diff_id], "load flattened")
        return str(image.id), size

    def load_archive(self, archive: Iterable[bytes], target: str, layers: list[str],
                     what: str) -> Any:
        """``docker load`` of ``archive`` (it tags ``target``); the loaded image, whose layers
        must be ``layers`` (else PhaseFailed, as for any engine error)."""
        try:
            events = list(self.client.api.load_image(archive))
        except APIError as err:
            raise PhaseFailed(f"{what} {target}: {err.explanation or err}") from None
        _raise_stream_error(events, f"{what} {target}")
        try:
            image = self.client.images.get(target)
        except ImageNotFound:
            raise PhaseFailed(f"{what} {target}: no image afterwards") from None
        if list(image.attrs["RootFS"].get("Layers") or []) != layers:
            raise PhaseFailed(f"{what} {target}: the engine holds other layers than "
                              f"{layers[-1] if layers else 'none'} on top")
        return image

    def push(self, image_ref: ImageRef) -> Timed:
        reg = self._need_registry()
        if image_ref.registry != reg.address:
            raise PhaseFailed(f"{image_ref} is not in the configured registry {reg.address}")
        try:
            diff_ids = list(self.client.images.get(str(image_ref)).attrs["RootFS"]["Layers"])
        except ImageNotFound:
            raise NotFound(f"no local image {image_ref}") from None
        nic = self.interface
        tx0 = interface_counters(nic)[0]
        started = time.monotonic()
        try:
            events = list(self.client.api.push(
                image_ref.name, image_ref.tag, auth_config=reg.auth_config,
                stream=True, decode=True,
            ))
        except APIError as err:
            raise PhaseFailed(f"push {image_ref}: {err.explanation or err}") from None
        elapsed = time.monotonic() - started
        tx = interface_counters(nic)[0] - tx0
        _raise_stream_error(events, f"push {image_ref}")
        digest = next((e["aux"]["Digest"] for e in events if "Digest" in e.get("aux", {})), "")
        if not digest:
            raise PhaseFailed(f"push {image_ref}: the engine reported no digest")
        _, manifest = reg.manifest(image_ref.repository, digest)
        layers = push_transfers(diff_ids, manifest.get("layers", []), layer_statuses(events))
        return Timed(elapsed, {"digest": digest, "layers": layers, "interface": nic,
                               "interface_tx_bytes": tx})

    def _pull_stream(self, ref: str) -> list[dict[str, Any]]:
        reg = self._need_registry()
        try:
            return list(self.client.api.pull(ref, auth_config=reg.auth_config,
                                             stream=True, decode=True, **self._platform_arg()))
        except APIError as err:
            raise PhaseFailed(f"pull {ref}: {err.explanation or err}") from None

    def pull(self, image_ref: ImageRef, expected_digest: str) -> Timed:
        reg = self._need_registry()
        manifest_digest, manifest, index_digest = reg.resolve(
            image_ref.repository, expected_digest or image_ref.tag, self.platform
        )
        served = index_digest or manifest_digest
        if expected_digest and served and served != expected_digest:
            raise DigestMismatch(
                f"registry serves {served} for {image_ref}, expected {expected_digest}"
            )
        # a single-platform image (a commit) is this host's platform, or its diff moves alone
        # onto this platform's base: an x86 host runs amd64 even where binfmt could run arm64
        if not index_digest and expected_digest:
            diff_only = self._pull_diff_only(image_ref, expected_digest, manifest)
            if diff_only is not None:
                return diff_only
        # Pull by digest (of this platform's manifest when the reference is an index): the
        # engine verifies manifest and layer hashes against it.
        pinned = image_ref.pinned(manifest_digest if index_digest else
                                  expected_digest or manifest_digest)
        nic = self.interface
        rx0 = interface_counters(nic)[1]
        started = time.monotonic()
        events = self._pull_stream(pinned)
        elapsed = time.monotonic() - started
        rx = interface_counters(nic)[1] - rx0
        _raise_stream_error(events, f"pull {pinned}")
        image = self.client.images.get(pinned)
        repo_digests = set(image.attrs.get("RepoDigests") or [])
        verified = bool(expected_digest) and pinned in repo_digests
        if expected_digest and not verified:
            raise DigestMismatch(f"pulled {image_ref} but {pinned} is not among {repo_digests}")
        if image_ref.tag:
            image.tag(image_ref.name, image_ref.tag)
        layers = pull_transfers(manifest.get("layers", []), layer_statuses(events))
        values = {"digest": expected_digest or manifest_digest, "verified": verified,
                  "layers": layers, "pinned_ref": pinned, "image_id": image.id,
                  "interface": nic, "interface_rx_bytes": rx,
                  "platform": str(self.platform), "index_digest": index_digest,
                  "platform_digest": manifest_digest}
        attrs = image.attrs
        built_for = Platform(str(attrs.get("Os") or "linux"), str(attrs.get("Architecture") or ""),
                             str(attrs.get("Variant") or ""))
        if built_for.architecture and not built_for.matches(self.platform):
            values |= self._rebase(image_ref, pinned, attrs, built_for)
        return Timed(elapsed, values)

    def _pull_diff_only(self, image_ref: ImageRef, digest: str, manifest: Mapping[str, Any]
                        ) -> Timed | None:
        """A committed image of another platform: only its diff layers cross the network.
        ``manifest`` is the one `resolve` read for ``digest`` (hashed against it); its config and
        each diff blob come from the registry API, each checked against its digest and the
        blob's tar against its diff_id;
        this platform's variant of the base index the workload started from is pulled (a
        pre-pulled base moves nothing) and the diff is loaded onto it
        (`crossarch.rebase_layers`). None when the image is this platform's, or its layers do
        not start with its base's (the whole image is pulled and re-based then)."""
        reg = self._need_registry()
        started, nic = time.monotonic(), self.interface
        rx0 = interface_counters(nic)[1]
        with tempfile.TemporaryDirectory(prefix="ef-diffpull-") as tmp:
            work = Path(tmp)
            built_for, config = self._config(image_ref, manifest, work)
            if not built_for.architecture or built_for.matches(self.platform):
                return None
            labels = (config.get("config") or {}).get("Labels") or {}
            source_base, dest_base = self._base_variants(image_ref, labels.get(LABEL_BASE, ""),
                                                         built_for)
            try:
                blobs = registry_diff(manifest.get("layers", []),
                                      (config.get("rootfs") or {}).get("diff_ids", []),
                                      source_base[1].get("layers", []))
            except NotRebasable:
                return None
            events = self._pull_stream(dest_base[0])
            _raise_stream_error(events, f"pull base {dest_base[0]}")
            layers = pull_transfers(dest_base[1].get("layers", []), layer_statuses(events))
            paths = [_layer_tar(reg, image_ref.repository, b, work / f"layer{i}")
                     for i, b in enumerate(blobs)]
            fetched = time.monotonic()
            target = f"{image_ref.name}:{image_ref.tag or 'migrated'}-{self.platform.architecture}"
            try:
                out = rebase_layers(self.client, config, paths, dest_base=dest_base[0],
                                    target=target, platform=str(self.platform),
                                    source=image_ref.pinned(digest))
            except (ArchitectureSpecific, NotRebasable, RebaseFailed, OSError,
                    tarfile.TarError, KeyError, ValueError) as err:
                raise PhaseFailed(f"{image_ref} cannot move from {built_for} to "
                                  f"{self.platform}: {err}") from None
        done = time.monotonic()
        return Timed(done - started, {
            "digest": digest, "verified": True, "pinned_ref": target, "image_id": out["image_id"],
            "layers": [*layers, *(Layer(b.digest, b.size, True) for b in blobs)],
            "interface": nic, "interface_rx_bytes": interface_counters(nic)[1] - rx0,
            "platform": str(self.platform), "index_digest": "", "platform_digest": digest,
            "rebased_from": image_ref.pinned(digest),
            "diff_content_digest": out["diff_content_digest"], "rebase_s": done - fetched,
            "diff_only": len(blobs)})

    def _config(self, image_ref: ImageRef, manifest: Mapping[str, Any], work: Path
                ) -> tuple[Platform, dict[str, Any]]:
        """(the platform it was built for, the config) of a single-platform image, its config
        blob read from the registry into ``work`` and hashed against the manifest."""
        self._need_registry().blob(image_ref.repository,
                                   str((manifest.get("config") or {}).get("digest")),
                                   work / "config.json", MAX_MANIFEST_BYTES)
        config: dict[str, Any] = json.loads((work / "config.json").read_bytes())
        return Platform(str(config.get("os") or "linux"), str(config.get("architecture") or ""),
                        str(config.get("variant") or "")), config

    def _base_variants(self, image_ref: ImageRef, base_text: str, built_for: Platform
                       ) -> tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]:
        """((pinned ref, manifest) of ``built_for``'s, then this platform's) entries of the base
        index a committed image names; PhaseFailed when it names none or a single image."""
        reg = self._need_registry()
        if not base_text:
            raise PhaseFailed(f"{image_ref} is built for {built_for}, this host runs "
                              f"{self.platform}; it names no base image ({LABEL_BASE}) whose "
                              f"{self.platform} variant could carry its diff")
        base = ImageRef.parse(base_text)
        out = []
        for plat in (built_for, self.platform):
            digest, manifest, index = reg.resolve(base.repository, base.digest or base.tag, plat)
            if not index:
                raise PhaseFailed(f"{image_ref} is built for {built_for}, this host runs "
                                  f"{self.platform}; its base {base_text} is a single-platform "
                                  "image, not a multi-architecture index")
            out.append((base.pinned(digest), manifest))
        return out[0], out[1]

    def _rebase(self, image_ref: ImageRef, pinned: str, attrs: Mapping[str, Any],
                built_for: Platform) -> dict[str, Any]:
        """A committed image of another platform pulled whole (its layers did not start with
        its base's): its diff layers re-based onto this platform's variant of the index it was
        first started from (`crossarch`)."""
        started = time.monotonic()
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        source_base, dest_base = self._base_variants(image_ref, labels.get(LABEL_BASE, ""),
                                                     built_for)
        for ref in (source_base[0], dest_base[0]):
            _raise_stream_error(self._pull_stream(ref), f"pull base {ref}")
        target = f"{image_ref.name}:{image_ref.tag or 'migrated'}-{self.platform.architecture}"
        try:
            out = rebase_image(self.client, pinned, source_base=source_base[0],
                               dest_base=dest_base[0], target=target, platform=str(self.platform))
        except (ArchitectureSpecific, NotRebasable, RebaseFailed, OSError,
                tarfile.TarError, KeyError, ValueError) as err:
            raise PhaseFailed(f"{image_ref} cannot move from {built_for} to {self.platform}: "
                              f"{err}") from None
        return {"pinned_ref": target, "image_id": out["image_id"], "rebased_from": pinned,
                "diff_content_digest": out["diff_content_digest"],
                "rebase_s": time.monotonic() - started}

    def prepull(self, image_ref: ImageRef) -> Timed:
        reg = self._need_registry()
        if image_ref.registry != reg.address:  # a local-only image, or another registry
            raise PhaseFailed(f"{image_ref} is not in the configured registry {reg.address}")
        _, manifest, index = reg.resolve(image_ref.repository,
                                         image_ref.digest or image_ref.tag, self.platform)
        if not index:  # one platform's image: worth pre-pulling only if it is this host's
            with tempfile.TemporaryDirectory(prefix="ef-prepull-") as tmp:
                built_for = self._config(image_ref, manifest, Path(tmp))[0]
            if built_for.architecture and not built_for.matches(self.platform):
                raise PhaseFailed(f"{image_ref} is built for {built_for}, this host runs "
                                  f"{self.platform}: not pre-pulled (its base index is)")
        started = time.monotonic()
        events = self._pull_stream(str(image_ref))
        elapsed = time.monotonic() - started
        _raise_stream_error(events, f"pre-pull {image_ref}")
        return Timed(elapsed, {"layers": pull_transfers(manifest.get("layers", []),
                                                        layer_statuses(events))})

    def describe(self, name: str) -> dict[str, Any]:
        """State, image reference (Config.Image), image id and the image's registry digests of
        container `name`."""
        container = self._container(name)
        try:
            image = self.client.images.get(container.attrs["Image"])
            digests = [str(d) for d in image.attrs.get("RepoDigests") or []]
        except ImageNotFound:  # the image was removed under the container
            digests = []
        return {"state": str(container.attrs.get("State", {}).get("Status", "")),
                "image_ref": str(container.attrs.get("Config", {}).get("Image", "")),
                "image_id": str(container.attrs.get("Image", "")), "repo_digests": digests}

    def find(self, name: str) -> Any | None:
        try:
            return self.client.containers.get(name)
        except DockerNotFound:
            return None

    def run(self, name: str, image: str, *, ports: Iterable[tuple[int, int, str]],
            env: Mapping[str, str], labels: Mapping[str, str],
            mounts: Iterable[tuple[Path, str]], command: list[str]) -> Timed:
        """Create and start a container; ports are (container_port, host_port, host_ip)."""
        port_map: dict[str, Any] = {}
        for cport, hport, hip in ports:
            port_map[f"{cport}/tcp"] = (hip, hport or None) if hip else (hport or None)
        # HostConfig mounts only: `volumes=` would also declare Config.Volumes, which `commit`
        # copies into the image as VOLUME entries.
        bind_mounts = [docker.types.Mount(dst, str(src), type="bind", read_only=True)
                       for src, dst in mounts]
        self._ensure_local(image)
        labels = dict(labels)
        with contextlib.suppress(ImageNotFound):
            image_labels = self.client.images.get(image).attrs["Config"].get("Labels") or {}
            if LABEL_BASE not in image_labels:  # first start: remember the index it came from
                labels[LABEL_BASE] = image
        started = time.monotonic()
        try:
            container = self.client.containers.run(
                image, command=command or None, name=name, detach=True, ports=port_map,
                environment=dict(env), labels=dict(labels), mounts=bind_mounts,
                **self._platform_arg(),
            )
        except ImageNotFound:
            raise NotFound(f"no local image {image}") from None
        except APIError as err:
            raise PhaseFailed(f"run {name}: {err.explanation or err}") from None
        elapsed = time.monotonic() - started
        container.reload()
        return Timed(elapsed, {"container_id": container.id,
                               "image_id": container.image.id,
                               "ports": published_ports(container.attrs)})

    def _ensure_local(self, image: str) -> None:
        """Pull a registry image not yet on this host with the agent's own registry account:
        the engine's implicit pull in `run` would go without credentials (no agent user holds
        a Docker login; the proxy answers 401)."""
        try:
            self.client.images.get(image)
            return
        except ImageNotFound:
            pass
        if self.registry is not None and image.startswith(f"{self.registry.address}/"):
            _raise_stream_error(self._pull_stream(image), f"pull {image}")

    def remove(self, name: str) -> bool:
        container = self.find(name)
        if container is None:
            return False
        with contextlib.suppress(DockerNotFound):
            container.remove(force=True)
        return True

    def image_user_uid(self, image: str) -> int:
        """Numeric uid of the image's USER (0 when unset or symbolic)."""
        try:
            user = str(self.client.images.get(image).attrs["Config"].get("User") or "")
        except ImageNotFound:
            raise NotFound(f"no local image {image}") from None
        head = user.split(":", 1)[0]
        return int(head) if head.isdigit() else 0


def _layer_tar(reg: RegistryAccess, repository: str, blob: DiffBlob, into: Path) -> Path:
    """One diff layer from the registry as an uncompressed tar at ``into``: the blob checked
    against its digest, the tar against its diff_id, its size bounded (`LAYER_EXPANSION`)."""
    raw = into.with_suffix(".blob")
    reg.blob(repository, blob.digest, raw, limit=blob.size)
    if not blob.gzipped:
        raw.rename(into)
    else:
        limit, size = blob.size * LAYER_EXPANSION + LAYER_SLACK_BYTES, 0
        with gzip.open(raw, "rb") as src, into.open("wb") as out:
            while chunk := src.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise DigestMismatch(f"layer {blob.digest} expands beyond {limit} bytes")
                out.write(chunk)
        raw.unlink()
    h = hashlib.sha256()
    with into.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    if f"sha256:{h.hexdigest()}" != blob.diff_id:
        raise DigestMismatch(f"layer {blob.digest} unpacks to sha256:{h.hexdigest()}, its "
                             f"config says {blob.diff_id}")
    return into


def published_ports(attrs: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    """(container_port, host_port, host_ip) from a container's NetworkSettings."""
    out = []
    for key, bindings in (attrs.get("NetworkSettings", {}).get("Ports") or {}).items():
        cport = int(key.split("/")[0])
        for b in bindings or []:
            out.append((cport, int(b["HostPort"]), str(b.get("HostIp", ""))))
    return sorted(set(out))


def moved(layers: list[Layer]) -> int:
    return sum(layer.size for layer in layers if layer.transferred)


def secret_dir(data_dir: Path) -> Path:
    path = data_dir / "secrets"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # bind mounts are resolved by the engine, not by the container user
    return path
