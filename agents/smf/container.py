"""The container phases of Migrate Service over the node agents' NodeService (cold migration).

Order inside the SMF's plan (see migration.py for both orders)::

    diff order (default)                              paper order
    prepull   destination pulls the image the         [prepull] base_image, proactive mode only
              source runs from (below)
    ... rasp_handshake (1-8), ledger_write, self_evaluation ...
    stop      source: SIGTERM, bounded grace (downtime starts)
    commit    source: container diff -> <registry>/<repository>:<migration>-<attempt>
    push      source -> registry; sets extras image_ref / image_digest / size_bytes, which
              RASP step 10 (M_Trf, under Ksc) carries to the destination
    ... rasp_transfer (9-11)                          ... rasp_handshake (1-11), ledger_write,
                                                          self_evaluation ...
    pull      destination: by digest, with the RASP session id -- the destination agent checks
              the digest against the step-10 transfer its own CB role received; in the diff
              order only the new top layer is missing there
    run       destination: the pinned image, ports/env/secrets from the `WorkloadTemplate`
    first_response  destination probes the workload until it answers (downtime ends)
    ... rasp_location_update, location_commit ...
    source_cleanup  source removes its stopped container (only after the location commit)

The direct order replaces commit, push and pull: ``transfer`` (the SMF relays the layer the
source's agent makes of the container's changes to the destination's agent, which keeps it),
... rasp_transfer (step 10 carries the new image's id, its config's digest, which names the
layer) ..., ``load`` (the destination checks the config and the kept layer against step 10
and loads them on the image it pre-pulled), run, first_response, ``publish`` (the destination
pushes the image to the registry, after the downtime, for the next migration's prepull).
Its ``stop`` asks the source's agent to list the container's changes first, while it still
serves: the export fetches those paths while the engine lists them again after the stop.

The diff order's prepull pulls, at the destination, the registry reference the service runs
from: what the source's agent reports its container runs from (DescribeWorkload: registry
digests, then Config.Image), else the pinned image of its last committed migration (journal),
else the registered image, else the template's base_image -- the first the destination can
pull. Every host's registry
account may pull any repository (the proxy limits only pushes to ``<host>/``, roles/registry),
so the destination pulls what another host pushed. A reference not in the registry (a
local-only image) is reported in the phase's detail and the migration goes on: the pull after
the stop then moves the missing layers.

Crash safety (fencing + journal). Every NodeService call carries
``MigrationRef(node migration id, attempt)``: the id is stable for one logical migration of a
service (from one location epoch to the next), the attempt is bumped on every try, so a node
agent fences stale attempts and re-executes phases of a new attempt (idempotent replays of the
same attempt return the stored answer). `MigrationJournal` (agents/smf/store.py, the SMF's
SQLite) remembers the attempt, so a retry after a failure continues the same migration with
attempt + 1.

When a phase fails before the location commit, `abort` runs (the same in both orders; a
failure before `stop` -- diff order's prepull, RASP 1-8, ledger, self-evaluation -- has nothing
to restart and only closes the journal row as rolled back): if a destination container may
exist it is removed (RemoveWorkload); only when the destination is known to hold no copy is the
source container restarted in place (StartContainer, same writable layer). If the destination
cannot be reached the source stays stopped: the journal says "failed" and the next Migrate
Service to the same destination completes it (RunWorkload replaces the orphan of the same
migration). A different destination is refused until then, so two copies can never run. The
location record moves only after the destination's first response.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as pb_grpc
from agents.common.convert import MIB
from agents.smf.domain import (
    COMMITTED,
    DIFF_FIRST,
    DIFF_ORDER,
    DIRECT_ORDER,
    FAILED,
    ROLLED_BACK,
    RUNNING,
    JournalRow,
    MigrationInProgress,
    MigrationState,
    Phase,
    PhaseOutcome,
    PhaseRecord,
    PhaseResult,
    ServerEntry,
)
from agents.smf.store import MigrationJournal

#: phases after which a destination container may exist
_DESTINATION_RUN = ("run", "first_response", "publish", "rasp_location_update",
                    "location_commit")

NodeStubFactory = Callable[[ServerEntry], pb_grpc.NodeServiceStub]


@dataclass(frozen=True)
class SecretSource:
    """A secret the SMF re-sends to the destination at every run (bind mounts are not
    committed): read from ``path`` on the SMF host, mounted read-only at ``container_path``."""

    container_path: str
    path: Path
    uid: int = 65534


@dataclass(frozen=True)
class WorkloadTemplate:
    """How a service's container is run at a destination (the image comes from the pull)."""

    workload: str                      # logical container name on every node agent
    repository: str                    # registry repository of the committed images
    container_port: int
    host_port: int = 0                 # 0: the engine picks one (the locate answer tells)
    host_ip: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    secrets: tuple[SecretSource, ...] = ()
    probe: str = "tcp"                 # "tcp" (connection held open) or "http" (200 on path)
    probe_path: str = "/"
    probe_timeout_s: float = 30.0
    stop_timeout_s: int = 10
    base_image: str = ""               # what proactive mode pre-pulls (registry reference)


@dataclass(frozen=True)
class Timeouts:
    rpc_s: float = 30.0
    transfer_s: float = 600.0
    #: How long UNAVAILABLE (agent restarting, channel reconnecting) is retried. Every node
    #: phase is fenced and idempotent, so repeating a call is safe.
    connect_grace_s: float = 3.0


class NodeUnavailable(RuntimeError):
    """The node agent could not be reached within the connect grace."""


def _rpc(fn: Any, request: Any, timeout: float, what: str, grace: float = 3.0) -> Any:
    deadline = time.monotonic() + grace
    while True:
        try:
            return fn(request, timeout=timeout)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            details = err.details() if hasattr(err, "details") else str(err)
            if code == grpc.StatusCode.UNAVAILABLE:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise NodeUnavailable(f"{what}: UNAVAILABLE: {details}") from None
            raise RuntimeError(f"{what}: {code.name if code else '?'}: {details}") from None


def _result(resp: Any, detail: str = "") -> PhaseResult:
    t: common_pb2.PhaseTiming = resp.timing
    text = f"node {t.wall_seconds:.3f} s"
    for part in (t.detail, detail):
        if part:
            text += f"; {part}"
    return PhaseResult(bytes_moved=int(t.bytes_moved), detail=text[:500])


class NodeContainerPhases:
    """`ContainerPhases` over the source and destination node agents (module docstring)."""

    def __init__(self, templates: Mapping[str, WorkloadTemplate], node: NodeStubFactory,
                 journal: MigrationJournal, *, timeouts: Timeouts | None = None,
                 proactive: bool = False) -> None:
        self.templates = dict(templates)
        self.node = node
        self.journal = journal
        self.timeouts = timeouts or Timeouts()
        self.proactive = proactive

    # -- helpers ------------------------------------------------------------------------------
    def template(self, state: MigrationState) -> WorkloadTemplate:
        t = self.templates.get(state.service.name)
        if t is None:
            raise RuntimeError(f"no workload template for service {state.service.name!r} "
                               "(settings.container.workloads)")
        return t

    @staticmethod
    def ref(state: MigrationState) -> pb.MigrationRef:
        mid, attempt = state.extras["node_ref"]
        return pb.MigrationRef(migration_id=mid, epoch=attempt)

    def claim(self, state: MigrationState) -> None:
        """Continue an interrupted migration (same id, attempt + 1) or start a new one."""
        if "node_ref" in state.extras:
            return
        sid = state.service.global_id
        row = self.journal.get(sid)
        if row is not None and row.cleanup:
            self._deferred_cleanup(state, row)
        unfinished = (row is not None and row.state in (RUNNING, FAILED)
                      and row.location_epoch == state.epoch)
        if unfinished:
            assert row is not None
            if row.destination != state.destination.name:
                raise MigrationInProgress(
                    f"an interrupted migration of {state.service.name} to {row.destination} "
                    f"(attempt {row.attempt}: {row.detail or row.state}) must be retried to "
                    f"{row.destination} first: a copy may exist there")
            mid, attempt = row.migration_id, row.attempt + 1
        else:
            mid, attempt = state.migration_id, 1
        self.journal.begin(state, mid, attempt)
        state.extras["node_ref"] = (mid, attempt)
        state.extras["attempt"] = attempt
        # the ledger's container id (written before the push in the diff order)
        state.extras["container_id"] = f"{state.service.name}@{mid}.{attempt}"

    def _deferred_cleanup(self, state: MigrationState, row: JournalRow) -> None:
        """Remove a stopped container left behind by an earlier migration (before this one
        might want to run the service on that host again)."""
        for server, workload in row.cleanup.items():
            entry = state.service.server(server)
            if entry is None:
                continue
            try:
                self._remove(entry, workload)
            except RuntimeError:
                continue
            self.journal.set_cleanup(row.service_id, server, None)

    def _remove(self, server: ServerEntry, workload: str) -> bool:
        stub = self.node(server)
        resp = _rpc(stub.RemoveWorkload, pb.RemoveWorkloadRequest(name=workload),
                    self.timeouts.rpc_s, f"{server.name} RemoveWorkload",
                    self.timeouts.connect_grace_s)
        return bool(resp.removed)

    # -- phases -------------------------------------------------------------------------------
    def phases(self, order: str = DIFF_ORDER) -> list[Phase]:
        """The container phases of `order`: prepull always in the diff order, in the paper
        order only in proactive mode."""
        out = []
        if order in DIFF_FIRST:
            out.append(Phase("prepull", self.prepull_current))
        elif self.proactive:
            out.append(Phase("prepull", self.prepull))
        if order == DIRECT_ORDER:
            return [*out, Phase("stop", self.stop), Phase("transfer", self.transfer),
                    Phase("load", self.load), Phase("run", self.run),
                    Phase("first_response", self.first_response),
                    Phase("publish", self.publish),
                    Phase("source_cleanup", self.source_cleanup)]
        out += [Phase("stop", self.stop), Phase("commit", self.commit),
                Phase("push", self.push), Phase("pull", self.pull), Phase("run", self.run),
                Phase("first_response", self.first_response),
                Phase("source_cleanup", self.source_cleanup)]
        return out

    def prepull(self, state: MigrationState) -> PhaseResult:
        self.claim(state)
        base = self.template(state).base_image
        if not base:
            return PhaseResult(detail="no base_image configured: nothing to pre-pull")
        resp = _rpc(self.node(state.destination).PrePullImage,
                    pb.PrePullImageRequest(image_ref=base), self.timeouts.transfer_s,
                    f"{state.destination.name} PrePullImage")
        return _result(resp, f"pre-pulled {base} (before downtime)")

    def current_images(self, state: MigrationState,
                       described: list[str] | None = None) -> list[str]:
        """Where the image the source runs from may be in the registry, best first: what the
        source's agent says its container runs from (`described`: its registry digests, then
        the reference it was created from), the pinned image of the service's last committed
        migration (journal), the registered image, the template's base_image."""
        refs = [*(described or []), self.journal.image(state.service.global_id),
                state.service.image_ref, self.template(state).base_image]
        return list(dict.fromkeys(r for r in refs if r))

    def describe_source(self, state: MigrationState, notes: list[str]) -> list[str]:
        """The registry references of the image the source's container really runs from
        (DescribeWorkload): its repo digests, then its Config.Image. Empty, with a note, when
        the agent cannot say (no container, an agent without the RPC): the journal is next."""
        t = self.template(state)
        try:
            resp = _rpc(self.node(state.source).DescribeWorkload,
                        pb.DescribeWorkloadRequest(name=t.workload), self.timeouts.rpc_s,
                        f"{state.source.name} DescribeWorkload", self.timeouts.connect_grace_s)
        except NodeUnavailable:
            raise
        except RuntimeError as err:
            notes.append(f"source image unknown ({err}); using the journal")
            return []
        state.extras["source_image"] = {"image_ref": resp.image_ref, "image_id": resp.image_id,
                                        "repo_digests": list(resp.repo_digests),
                                        "state": resp.state}
        return [*resp.repo_digests, resp.image_ref]

    def prepull_current(self, state: MigrationState) -> PhaseResult:
        """Diff order, before the stop: the destination pulls the image the source runs from
        (`current_images`: first what the source's agent reports, `describe_source`, so a
        service restarted behind the SMF's back is not pre-pulled from a stale journal), so
        the pull after the stop fetches only the committed top layer.

        Also the ledger's size before the stop (extras ``size_bytes``, replaced by the push's
        real size before step 10): the compressed size of that image from the registry's
        manifest (the layer sizes PrePullImage reports), which leaves out the container's
        writable layer (no node RPC reports it before the commit); when no reference could be
        pulled, the registered storage requirement (MiB).

        First the source's agent must answer (within the connect grace): RASP talks to it
        next, over the same channel, which this also reconnects after an agent restart."""
        self.claim(state)
        self._reachable(state.source)
        notes: list[str] = []
        for ref in self.current_images(state, self.describe_source(state, notes)):
            try:
                resp = _rpc(self.node(state.destination).PrePullImage,
                            pb.PrePullImageRequest(image_ref=ref), self.timeouts.transfer_s,
                            f"{state.destination.name} PrePullImage",
                            self.timeouts.connect_grace_s)
            except NodeUnavailable:
                raise  # fail before the stop: the destination is needed next
            except RuntimeError as err:
                notes.append(f"{ref} not pre-pulled: {err}")
                continue
            size = sum(int(x.size) for x in resp.layers)
            state.extras["size_bytes"] = size
            state.extras["prepulled"] = ref
            notes.append(f"pre-pulled {ref} (before downtime), {size} bytes compressed")
            return _result(resp, "; ".join(notes))
        state.extras["size_bytes"] = state.service.requirement.storage * MIB
        if not notes:
            notes.append("no registry image known for the service")
        notes.append("the pull after the stop moves every missing layer")
        return PhaseResult(detail="; ".join(notes)[:500])

    def _reachable(self, server: ServerEntry) -> None:
        """Fail early (before the source stops) when ``server``'s agent does not answer; also
        reconnects the shared channel that RASP uses next."""
        try:
            _rpc(self.node(server).GetMigration, pb.GetMigrationRequest(migration_id="probe"),
                 self.timeouts.rpc_s, f"{server.name} GetMigration", self.timeouts.connect_grace_s)
        except NodeUnavailable:
            raise
        except RuntimeError:
            pass  # NOT_FOUND and the like: the agent answered

    def stop(self, state: MigrationState) -> PhaseResult:
        self.claim(state)
        self._reachable(state.destination)
        t = self.template(state)
        state.extras["stop_attempted"] = True
        resp = _rpc(self.node(state.source).StopContainer,
                    pb.StopContainerRequest(ref=self.ref(state), name=t.workload,
                                            timeout_seconds=t.stop_timeout_s,
                                            list_changes=state.order == DIRECT_ORDER),
                    t.stop_timeout_s + self.timeouts.rpc_s, f"{state.source.name} StopContainer")
        mid, attempt = state.extras["node_ref"]
        return _result(resp, f"migration {mid} attempt {attempt}")

    def commit(self, state: MigrationState) -> PhaseResult:
        t = self.template(state)
        resp = _rpc(self.node(state.source).CommitContainer,
                    pb.CommitContainerRequest(ref=self.ref(state), name=t.workload,
                                              repository=t.repository),
                    self.timeouts.transfer_s, f"{state.source.name} CommitContainer")
        state.extras["image_ref"] = resp.image_ref
        state.extras["diff_bytes"] = int(resp.diff_bytes)
        return _result(resp, f"{resp.image_ref}")

    def push(self, state: MigrationState) -> PhaseResult:
        resp = _rpc(self.node(state.source).PushImage,
                    pb.PushImageRequest(ref=self.ref(state), image_ref=state.extras["image_ref"]),
                    self.timeouts.transfer_s, f"{state.source.name} PushImage")
        state.extras["image_digest"] = resp.digest
        state.extras["size_bytes"] = int(resp.compressed_total)
        mid, attempt = state.extras["node_ref"]
        state.extras["container_id"] = f"{state.service.name}@{mid}.{attempt}"
        moved = sum(1 for x in resp.layers if x.transferred)
        return _result(resp, f"digest {resp.digest}; {moved}/{len(resp.layers)} layers sent, "
                             f"{resp.compressed_total} bytes compressed in total")

    def pull(self, state: MigrationState) -> PhaseResult:
        resp = _rpc(self.node(state.destination).PullImage,
                    pb.PullImageRequest(ref=self.ref(state), image_ref=state.extras["image_ref"],
                                        expected_digest=state.extras["image_digest"],
                                        rasp_session_id=state.rasp_session_id),
                    self.timeouts.transfer_s, f"{state.destination.name} PullImage")
        if not resp.verified or resp.digest != state.extras["image_digest"]:
            raise RuntimeError(f"pulled {resp.digest}, not the pushed "
                               f"{state.extras['image_digest']}")
        state.extras["pinned_ref"] = resp.pinned_ref
        moved = sum(1 for x in resp.layers if x.transferred)
        return _result(resp, f"{moved}/{len(resp.layers)} layers fetched; checked against "
                             "RASP step 10")

    def transfer(self, state: MigrationState) -> PhaseResult:
        """Direct order, the source stopped: the SMF relays the layer the source's agent makes
        of the container's changes (ExportDiff) to the destination's agent (ImportDiff), chunk
        by chunk as it is made, so both links carry it at once and nothing waits for a
        registry. The destination keeps it until `load`; the source's result gives the new
        image's id (its config's digest), which RASP step 10 carries next."""
        t = self.template(state)
        ref = self.ref(state)
        source = self.node(state.source).ExportDiff(
            pb.ExportDiffRequest(ref=ref, name=t.workload), timeout=self.timeouts.transfer_s)
        results: list[pb.ExportDiffResult] = []
        failed: list[str] = []

        def stream() -> Iterator[pb.ImportDiffRequest]:
            yield pb.ImportDiffRequest(header=pb.ImportDiffHeader(ref=ref,
                                                                  repository=t.repository))
            try:
                for part in source:
                    if part.WhichOneof("part") == "chunk":
                        yield pb.ImportDiffRequest(chunk=part.chunk)
                    else:
                        results.append(part.result)
            except grpc.RpcError as err:  # ends the upload short: its digest shows it
                failed.append(f"{state.source.name} ExportDiff: {err.code().name}: "
                              f"{err.details()}")

        try:  # a stream cannot be sent twice: no retry on UNAVAILABLE (grace 0)
            resp = _rpc(self.node(state.destination).ImportDiff, stream(),
                        self.timeouts.transfer_s, f"{state.destination.name} ImportDiff", 0.0)
        except RuntimeError:
            if failed:
                raise RuntimeError(failed[0]) from None
            raise
        finally:
            source.cancel()
        if failed or not results:
            raise RuntimeError(failed[0] if failed else
                               f"{state.source.name} ExportDiff ended without its result")
        out = results[0]
        if (resp.digest, resp.size_bytes) != (out.digest, out.size_bytes):
            raise RuntimeError(f"{state.destination.name} kept {resp.size_bytes} bytes "
                               f"{resp.digest}, the source sent {out.size_bytes} bytes "
                               f"{out.digest}")
        # RASP step 10 names the image (its config's digest, whose last diff_id is the layer)
        state.extras.update(image_ref=resp.image_ref, image_digest=out.image_id,
                            size_bytes=int(out.size_bytes), diff_bytes=int(out.size_bytes),
                            diff_export=out)
        mid, attempt = state.extras["node_ref"]
        state.extras["container_id"] = f"{state.service.name}@{mid}.{attempt}"
        return _result(resp, f"relayed {state.source.name} -> {state.destination.name}; "
                             f"source: {out.timing.detail}")

    def load(self, state: MigrationState) -> PhaseResult:
        """Direct order, after RASP step 10: the destination checks the config against the
        image id the source sent under Ksc, and the kept layer against the config's top
        layer, then loads them on the image it pre-pulled."""
        out: pb.ExportDiffResult = state.extras["diff_export"]
        resp = _rpc(self.node(state.destination).LoadDiff,
                    pb.LoadDiffRequest(ref=self.ref(state), image_ref=state.extras["image_ref"],
                                       expected_digest=out.image_id, config=out.config,
                                       base_image_id=out.base_image_id,
                                       rasp_session_id=state.rasp_session_id),
                    self.timeouts.transfer_s, f"{state.destination.name} LoadDiff")
        if not resp.verified or resp.digest != out.image_id:
            raise RuntimeError(f"loaded {resp.digest}, not the exported {out.image_id}")
        state.extras["pinned_ref"] = resp.pinned_ref
        return _result(resp)

    def publish(self, state: MigrationState) -> PhaseResult:
        """Direct order, after the first response: the destination pushes the image it runs
        to the registry (only the new layer moves), where the next migration pre-pulls it."""
        resp = _rpc(self.node(state.destination).PushImage,
                    pb.PushImageRequest(ref=self.ref(state), image_ref=state.extras["image_ref"]),
                    self.timeouts.transfer_s, f"{state.destination.name} PushImage")
        return _result(resp, f"published {state.extras['image_ref']} as {resp.digest}")

    def _spec(self, state: MigrationState, t: WorkloadTemplate) -> pb.WorkloadSpec:
        secrets = []
        for s in t.secrets:
            try:
                content = s.path.read_bytes()
            except OSError as err:
                raise RuntimeError(f"secret {s.path}: {err}") from None
            secrets.append(pb.SecretFile(container_path=s.container_path, content=content,
                                         uid=s.uid))
        need = state.service.requirement
        return pb.WorkloadSpec(
            name=t.workload, image=state.extras["pinned_ref"],
            ports=[pb.PortBinding(container_port=t.container_port, host_port=t.host_port,
                                  host_ip=t.host_ip)],
            env=dict(t.env), command=list(t.command), secrets=secrets,
            reserved=common_pb2.Resources(cpu_millicores=need.cpu, memory_bytes=need.memory * MIB,
                                          storage_bytes=need.storage * MIB,
                                          network_bps=need.network * 1_000_000))

    def run(self, state: MigrationState) -> PhaseResult:
        t = self.template(state)
        state.extras["run_attempted"] = True
        resp = _rpc(self.node(state.destination).RunWorkload,
                    pb.RunWorkloadRequest(ref=self.ref(state), spec=self._spec(state, t)),
                    self.timeouts.rpc_s + 30, f"{state.destination.name} RunWorkload")
        port = next((p for p in resp.ports if p.container_port == t.container_port), None)
        if port is None:
            raise RuntimeError(f"{t.workload} publishes no port {t.container_port}")
        state.extras["published"] = (port.host_ip, port.host_port)
        return _result(resp, f"container {resp.container_id[:12]} port {port.host_port}")

    def first_response(self, state: MigrationState) -> PhaseResult:
        t = self.template(state)
        host_ip, host_port = state.extras["published"]
        host = host_ip if host_ip and host_ip not in ("0.0.0.0", "::") else "127.0.0.1"
        kind = pb.PROBE_KIND_HTTP_GET if t.probe == "http" else pb.PROBE_KIND_TCP_CONNECT
        resp = _rpc(self.node(state.destination).ProbeFirstResponse,
                    pb.ProbeFirstResponseRequest(
                        ref=self.ref(state), kind=kind, http_path=t.probe_path,
                        endpoint=common_pb2.Endpoint(host=host, port=host_port),
                        timeout_seconds=t.probe_timeout_s),
                    t.probe_timeout_s + self.timeouts.rpc_s,
                    f"{state.destination.name} ProbeFirstResponse")
        return _result(resp, f"{t.probe} probe of {host}:{host_port} at the destination")

    def source_cleanup(self, state: MigrationState) -> PhaseResult:
        """After the location commit: remove the stopped source container. Never fails the
        migration (the location has moved); an unreachable source is cleaned up later."""
        t = self.template(state)
        sid = state.service.global_id
        if state.extras.get("pinned_ref"):
            self.journal.set_image(sid, str(state.extras["pinned_ref"]))
        try:
            removed = self._remove(state.source, t.workload)
        except RuntimeError as err:
            self.journal.finish(sid, COMMITTED, f"source cleanup deferred: {err}")
            self.journal.set_cleanup(sid, state.source.name, t.workload)
            return PhaseResult(detail=f"deferred (source unreachable): {err}"[:500])
        self.journal.finish(sid, COMMITTED)
        self.journal.set_cleanup(sid, state.source.name, None)
        return PhaseResult(detail="stopped source container removed" if removed
                           else "no source container left")

    # -- abort ----------------------------------------------------------------------------------
    def abort(self, state: MigrationState, failed: str, exc: BaseException) -> list[PhaseRecord]:
        """Compensation after `failed` raised (see the module docstring)."""
        if "node_ref" not in state.extras:
            return []
        t0 = time.perf_counter()
        t = self.template(state)
        sid = state.service.global_id
        notes: list[str] = []
        dest_clean = True
        if state.extras.get("run_attempted") or failed in _DESTINATION_RUN:
            try:
                removed = self._remove(state.destination, t.workload)
                notes.append("destination copy removed" if removed
                             else "no destination copy")
            except RuntimeError as err:
                dest_clean = False
                notes.append(f"destination unreachable, its copy may run: {err}")
        restarted = not state.extras.get("stop_attempted")
        if dest_clean and not restarted:
            try:
                resp = _rpc(self.node(state.source).StartContainer,
                            pb.StartContainerRequest(ref=self.ref(state), name=t.workload),
                            self.timeouts.rpc_s, f"{state.source.name} StartContainer")
                restarted = True
                notes.append("source restarted" if resp.started else "source was running")
            except RuntimeError as err:
                notes.append(f"source not restarted: {err}")
        elif not dest_clean:
            notes.append("source kept stopped (a destination copy may run)")
        outcome = ROLLED_BACK if dest_clean and restarted else FAILED
        mid, attempt = state.extras["node_ref"]
        detail = (f"{outcome} after {failed} (migration {mid} attempt {attempt}): "
                  + "; ".join(notes))
        if outcome == FAILED:
            detail += f"; retry to {state.destination.name} completes it"
        self.journal.finish(sid, outcome, detail)
        return [PhaseRecord("abort", time.perf_counter() - t0, 0,
                            PhaseOutcome.OK if outcome == ROLLED_BACK else PhaseOutcome.FAILED,
                            detail[:500])]
