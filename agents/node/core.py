"""`NodeCore`: the node agent's behaviour behind the gRPC mapping.

Migration phases run through `run_phase`: fence the epoch (stale epochs raise `Fenced`), return
the stored answer when the same (migration id, epoch, phase) already succeeded, otherwise record
RUNNING, execute against the engine, and record the outcome with the serialised response. One
lock per migration id serialises concurrent repeats of the same phase.

Container names: every workload name in a request is the *logical* name; the agent's container
is ``<container_prefix><name>`` (``settings.container_prefix``), so an agent only ever touches
its own containers -- which also lets two agents share one engine in tests.

Pull with ``rasp_session_id``: the digest the SMF asks for must be the one the source sent,
authenticated under Ksc, in RASP step 10 to this host's own CB role (`TransferLookup`).

Requests (BloSM Algorithm 3): `submit_request` serves locally when the request fits
(REQ_res < R_rem on every requested resource), reserving REQ_res while it runs; otherwise it
forwards to the nearest neighbour whose FREE fits and returns its answer, timing the redirect.
A neighbour's FREE is its latest fresh signed advertisement (`adverts`,
agents/security/advertisement.py;
kept by `publish`); only a neighbour with none is asked at request time (GetResources, which no
longer samples CPU: agents/node/sampler.py).

Resources: `host` (agents/node/resources.py `HostProbe`) gives MAX inside the cgroup limits (or
the inventory's override) and the measured use; `advertisement` builds Algorithm 1's message.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from google.protobuf.message import Message

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents.common.logging import get_logger
from agents.node import resources as res
from agents.node.convert import (
    layers_to_pb,
    node_resources_from_pb,
    node_resources_to_pb,
    timing,
)
from agents.node.direct import (
    MAX_DIFF_BYTES,
    MAX_DIFF_CONFIG_BYTES,
    EarlyListings,
    bytes_digest,
    export_diff,
    last_diff_id,
    load_diff,
    receive_file,
)
from agents.node.domain import (
    Conflict,
    DigestMismatch,
    ImageRef,
    InvalidRequest,
    Layer,
    Neighbour,
    NoCapacity,
    NodeError,
    NotFound,
    PhaseFailed,
    Resources,
    check_container_name,
    check_migration_id,
    choose_neighbour,
    moved_bytes,
    must_forward,
)
from agents.node.engine import (
    LABEL_EPOCH,
    LABEL_MIGRATION,
    LABEL_WORKLOAD,
    DockerEngine,
    interface_counters,
    published_ports,
    secret_dir,
)
from agents.node.flatten import DEFAULT_MAX_IMAGE_LAYERS
from agents.node.gpu import GpuReading
from agents.node.hostlimits import Capacity
from agents.node.store import FAILED, OK, NodeStore, WorkloadRow
from agents.security.advertisement import Advertisement, AdvertTable, Amounts

M = TypeVar("M", bound=Message)
DEFAULT_PROBE_TIMEOUT = 30.0
#: a received layer not loaded within this long is dropped (a migration that failed)
KEPT_DIFF_S = 3600.0


class NeighbourLink(Protocol):
    """How this agent talks to one neighbouring node agent (gRPC in production)."""

    name: str
    distance: float

    def free(self) -> Resources: ...

    def submit(self, request: pb.SubmitRequestRequest) -> pb.SubmitRequestResponse: ...


LocalHandler = Callable[[int, str], bytes]
#: rasp session id -> (image_ref, image_digest, size_bytes) from the step-10 transfer descriptor
TransferLookup = Callable[[bytes], tuple[str, str, int]]


def http_get_local(port: int, path: str, timeout: float = 10.0) -> bytes:
    """Serve a request by GETting ``path`` from the workload's published port on loopback."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
        return bytes(resp.read())


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass
class NodeOptions:
    data_dir: Path
    stop_timeout_s: int = 10
    network_bps: int = 0
    max_hops: int = 2
    container_prefix: str = ""
    #: Untag (and so delete) the committed image locally once it is in the registry.
    drop_pushed_images: bool = False
    #: The address clients reach published workload ports at (a probe target besides loopback).
    workload_host: str = ""
    #: Commit as a flattened single-layer image when the commit would reach this many layers
    #: (flatten.py; overlay2 fails past 128).
    max_image_layers: int = DEFAULT_MAX_IMAGE_LAYERS


class NodeCore:
    def __init__(self, engine: DockerEngine, store: NodeStore, options: NodeOptions, *,
                 neighbours: Sequence[NeighbourLink] = (),
                 local_handler: LocalHandler = http_get_local,
                 gpu: GpuReading | None = None,
                 host: res.HostProbe | None = None,
                 transfer_lookup: TransferLookup | None = None) -> None:
        self.engine = engine
        self.store = store
        self.options = options
        self.neighbours = list(neighbours)
        self.local_handler = local_handler
        self.transfer_lookup = transfer_lookup
        self.host = host or res.HostProbe(gpu=gpu)
        #: neighbours' signed advertisements (set by the agent when it receives them)
        self.adverts: AdvertTable | None = None
        self.hostname = res.hostname()
        self.log = get_logger("node.core")
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._inflight: dict[str, Resources] = {}
        self._inflight_lock = threading.Lock()
        self._capacity: Resources | None = None
        self._capacity_info: Capacity | None = None
        #: change lists made before a stop (direct order), for the export that follows
        self.early = EarlyListings()

    # -- resources ----------------------------------------------------------------------------
    def _storage_path(self) -> Path:
        root = Path(str(self.engine.info().get("DockerRootDir") or self.options.data_dir))
        return root if root.exists() else self.options.data_dir

    @property
    def gpu(self) -> GpuReading:
        """The host's GPU reading (count, memory, utilisation; `agents.node.gpu`)."""
        return self.host.gpu()

    def capacity(self) -> Resources:
        """MAX inside the host's limits (read once)."""
        if self._capacity is None:
            self._capacity_info = self.host.capacity(self._storage_path(), self.engine.interface,
                                                     self.options.network_bps)
            self._capacity = res.capacity_resources(self._capacity_info)
        return self._capacity

    def capacity_sources(self) -> str:
        """Where each MAX dimension came from, e.g. ``cpu=cgroup,memory=cgroup,...``."""
        self.capacity()
        info = self._capacity_info
        return "" if info is None else ",".join(f"{k}={v}" for k, v in info.sources)

    def allocated(self) -> Resources:
        with self._inflight_lock:
            inflight = list(self._inflight.values())
        return Resources.total([w.reserved for w in self.store.workloads()] + inflight)

    def free(self) -> Resources:
        return self.capacity().minus(self.allocated())

    def report(self) -> pb.GetResourcesResponse:
        cap, alloc = self.capacity(), self.allocated()
        free = cap.minus(alloc)
        gpu = self.gpu
        return pb.GetResourcesResponse(
            hostname=self.hostname, max=node_resources_to_pb(cap),
            allocated=node_resources_to_pb(alloc),
            free=node_resources_to_pb(free),
            measured_used=node_resources_to_pb(self.host.measured_use(self._storage_path())),
            gpu=gpu.description, architecture=res.architecture(),
            docker_version=self.engine.version(), advertise=free.any_positive(),
            capacity_sources=self.capacity_sources(), limits=self.host.limits.describe(),
            cpu_sample_age_s=self.host.cpu().age_s, gpu_source=gpu.source,
            gpu_memory_total_bytes=gpu.memory_total_bytes,
            gpu_memory_used_bytes=gpu.memory_used_bytes,
            gpu_utilisation_percent=gpu.utilisation_percent,
            platform=str(self.engine.platform),
        )

    def advertisement(self, cloud: str, seq: int, now: float,
                      free: Resources | None = None) -> Advertisement:
        """Algorithm 1's Advc of this host as ``cloud``: MAX, FREE (``free`` when the caller
        bounds it further, e.g. by the RASP endpoint's own FREE) and the measured use."""
        cap = self.capacity()
        cpu, gpu = self.host.cpu(), self.gpu
        return Advertisement(
            cloud=cloud, seq=seq, issued_ms=int(now * 1000), maximum=Amounts(*cap.values()),
            free=Amounts(*(free if free is not None else self.free()).values()),
            cpu_used_millicores=cpu.millicores,
            cpu_sample_age_ms=int(cpu.age_s * 1000) if cpu.age_s >= 0 else -1,
            memory_used_bytes=self.host.memory_used(),
            gpu_memory_total_bytes=gpu.memory_total_bytes,
            gpu_memory_used_bytes=gpu.memory_used_bytes,
            gpu_utilisation_permille=(round(gpu.utilisation_percent * 10)
                                      if gpu.utilisation_percent >= 0 else -1),
            gpu_source=gpu.source)

    def publish(self, body: bytes, signature: bytes) -> Advertisement:
        """Keep a neighbour's signed advertisement (ProtocolError when refused)."""
        if self.adverts is None:
            raise InvalidRequest("this agent takes no advertisements (no host identity)")
        return self.adverts.accept(body, signature)

    def _neighbour_free(self, link: NeighbourLink) -> tuple[Resources, str]:
        """A neighbour's FREE: its fresh advertisement, else asked now."""
        got = self.adverts.get(link.name) if self.adverts is not None else None
        if got is not None:
            return Resources(*got[0].free.values()), f"advertised {got[1]:.1f} s ago"
        return link.free(), "asked"

    # -- phase machinery ----------------------------------------------------------------------
    def _lock(self, migration_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(migration_id, threading.Lock())

    def run_phase(self, ref: pb.MigrationRef, phase: str, response_type: type[M],
                  execute: Callable[[], M]) -> M:
        """Fenced, idempotent execution of one phase (see the module docstring)."""
        mid = check_migration_id(ref.migration_id)
        with self._lock(mid):
            self.store.fence(mid, ref.epoch)
            done = self.store.phase(mid, ref.epoch, phase)
            if done is not None and done.state == OK and done.response is not None:
                replay = response_type()
                replay.ParseFromString(done.response)
                return replay
            self.store.begin_phase(mid, ref.epoch, phase)
            try:
                response = execute()
            except NodeError as err:
                self.store.finish_phase(mid, ref.epoch, phase, state=FAILED, wall_seconds=0.0,
                                        bytes_moved=0, detail=str(err), response=None)
                raise
            t = getattr(response, "timing")  # noqa: B009 -- every phase response has one
            self.store.finish_phase(mid, ref.epoch, phase, state=OK,
                                    wall_seconds=t.wall_seconds, bytes_moved=t.bytes_moved,
                                    detail=t.detail, response=response.SerializeToString())
            self.log.info("phase_done", migration_id=mid, epoch=ref.epoch, phase=phase,
                          wall_seconds=round(t.wall_seconds, 4), bytes_moved=t.bytes_moved)
            return response

    def migration(self, migration_id: str) -> pb.GetMigrationResponse:
        mid = check_migration_id(migration_id)
        max_epoch = self.store.max_epoch(mid)
        if max_epoch is None:
            raise NotFound(f"no migration {mid} on this host")
        outcome = {"ok": common_pb2.PHASE_OUTCOME_OK, "failed": common_pb2.PHASE_OUTCOME_FAILED,
                   "running": common_pb2.PHASE_OUTCOME_UNSPECIFIED}
        return pb.GetMigrationResponse(max_epoch=max_epoch, phases=[
            pb.PhaseRecord(epoch=row.epoch, timing=timing(row.phase, row.wall_seconds,
                                                          row.bytes_moved, row.detail,
                                                          outcome[row.state]))
            for row in self.store.phases(mid)
        ])

    def container_name(self, name: str) -> str:
        """The engine's name of this agent's workload ``name`` (prefix + logical name)."""
        check_container_name(name)
        return check_container_name(self.options.container_prefix + name)

    # -- phases -------------------------------------------------------------------------------
    def stop(self, req: pb.StopContainerRequest) -> pb.StopContainerResponse:
        """Stop the workload; with ``list_changes`` (direct order) list its changes first, while
        it still serves, for this attempt's `export_diff` (the phase's seconds are the stop's)."""
        name = self.container_name(req.name)

        def execute() -> pb.StopContainerResponse:
            listed = []
            if req.list_changes:
                early = self.engine.changes(name)
                self.early.keep((req.ref.migration_id, req.ref.epoch), early.values["changes"])
                listed = [f"{len(early.values['changes'])} changed paths listed before it in "
                          f"{early.seconds:.3f} s"]
            out = self.engine.stop(name, req.timeout_seconds or self.options.stop_timeout_s)
            code, exited = out.values["exit_code"], out.values.get("exited_after_s")
            detail = [f"exit code {code}", *listed] if exited is None else [
                f"exit code {code}", f"the process exited after {exited:.3f} s", *listed]
            return pb.StopContainerResponse(
                timing=timing("stop", out.seconds, detail="; ".join(detail)), exit_code=code)

        return self.run_phase(req.ref, "stop", pb.StopContainerResponse, execute)

    def start(self, req: pb.StartContainerRequest) -> pb.StartContainerResponse:
        """Restart the stopped container in place (an aborted migration's source)."""
        name = self.container_name(req.name)

        def execute() -> pb.StartContainerResponse:
            out = self.engine.start(name)
            started = bool(out.values["started"])
            return pb.StartContainerResponse(
                timing=timing("restart", out.seconds,
                              detail="restarted" if started else "was running"),
                started=started)

        return self.run_phase(req.ref, "restart", pb.StartContainerResponse, execute)

    def _push_target(self, repository: str) -> str:
        """``<registry>/<namespace>/<repository>``: where this host's account may push."""
        registry = self.engine.registry
        if registry is None:
            raise PhaseFailed("no registry configured (settings.registry)")
        return f"{registry.address}/{registry.push_repository(repository)}"

    def commit(self, req: pb.CommitContainerRequest) -> pb.CommitContainerResponse:
        name = self.container_name(req.name)
        tag = req.tag or f"{req.ref.migration_id}-{req.ref.epoch}"
        target = ImageRef.parse(f"{self._push_target(req.repository)}:{tag}")

        def execute() -> pb.CommitContainerResponse:
            out = self.engine.commit(name, target, {LABEL_MIGRATION: req.ref.migration_id,
                                                    LABEL_EPOCH: str(req.ref.epoch)},
                                     max_layers=self.options.max_image_layers,
                                     scratch_dir=self.options.data_dir)
            diff = out.values["diff_bytes"]
            detail = f"container diff {diff} bytes; image {out.values['layers']} layers"
            if out.values["flattened"]:
                detail = (f"flattened: the commit would have made {out.values['would_be_layers']}"
                          f" layers (max_image_layers {self.options.max_image_layers}); one layer"
                          f" of {out.values['flat_bytes']} bytes (uncompressed export) instead,"
                          f" which push and pull move in full this once; container diff {diff}"
                          " bytes")
            return pb.CommitContainerResponse(
                timing=timing("commit", out.seconds, detail=detail),
                image_ref=str(target), image_id=out.values["image_id"], diff_bytes=diff)

        return self.run_phase(req.ref, "commit", pb.CommitContainerResponse, execute)

    def push(self, req: pb.PushImageRequest) -> pb.PushImageResponse:
        ref = ImageRef.parse(req.image_ref)

        def execute() -> pb.PushImageResponse:
            out = self.engine.push(ref)
            layers: list[Layer] = out.values["layers"]
            sent = moved_bytes(layers)
            if self.options.drop_pushed_images:
                self.engine.untag(ref)
            detail = (f"bytes_moved = compressed sizes of the {sum(x.transferred for x in layers)}"
                      f" of {len(layers)} layers the engine uploaded (registry manifest); "
                      f"{out.values['interface'] or '?'} tx {out.values['interface_tx_bytes']}")
            return pb.PushImageResponse(
                timing=timing("push", out.seconds, sent, detail), digest=out.values["digest"],
                layers=layers_to_pb(layers), compressed_total=sum(x.size for x in layers),
                interface_tx_bytes=out.values["interface_tx_bytes"],
                interface=out.values["interface"])

        return self.run_phase(req.ref, "push", pb.PushImageResponse, execute)

    def pull(self, req: pb.PullImageRequest) -> pb.PullImageResponse:
        ref = ImageRef.parse(req.image_ref)
        if not req.expected_digest:
            raise InvalidRequest("expected_digest is required: the pulled image must be verified")
        if req.rasp_session_id:
            self._check_transfer(bytes(req.rasp_session_id), str(ref), req.expected_digest)

        def execute() -> pb.PullImageResponse:
            out = self.engine.pull(ref, req.expected_digest)
            layers: list[Layer] = out.values["layers"]
            got = moved_bytes(layers)
            detail = (f"bytes_moved = compressed sizes of the {sum(x.transferred for x in layers)}"
                      f" of {len(layers)} layers downloaded; digest verified; "
                      f"{out.values['interface'] or '?'} rx {out.values['interface_rx_bytes']}")
            if "rebased_from" in out.values:
                detail += (f"; re-based onto {out.values['platform']} in "
                           f"{out.values['rebase_s']:.1f} s, diff content "
                           f"{out.values['diff_content_digest']} unchanged")
            if out.values.get("diff_only"):
                detail += (f"; diff only: {out.values['diff_only']} diff layer(s) fetched from "
                           "the registry, the other platform's base layers not")
            return pb.PullImageResponse(
                timing=timing("pull", out.seconds, got, detail), digest=out.values["digest"],
                verified=out.values["verified"], layers=layers_to_pb(layers),
                pinned_ref=out.values["pinned_ref"],
                interface_rx_bytes=out.values["interface_rx_bytes"],
                interface=out.values["interface"])

        return self.run_phase(req.ref, "pull", pb.PullImageResponse, execute)

    def _check_transfer(self, session_id: bytes, image_ref: str, digest: str) -> None:
        if self.transfer_lookup is None:
            raise InvalidRequest("this agent hosts no RASP endpoint: rasp_session_id unusable")
        try:
            sent_ref, sent_digest, _ = self.transfer_lookup(session_id)
        except Exception as err:  # unknown / unfinished session
            raise InvalidRequest(f"RASP session unusable for the pull: {err}") from None
        if sent_digest != digest:
            raise DigestMismatch(f"RASP step 10 carried {sent_digest or 'no digest'}, "
                                 f"the pull asks for {digest}")
        if sent_ref and ImageRef.parse(sent_ref).name != ImageRef.parse(image_ref).name:
            raise DigestMismatch(f"RASP step 10 carried {sent_ref}, the pull asks for "
                                 f"{image_ref}")

    # -- the direct order: the diff from engine to engine through the SMF, no registry ---------
    def _kept_diff(self, ref: pb.MigrationRef) -> Path:
        """Where a destination keeps a received layer until it loads it (0700 folder)."""
        folder = self.options.data_dir / "diffs"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder / f"{check_migration_id(ref.migration_id)}.{ref.epoch}.tar"

    def _drop_stale_diffs(self) -> None:
        """Layers kept longer than KEPT_DIFF_S (a migration that never loaded them)."""
        folder = self.options.data_dir / "diffs"
        now = time.time()
        for old in folder.glob("*.tar") if folder.is_dir() else ():
            with contextlib.suppress(OSError):
                if now - old.stat().st_mtime > KEPT_DIFF_S:
                    old.unlink()

    def export_diff(self, req: pb.ExportDiffRequest) -> Iterator[pb.ExportDiffResponse]:
        """The source side of the direct order's transfer (fenced like every phase, recorded
        as "export"; a stream is not replayed: a repeat exports again)."""
        name = self.container_name(req.name)
        mid, epoch = check_migration_id(req.ref.migration_id), req.ref.epoch
        with self._lock(mid):
            self.store.fence(mid, epoch)
            self.store.begin_phase(mid, epoch, "export")
            sent, result = 0, None
            try:
                for part in export_diff(self.engine, name, {LABEL_MIGRATION: mid,
                                                            LABEL_EPOCH: str(epoch)},
                                        MAX_DIFF_BYTES, self.early.take((mid, epoch))):
                    if isinstance(part, bytes):
                        sent += len(part)
                        yield pb.ExportDiffResponse(chunk=pb.DiffChunk(data=part))
                        continue
                    if len(part.config) > MAX_DIFF_CONFIG_BYTES:
                        raise PhaseFailed(f"the image config is {len(part.config)} bytes, "
                                          f"more than {MAX_DIFF_CONFIG_BYTES}")
                    detail = (f"{part.entries} entries ({part.whiteouts} whiteouts), "
                              f"{part.size} bytes streamed; {part.engine_summary()}; "
                              f"layer {part.digest}")
                    result = pb.ExportDiffResult(
                        timing=timing("export", part.seconds, sent, detail),
                        digest=part.digest, size_bytes=part.size,
                        config=part.config, base_image_id=part.base_image_id,
                        image_id=bytes_digest(part.config))
            except BaseException as err:  # a NodeError, or the stream cancelled (GeneratorExit)
                self.store.finish_phase(mid, epoch, "export", state=FAILED, wall_seconds=0.0,
                                        bytes_moved=sent, detail=str(err)[:500] or
                                        type(err).__name__, response=None)
                raise
            assert result is not None
            self.store.finish_phase(mid, epoch, "export", state=OK,
                                    wall_seconds=result.timing.wall_seconds, bytes_moved=sent,
                                    detail=result.timing.detail,
                                    response=result.SerializeToString())
            yield pb.ExportDiffResponse(result=result)

    def import_diff(self, requests: Iterator[pb.ImportDiffRequest]) -> pb.ImportDiffResponse:
        """The destination side of the transfer: keep the streamed layer (0600, at most
        MAX_DIFF_BYTES) until `load_diff`; answer its digest and size, and the reference it
        will tag the image with (in this host's push namespace, for the publish)."""
        first = next(requests, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidRequest("an ImportDiff stream starts with its header")
        ref = first.header.ref
        tag = first.header.tag or f"{ref.migration_id}-{ref.epoch}"
        target = ImageRef.parse(f"{self._push_target(first.header.repository)}:{tag}")

        def execute() -> pb.ImportDiffResponse:
            self._drop_stale_diffs()
            nic = self.engine.interface
            rx0 = interface_counters(nic)[1]
            started = time.monotonic()
            path = self._kept_diff(ref)
            path.unlink(missing_ok=True)
            digest, size = receive_file(path, (m.chunk.data for m in requests
                                               if m.WhichOneof("part") == "chunk"),
                                        MAX_DIFF_BYTES)
            seconds = time.monotonic() - started
            rx = interface_counters(nic)[1] - rx0
            return pb.ImportDiffResponse(
                timing=timing("transfer", seconds, size,
                              f"{size} bytes kept, {digest}; {nic or '?'} rx {rx}"),
                digest=digest, size_bytes=size, interface_rx_bytes=rx, interface=nic,
                image_ref=str(target))

        return self.run_phase(ref, "transfer", pb.ImportDiffResponse, execute)

    def load_diff(self, req: pb.LoadDiffRequest) -> pb.LoadDiffResponse:
        """Load the kept layer once RASP step 10 (this host's CB role, from the source under
        Ksc) names the image: the digest it carries is the config's (the image id), and the
        config's last diff_id must be the kept layer's digest; on the pre-pulled image the
        source ran."""
        ref = ImageRef.parse(req.image_ref)
        if len(req.config) > MAX_DIFF_CONFIG_BYTES:
            raise InvalidRequest(f"an image config is at most {MAX_DIFF_CONFIG_BYTES} bytes")
        if not req.rasp_session_id:
            raise InvalidRequest("rasp_session_id is required: the image is checked against "
                                 "RASP step 10")
        config_digest = bytes_digest(bytes(req.config))
        if config_digest != req.expected_digest:
            raise DigestMismatch(f"the config hashes to {config_digest}, not "
                                 f"{req.expected_digest}")
        self._check_transfer(bytes(req.rasp_session_id), str(ref), req.expected_digest)
        mid = check_migration_id(req.ref.migration_id)

        def execute() -> pb.LoadDiffResponse:
            kept = self.store.phase(mid, req.ref.epoch, "transfer")
            path = self._kept_diff(req.ref)
            if kept is None or kept.state != OK or kept.response is None or not path.is_file():
                raise NotFound(f"no layer kept for {mid} attempt {req.ref.epoch}")
            received = pb.ImportDiffResponse()
            received.ParseFromString(kept.response)
            layer = last_diff_id(bytes(req.config))
            if received.digest != layer or path.stat().st_size != received.size_bytes:
                raise DigestMismatch(f"the kept layer is {received.digest} "
                                     f"({received.size_bytes} bytes), the image RASP step 10 "
                                     f"names has {layer or 'no layer'} on top")
            try:
                out = load_diff(self.engine, path, received.size_bytes, bytes(req.config),
                                req.base_image_id, ref)
            finally:
                path.unlink(missing_ok=True)
            if out.values["image_id"] != req.expected_digest:
                raise DigestMismatch(f"the engine loaded {out.values['image_id']}, not "
                                     f"{req.expected_digest}")
            return pb.LoadDiffResponse(
                timing=timing("load", out.seconds, 0, f"image {req.expected_digest} (RASP step "
                              f"10) with layer {layer}, {received.size_bytes} bytes, loaded on "
                              f"{req.base_image_id[:19]}"),
                digest=req.expected_digest, verified=True, pinned_ref=str(ref),
                image_id=out.values["image_id"])

        return self.run_phase(req.ref, "load", pb.LoadDiffResponse, execute)

    def prepull(self, req: pb.PrePullImageRequest) -> pb.PrePullImageResponse:
        """Pull before the stop; layers that came are written out (``sync``) before it answers,
        or their writeback lands in the downtime (the next unmount flushes the file system)."""
        out = self.engine.prepull(ImageRef.parse(req.image_ref))
        layers = out.values["layers"]
        moved, started, detail = moved_bytes(layers), time.monotonic(), ""
        if moved:
            os.sync()
            detail = f"written out to disk in {time.monotonic() - started:.3f} s"
        return pb.PrePullImageResponse(layers=layers_to_pb(layers), timing=timing(
            "prepull", out.seconds + time.monotonic() - started, moved, detail))

    # -- workloads ----------------------------------------------------------------------------
    def _write_secrets(self, name: str, secrets: Sequence[pb.SecretFile]) -> list[tuple[Path, str]]:
        mounts = []
        base = secret_dir(self.options.data_dir) / name
        base.mkdir(mode=0o700, exist_ok=True)
        for i, secret in enumerate(secrets):
            if not secret.container_path.startswith("/"):
                raise InvalidRequest("secret container_path must be absolute")
            path = base / f"secret-{i}"
            path.unlink(missing_ok=True)
            fd = path.open("xb")
            try:
                path.chmod(0o400)
                fd.write(secret.content)
            finally:
                fd.close()
            os.chown(path, secret.uid, secret.uid)
            mounts.append((path, secret.container_path))
        return mounts

    def run(self, req: pb.RunWorkloadRequest) -> pb.RunWorkloadResponse:
        spec = req.spec
        name = self.container_name(spec.name)
        if not spec.image:
            raise InvalidRequest("spec.image is required")
        migration = req.ref.migration_id if req.HasField("ref") else ""
        labels = {LABEL_WORKLOAD: name}
        if migration:
            labels |= {LABEL_MIGRATION: migration, LABEL_EPOCH: str(req.ref.epoch)}

        def execute() -> pb.RunWorkloadResponse:
            existing = self.engine.find(name)
            if existing is not None:
                theirs = existing.labels or {}
                same = migration and theirs.get(LABEL_MIGRATION) == migration
                if not same:
                    raise Conflict(f"a container named {name} already exists on this host")
                self.engine.remove(name)  # an older epoch's (or interrupted) attempt: replace
            mounts = self._write_secrets(name, spec.secrets)
            out = self.engine.run(
                name, spec.image,
                ports=[(p.container_port, p.host_port, p.host_ip) for p in spec.ports],
                env=dict(spec.env), labels=labels, mounts=mounts, command=list(spec.command))
            self.store.put_workload(WorkloadRow(
                name, out.values["container_id"], spec.image, node_resources_from_pb(spec.reserved),
                migration or None, req.ref.epoch if migration else None))
            return pb.RunWorkloadResponse(
                timing=timing("run", out.seconds), container_id=out.values["container_id"],
                image_id=out.values["image_id"],
                ports=[pb.PortBinding(container_port=c, host_port=h, host_ip=ip)
                       for c, h, ip in out.values["ports"]])

        if migration:
            return self.run_phase(req.ref, "run", pb.RunWorkloadResponse, execute)
        return execute()

    def describe(self, name: str) -> pb.DescribeWorkloadResponse:
        """What the engine says workload `name` runs from (NotFound without a container)."""
        out = self.engine.describe(self.container_name(name))
        return pb.DescribeWorkloadResponse(
            state=out["state"], image_ref=out["image_ref"], image_id=out["image_id"],
            repo_digests=list(out["repo_digests"]))

    def remove(self, name: str) -> bool:
        name = self.container_name(name)
        removed = self.engine.remove(name)
        self.store.drop_workload(name)
        return removed

    # -- first response -----------------------------------------------------------------------
    def probe(self, req: pb.ProbeFirstResponseRequest) -> pb.ProbeFirstResponseResponse:
        if req.kind == pb.PROBE_KIND_UNSPECIFIED:
            raise InvalidRequest("probe kind is required")
        if not 0 < req.endpoint.port < 65536 or not req.endpoint.host:
            raise InvalidRequest("probe endpoint host and port are required")
        if not self._is_workload_endpoint(req.endpoint.host, req.endpoint.port):
            raise InvalidRequest(f"{req.endpoint.host}:{req.endpoint.port} is not a port "
                                 "published by a workload of this agent; only those are probed")

        def execute() -> pb.ProbeFirstResponseResponse:
            seconds, attempts, body = probe_until_ok(
                req.endpoint.host, req.endpoint.port, req.kind, req.http_path or "/",
                req.timeout_seconds or DEFAULT_PROBE_TIMEOUT)
            return pb.ProbeFirstResponseResponse(
                timing=timing("first_response", seconds, detail=f"{attempts} attempt(s)"),
                attempts=attempts, body_excerpt=body[:256])

        if req.HasField("ref") and req.ref.migration_id:
            return self.run_phase(req.ref, "first_response", pb.ProbeFirstResponseResponse,
                                  execute)
        return execute()

    def _is_workload_endpoint(self, host: str, port: int) -> bool:
        """True when ``host:port`` is a port a workload container of this agent publishes
        (on its bound address, or on loopback when bound to every address): the probe reaches
        only this agent's own workloads, never an arbitrary address (no request forgery)."""
        host = host.strip("[]")
        for row in self.store.workloads():
            container = self.engine.find(row.name)
            if container is None:
                continue
            for _cport, hport, hip in published_ports(container.attrs):
                if hport != port:
                    continue
                if hip in ("", "0.0.0.0", "::"):
                    if host in _LOOPBACK or host == self.options.workload_host:
                        return True
                elif host == hip:
                    return True
        return False

    # -- request migration (Algorithm 3) ------------------------------------------------------
    def submit_request(self, req: pb.SubmitRequestRequest) -> pb.SubmitRequestResponse:
        required = node_resources_from_pb(req.required)
        started = time.monotonic()
        with self._inflight_lock:
            used = Resources.total(
                [w.reserved for w in self.store.workloads()] + list(self._inflight.values()))
            forward = must_forward(required, self.capacity(), used)
            if not forward:
                key = f"{req.request_id}:{time.monotonic_ns()}"
                self._inflight[key] = required
        if not forward:
            try:
                body = self._serve_locally(req)
            finally:
                with self._inflight_lock:
                    self._inflight.pop(key, None)
            return pb.SubmitRequestResponse(
                served_by=self.hostname, forwarded=False, body=body, path=[self.hostname],
                timing=timing("request_local", time.monotonic() - started))
        if req.hops_left == 0 or not self.neighbours:
            raise NoCapacity(f"{self.hostname} cannot serve request {req.request_id} and may "
                             "not forward it")
        candidates = []
        how: dict[str, str] = {}
        for link in self.neighbours:
            try:
                free, how[link.name] = self._neighbour_free(link)
                candidates.append((Neighbour(link.name, link.distance, free), link))
            except Exception as err:  # an unreachable neighbour is skipped, not fatal
                self.log.warning("neighbour_unreachable", neighbour=link.name, error=str(err))
        chosen = choose_neighbour(required, [n for n, _ in candidates])
        if chosen is None:
            raise NoCapacity(f"no neighbour of {self.hostname} can serve {req.request_id}")
        link = next(lk for n, lk in candidates if n.name == chosen.name)
        forwarded = pb.SubmitRequestRequest()
        forwarded.CopyFrom(req)
        forwarded.hops_left = min(req.hops_left, self.options.max_hops) - 1
        decided = time.monotonic() - started
        answer = link.submit(forwarded)
        elapsed = time.monotonic() - started
        return pb.SubmitRequestResponse(
            served_by=answer.served_by, forwarded=True, body=answer.body,
            path=[self.hostname, *answer.path],
            timing=timing("request_redirect", elapsed,
                          detail=f"REQ_res >= R_rem here; forwarded to {chosen.name} "
                                 f"(distance {chosen.distance}); FREE "
                                 + ", ".join(f"{k} {v}" for k, v in sorted(how.items()))
                                 + f"; decision {decided * 1000:.3f} ms"))

    def running_endpoint(self, name: str) -> tuple[int, int] | None:
        """(container port, host port) of workload ``name`` when its container is running."""
        container = self.engine.find(self.container_name(name))
        if container is None or container.attrs.get("State", {}).get("Status") != "running":
            return None
        ports = published_ports(container.attrs)
        return (ports[0][0], ports[0][1]) if ports else None

    def _serve_locally(self, req: pb.SubmitRequestRequest) -> bytes:
        name = self.container_name(req.service)
        container = self.engine.find(name)
        if container is None:
            raise NotFound(f"no workload {name} on {self.hostname}")
        ports = published_ports(container.attrs)
        if not ports:
            raise NotFound(f"workload {name} publishes no port")
        try:
            return self.local_handler(ports[0][1], req.path or "/")
        except (urllib.error.URLError, OSError) as err:
            raise PhaseFailed(f"workload {name} did not answer: {err}") from None


def tcp_stays_open(host: str, port: int, hold: float = 0.1) -> bool:
    """True when a connection is accepted *and* not closed within ``hold`` seconds.

    Docker's userland proxy accepts connections on a published port before the service in the
    container listens, then closes them: a bare connect would end the downtime too early.
    """
    with socket.create_connection((host, port), timeout=1.0) as sock:
        sock.settimeout(hold)
        try:
            return sock.recv(1, socket.MSG_PEEK) != b""
        except TimeoutError:
            return True


def probe_until_ok(host: str, port: int, kind: int, path: str, timeout: float,
                   interval: float = 0.02) -> tuple[float, int, bytes]:
    """Probe until the first success; (seconds, attempts, body). PhaseFailed on timeout."""
    started = time.monotonic()
    attempts = 0
    last = ""
    while True:
        attempts += 1
        try:
            if kind == pb.PROBE_KIND_TCP_CONNECT and tcp_stays_open(host, port):
                return time.monotonic() - started, attempts, b""
            if kind == pb.PROBE_KIND_TCP_CONNECT:
                last = "connection accepted but closed at once"
                raise ConnectionError(last)
            url = f"http://{host}:{port}{path}"
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                body = resp.read(256)
                if resp.status == 200:
                    return time.monotonic() - started, attempts, body
        except (OSError, urllib.error.URLError) as err:
            last = str(err)
        if time.monotonic() - started > timeout:
            raise PhaseFailed(f"no response from {host}:{port} in {timeout} s ({last})")
        time.sleep(interval)

