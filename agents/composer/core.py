"""What the composer does, without gRPC: compose, check, assign, authorize, fetch, execute.

A run (`ComposerCore.run`), timed phase by phase (ns, ``time.perf_counter_ns``):

1. ``compose``: the process YAML parsed into a workflow net (agents.sso.wfnet.parse_process);
   every service must be offered by some node (else refused, naming the unknown ones);
2. ``soundness``: agents.sso.wfnet.check_soundness (pm4py woflan + explicit cycle check);
   an unsound or cyclic net is refused with the reason;
3. ``assign``: agents.sso.strategies.assign for the strategy (the secure one only on nodes chi
   permits);
4. ``authorize`` (secure strategy): the secure workflow net WFs = (A, chi, R, Pi, xi) checked
   by agents.sso.secure.authorize (refusals -> PermissionError), plus the time spent signing
   each execution grant (agents.security.grant; one per transition, bound to the node, the
   service and the digest of that transition's input);
5. ``fetch``: the file's blocks through the home edge's cache (Fetch), each verified against
   the origin's manifest, assembled;
6. ``execute:<transition>``: the stages of agents.sso.wfnet.firing_order run in order; within
   a stage the transitions run one after another in the serial order (Theorem 1: a sound
   secure net is serializable, so the result equals that serial execution); the content
   token's bytes flow from one transition's output to the next one's input;
7. ``return``: the result's digest and the reply.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import yaml

from agents.security.grant import SignedGrant, input_digest
from agents.sso.blocks import FileManifest, assemble, verify_block
from agents.sso.secure import SecureWorkflowNet, ServiceOffer, authorize, serial_order
from agents.sso.strategies import AssignmentError, Strategy, assign, home_offer
from agents.sso.wfnet import (
    Composition,
    CompositionError,
    check_soundness,
    firing_order,
    parse_process,
)

MAX_PROCESS_BYTES = 64 * 1024
MAX_TRANSITIONS = 200
ANY = "*"


class UnsoundComposition(Exception):
    """The composed net is not a sound workflow net (or has a cycle); the message says why."""


@dataclass(frozen=True)
class Fetched:
    """What the home edge returned for a file: (index, digest, bytes) and its counters."""

    blocks: list[tuple[int, str, bytes]]
    hits: int
    from_neighbours: int
    from_origin: int
    bytes_in: int


@dataclass(frozen=True)
class Executed:
    """An edge's execution: output bytes and the modeled service time included (ns)."""

    output: bytes
    modeled_ns: int


class Edges(Protocol):
    """The blockcache agents as the composer reaches them (agents/composer/agent.py)."""

    def manifest(self, file_id: str) -> FileManifest:
        """The origin's manifest of `file_id`."""

    def fetch(self, home: str, file_id: str, indices: Sequence[int]) -> Fetched:
        """The blocks `indices` of `file_id` through `home`'s cache, with their bytes."""

    def execute(self, node: str, service: str, data: bytes, request_id: str, transition: str,
                grant: SignedGrant | None, cost: tuple[float, float]) -> Executed:
        """Run `service` on `node` over `data` (modeled cost: (mean, sd) ms)."""


#: (node, service, input digest, request id, transition) -> a signed grant
GrantIssuer = Callable[[str, str, str, str, str], SignedGrant]


@dataclass
class Phase:
    """One timed phase."""

    name: str
    ns: int
    node: str = ""
    modeled_ns: int = 0


@dataclass
class Composed:
    """A sound composition and the time it took."""

    composition: Composition
    stages: list[list[str]]
    compose_ns: int
    soundness_ns: int


@dataclass
class RunOutcome:
    """An executed request."""

    request_id: str
    result: bytes
    result_digest: str
    phases: list[Phase] = field(default_factory=list)
    assignment: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    serial: list[str] = field(default_factory=list)
    bytes_moved: int = 0
    hits_local: int = 0
    hits_neighbour: int = 0
    from_origin: int = 0
    grants: int = 0
    total_ns: int = 0


def _now() -> int:
    return time.perf_counter_ns()


class ComposerCore:
    """Offers, chi and the way to reach the edges; composes and runs requests."""

    def __init__(self, offers: Sequence[ServiceOffer], chi: Mapping[str, frozenset[str]],
                 edges: Edges, grants: GrantIssuer | None,
                 soundness_engine: str = "reachability") -> None:
        self.soundness_engine = soundness_engine
        self.offers = list(offers)
        self.chi = dict(chi)
        self.edges = edges
        self.grants = grants
        self.nodes = sorted({o.node for o in self.offers} | set(self.chi))
        # mean cost (ms) of the work assigned to each node by requests still running: the
        # cooperative strategies balance concurrent requests on it (bounded: one entry a node)
        self._inflight: dict[str, float] = dict.fromkeys(self.nodes, 0.0)
        self._inflight_lock = threading.Lock()

    @property
    def services(self) -> set[str]:
        """Every service some node offers."""
        return {o.service for o in self.offers}

    def chi_for(self, file_id: str) -> dict[str, frozenset[str]]:
        """chi with ``*`` (any resource) expanded to every offered service and `file_id`."""
        out = {}
        for node in self.nodes:
            allowed = self.chi.get(node, frozenset())
            out[node] = (frozenset(self.services | {file_id}) | (allowed - {ANY})
                         if ANY in allowed else frozenset(allowed))
        return out

    # -- compose ------------------------------------------------------------------------------
    def compose(self, process: str) -> Composed:
        """Parse and check `process` (YAML); CompositionError / UnsoundComposition."""
        if len(process.encode()) > MAX_PROCESS_BYTES:
            raise CompositionError(f"the process is over {MAX_PROCESS_BYTES} bytes")
        start = _now()
        try:
            obj = yaml.safe_load(process)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise CompositionError(f"the process is not valid YAML{where}") from None
        comp = parse_process(obj, known_services=self.services)
        if len(comp.tasks) > MAX_TRANSITIONS:
            raise CompositionError(f"the process has {len(comp.tasks)} transitions, "
                                   f"over {MAX_TRANSITIONS}")
        unknown = sorted(set(comp.tasks.values()) - self.services)
        if unknown:
            raise CompositionError(f"no node offers service(s) {', '.join(unknown)} "
                                   f"(offered: {', '.join(sorted(self.services)) or 'none'})")
        compose_ns = _now() - start
        start = _now()
        sound, reason = check_soundness(comp, self.soundness_engine)
        soundness_ns = _now() - start
        if not sound:
            raise UnsoundComposition(f"the composed workflow net is refused: {reason}")
        return Composed(comp, firing_order(comp), compose_ns, soundness_ns)

    # -- run ----------------------------------------------------------------------------------
    def run(self, process: str, strategy: Strategy, home: str, file_id: str,
            request_id: str = "", nodes: Sequence[str] = (),
            indices: Sequence[int] = ()) -> RunOutcome:
        """Compose, assign, authorize, fetch and execute (see the module doc); `nodes`
        restricts the cooperating edges (empty: all), `indices` the file's blocks the request
        asks for (empty: the whole file)."""
        started = _now()
        if home not in self.nodes:
            raise ValueError(f"home node {home!r} is not a known edge ({', '.join(self.nodes)})")
        unknown = sorted(set(nodes) - set(self.nodes))
        if unknown:
            raise ValueError(f"node(s) {', '.join(unknown)} are not known edges "
                             f"({', '.join(self.nodes)})")
        if nodes and home not in nodes:
            raise ValueError(f"home node {home!r} must be one of the cooperating nodes")
        offers = [o for o in self.offers if not nodes or o.node in nodes]
        secure = strategy is Strategy.SECURE
        if secure and self.grants is None:
            raise PermissionError("the secure strategy needs the composer's signing key")
        composed = self.compose(process)
        comp = composed.composition
        out = RunOutcome(request_id or uuid.uuid4().hex[:16], b"", "")
        out.tasks = dict(comp.tasks)
        out.phases += [Phase("compose", composed.compose_ns),
                       Phase("soundness", composed.soundness_ns)]
        chi = self.chi_for(file_id)
        t = _now()
        with self._inflight_lock:
            load = dict(self._inflight)
            try:
                out.assignment = assign(comp, offers, strategy, home,
                                        chi if secure else None, [file_id] if secure else (),
                                        load=load)
            except AssignmentError as err:
                raise (PermissionError(str(err)) if secure else err) from None
            added = {n: load[n] - self._inflight.get(n, 0.0) for n in load}
            for node, cost in added.items():
                self._inflight[node] = self._inflight.get(node, 0.0) + cost
        out.phases.append(Phase("assign", _now() - t))
        try:
            return self._execute(out, comp, composed, strategy, home, file_id, chi, started,
                                 indices)
        finally:
            with self._inflight_lock:
                for node, cost in added.items():
                    self._inflight[node] = max(0.0, self._inflight.get(node, 0.0) - cost)

    def _execute(self, out: RunOutcome, comp: Composition, composed: Composed,
                 strategy: Strategy, home: str, file_id: str,
                 chi: Mapping[str, frozenset[str]], started: int,
                 indices: Sequence[int] = ()) -> RunOutcome:
        """Authorize (secure), fetch the file through the home edge and run the stages."""
        secure = strategy is Strategy.SECURE
        t = _now()
        if secure:
            resources = frozenset(self.services | {file_id})
            swf = SecureWorkflowNet(comp, frozenset(self.nodes),
                                    {n: c & resources for n, c in chi.items()}, resources,
                                    dict(out.assignment))
            refusals = authorize(swf, [file_id])
            if refusals:
                raise PermissionError("secure composition refused: " + "; ".join(refusals))
            out.serial = serial_order(swf, composed.stages)
        else:
            out.serial = [tr for stage in composed.stages for tr in stage]
        authorize_phase = Phase("authorize", _now() - t)
        out.phases.append(authorize_phase)
        data = self._fetch(out, home, file_id, indices)
        for transition in out.serial:
            node, service = out.assignment[transition], comp.tasks[transition]
            grant = None
            if secure:
                t = _now()
                assert self.grants is not None
                grant = self.grants(node, service, input_digest(data), out.request_id,
                                    transition)
                authorize_phase.ns += _now() - t
                out.grants += 1
            t = _now()
            offer = home_offer(self.offers, node, service)  # penalised when not offered
            done = self.edges.execute(node, service, data, out.request_id, transition, grant,
                                      (offer.cost_mean_ms, offer.cost_sd_ms))
            out.phases.append(Phase(f"execute:{transition}", _now() - t, node, done.modeled_ns))
            out.bytes_moved += len(data) + len(done.output)
            data = done.output
        t = _now()
        out.result, out.result_digest = data, hashlib.sha256(data).hexdigest()
        out.phases.append(Phase("return", _now() - t))
        out.total_ns = _now() - started
        return out

    def _fetch(self, out: RunOutcome, home: str, file_id: str,
               indices: Sequence[int] = ()) -> bytes:
        t = _now()
        manifest = self.edges.manifest(file_id)
        wanted = list(indices) or list(range(len(manifest.blocks)))
        bad = [i for i in wanted if not 0 <= i < len(manifest.blocks)]
        if bad:
            raise ValueError(f"{file_id!r} has {len(manifest.blocks)} blocks; no block {bad[0]}")
        got = self.edges.fetch(home, file_id, wanted)
        blocks: dict[str, bytes] = {}
        for index, digest, data in got.blocks:
            if index not in wanted or manifest.blocks[index] != digest:
                raise ValueError(f"home edge {home!r} returned block {index} of {file_id!r} "
                                 "under a digest the origin's manifest does not list")
            verify_block(digest, data)
            blocks[digest] = data
        if not indices:
            data = assemble(manifest, blocks)
        else:  # the query's blocks, in the order asked (each verified above)
            missing = [i for i in wanted if manifest.blocks[i] not in blocks]
            if missing:
                raise ValueError(f"home edge {home!r} did not return block {missing[0]}")
            data = b"".join(blocks[manifest.blocks[i]] for i in wanted)
        out.phases.append(Phase("fetch", _now() - t, home))
        out.bytes_moved += got.bytes_in + sum(len(b) for _, _, b in got.blocks)
        out.hits_local, out.hits_neighbour = got.hits, got.from_neighbours
        out.from_origin = got.from_origin
        return data
