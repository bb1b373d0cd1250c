"""The node agent's RASP roles on its edge host: Server SA and Cloud CB (no gRPC).

`EndpointCore` keeps the migrations the SMF prepared (source side), the sessions in progress and
the host's allocation (persisted in `agents.node.rasp_store`). It serialises calls with a lock
and changes nothing when a message is refused: state machines commit only after every check has
passed, and a new session object is kept only when its first message was accepted.

Before handing a message to a role the endpoint runs the receiver checks that need no session
(protocol, reflection, recipient, replay cache), so a replay is refused as REPLAY even after a
restart has forgotten the session. It also pins the peers' keys the SMF gave it: step 1 must
be signed by the destination the migration was prepared for, step 4 by the server the cloud
advertised to (BAD_SIGNATURE otherwise); the registry still certifies both at steps 3 and 6.
Sessions in progress are kept in memory only (they hold Ksc): a restart aborts them and the
SMF starts a new attempt.

Diff-first order (agents/smf/migration.py): the SMF runs steps 1-8 before the source stops,
when the pushed image is not known yet; after the push it calls `set_transfer` once for the
server session (same service as prepared, before step 10, bounded fields), and step 9 then
produces M_Trf carrying that digest under Ksc -- the destination still checks its pull against
step 10, exactly as in the paper's order.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from agents.common.store import ReplayCache, Store, dump
from agents.node.rasp_store import Arrival, EndpointStore
from agents.security.crypto import Identity, PublicIdentity
from agents.security.envelope import Envelope, parse_envelope
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import (
    PROTOCOL,
    RaspCloud,
    RaspServer,
    Resources,
    TransferDescriptor,
    free_resources,
)
from agents.security.release import ReleaseOrder, ReleaseReceiver

SA_STEPS = frozenset({1, 3, 7, 9, 11})
CB_STEPS = frozenset({4, 6, 8, 10})
MAX_KEPT_SESSIONS = 1024
#: bounds of a transfer set after the push (`EndpointCore.set_transfer`)
MAX_IMAGE_REF = 512
MAX_IMAGE_BYTES = 1 << 40  # 1 TiB
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REF = re.compile(r"[A-Za-z0-9._:/@-]+")


def _err(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, message)


def check_transfer(transfer: TransferDescriptor) -> None:
    """Refuse (MALFORMED / LIMIT_REACHED) a pushed image's transfer that is not bounded and
    well formed: a reference of at most `MAX_IMAGE_REF` plain characters, a sha256 digest and a
    size in [1, `MAX_IMAGE_BYTES`]."""
    if len(transfer.image_ref) > MAX_IMAGE_REF:
        raise _err(ErrorCode.LIMIT_REACHED, f"image reference longer than {MAX_IMAGE_REF}")
    if not _REF.fullmatch(transfer.image_ref):
        raise _err(ErrorCode.MALFORMED, "image reference is empty or not a plain reference")
    if not _DIGEST.fullmatch(transfer.image_digest):
        raise _err(ErrorCode.MALFORMED, "image digest is not sha256:<64 hex>")
    if not 0 < transfer.size_bytes <= MAX_IMAGE_BYTES:
        raise _err(ErrorCode.LIMIT_REACHED, f"image size outside 1..{MAX_IMAGE_BYTES} bytes")


@dataclass(frozen=True)
class PreparedMigration:
    """Source side: what the SMF told Server SA before the destination advertises."""

    destination: PublicIdentity
    requirement: Resources
    transfer: TransferDescriptor


@dataclass(frozen=True)
class SessionInfo:
    """What the endpoint knows of one session (for GetSessionInfo and the transfer lookup)."""

    role: str  # "server" (SA) or "cloud" (CB)
    expect: int
    peer: str
    transfer: TransferDescriptor | None


class EndpointCore:
    """One edge host's RASP roles."""

    def __init__(
        self,
        identity: Identity,
        *,
        registry: PublicIdentity,
        store: Store,
        maximum: Resources,
        allocated: Resources | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.registry = registry
        self.store = store
        self.maximum = maximum
        self._clock = clock
        self._alloc = EndpointStore(store)
        self.baseline = self._alloc.allocated(allocated or Resources())
        self.arrivals: dict[str, Arrival] = self._alloc.arrivals()
        self.replay = ReplayCache(store, "rasp-endpoint", clock=clock)
        self._release = ReleaseReceiver(identity, replay=self.replay, clock=clock)
        self.prepared: dict[str, PreparedMigration] = {}
        self.servers: OrderedDict[bytes, RaspServer] = OrderedDict()
        self.clouds: OrderedDict[bytes, RaspCloud] = OrderedDict()
        self.pins: dict[bytes, PublicIdentity] = {}
        self.transfer_set: set[bytes] = set()  # server sessions whose transfer was set
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """This host's RASP name (its identity's)."""
        return self.identity.name

    @property
    def public(self) -> PublicIdentity:
        """This host's public identity (name and keys), as the registry knows it."""
        return self.identity.public

    @property
    def allocated(self) -> Resources:
        """ALLOC: the baseline plus every service that arrived by RASP and has not left."""
        total = self.baseline
        for arrival in self.arrivals.values():
            total = total.plus(arrival.allocated)
        return total

    def free(self) -> Resources:
        """Algorithm 1: FREE = MAX - ALLOC."""
        return free_resources(self.maximum, self.allocated)

    def release(self, message: bytes) -> tuple[bool, ReleaseOrder]:
        """Apply the registry's release order (agents/security/release.py); return (freed, order).

        Refused (nothing changes): not signed by the pinned registry, addressed to another
        host, stale or already accepted (REPLAY). An authentic order for an allocation this
        host no longer holds frees nothing (idempotent)."""
        with self._lock:
            env, order = self._release.open(bytes(message), self.registry)
            held = self.arrivals.get(order.service)
            freed = (held is not None and bool(order.arrival_session)
                     and held.session_id == order.arrival_session)
            with self.store.transaction():
                self._release.commit(env)
                if freed:
                    self._alloc.drop_arrival(order.service, order.arrival_session)
            if freed:
                del self.arrivals[order.service]
            return freed, order

    # -- source side ---------------------------------------------------------------------------

    def prepare_source(
        self,
        migration_id: str,
        destination: PublicIdentity,
        requirement: Resources,
        transfer: TransferDescriptor,
    ) -> None:
        """Source side: remember what Server SA asks for and sends before step 1 arrives."""
        if not migration_id:
            raise _err(ErrorCode.MALFORMED, "migration id is empty")
        if destination.name == self.name:
            raise _err(ErrorCode.REFLECTED, "a service cannot migrate to its own host")
        if not requirement.any_positive():
            raise _err(ErrorCode.MALFORMED, "ResSA must ask for some resource")
        with self._lock:
            if migration_id in self.prepared:
                raise _err(ErrorCode.WRONG_SESSION, f"migration {migration_id} already prepared")
            self.prepared[migration_id] = PreparedMigration(destination, requirement, transfer)

    def set_transfer(self, session_id: bytes, transfer: TransferDescriptor) -> None:
        """Source side, diff-first order: the transfer step 10 will carry, once per server
        session. Refused (nothing changes): no such server session (WRONG_SESSION), step 10
        already produced or the transfer already set (WRONG_STEP), another service than the
        one prepared (NOT_AUTHORISED), unbounded or malformed fields (`check_transfer`)."""
        sid = bytes(session_id)
        check_transfer(transfer)
        with self._lock:
            server = self.servers.get(sid)
            if server is None:
                raise _err(ErrorCode.WRONG_SESSION, "no such RASP session at this server")
            if server.state.expect not in (3, 7, 9):
                raise _err(ErrorCode.WRONG_STEP, "step 10 was already produced: the transfer "
                                                 "is fixed")
            if sid in self.transfer_set:
                raise _err(ErrorCode.WRONG_STEP, "the transfer of this session is already set")
            if transfer.service != server.transfer.service:
                raise _err(ErrorCode.NOT_AUTHORISED,
                           f"session migrates {server.transfer.service!r}, not "
                           f"{transfer.service!r}")
            server.transfer = transfer
            self.transfer_set.add(sid)

    # -- destination side ----------------------------------------------------------------------

    def advertise(self, server: PublicIdentity) -> tuple[bytes, bytes]:
        """Step 1 to `server` (pinned for step 4); return (envelope bytes, session id)."""
        if server.name == self.name:
            raise _err(ErrorCode.REFLECTED, "cannot advertise to ourselves")
        with self._lock:
            cloud = RaspCloud(
                self.identity,
                registry=self.registry,
                maximum=self.maximum,
                allocated=self.allocated,
                replay=self.replay,
                clock=self._clock,
            )
            env = cloud.advertise(server.name)
            sid = env.header.session_id
            self.clouds[sid] = cloud
            self.pins[sid] = server
            self._prune()
            return env.to_bytes(), sid

    def report_location(self, session_id: bytes) -> bytes:
        """Step 12 for a session whose transfer was received."""
        with self._lock:
            cloud = self.clouds.get(bytes(session_id))
            if cloud is None:
                raise _err(ErrorCode.WRONG_SESSION, "no such RASP session at this cloud")
            return cloud.report_location().to_bytes()

    # -- both ------------------------------------------------------------------------------------

    def deliver(self, message: bytes, migration_id: str = "") -> tuple[bytes | None, bool, float]:
        """Hand a message to the SA or CB role; return (reply, role finished, seconds)."""
        t0 = time.perf_counter()
        env = parse_envelope(message)
        h = env.header
        with self._lock:
            if h.protocol != PROTOCOL:
                raise _err(ErrorCode.MALFORMED, f"not a {PROTOCOL} message")
            if h.sender == self.name:
                raise _err(ErrorCode.REFLECTED, "message claims to come from this host")
            if h.receiver != self.name:
                raise _err(ErrorCode.WRONG_RECIPIENT, f"message is addressed to {h.receiver!r}")
            if self.replay.seen(env.digest()):
                raise _err(ErrorCode.REPLAY, "message was already accepted")
            if h.step == 1:
                reply, done = self._step1(env, migration_id)
            elif h.step in SA_STEPS:
                server = self.servers.get(h.session_id)
                if server is None:
                    raise _err(ErrorCode.WRONG_SESSION, "no such RASP session at this server")
                out = server.handle(env)
                reply, done = out, server.done
            elif h.step in CB_STEPS:
                reply, done = self._cloud_step(env)
            else:
                raise _err(ErrorCode.WRONG_STEP, f"step {h.step} is not for a cloud endpoint")
        return (None if reply is None else reply.to_bytes()), done, time.perf_counter() - t0

    def _step1(self, env: Envelope, migration_id: str) -> tuple[Envelope | None, bool]:
        h = env.header
        prepared = self.prepared.get(migration_id)
        if prepared is None:
            raise _err(ErrorCode.WRONG_SESSION, "no migration prepared for this advertisement")
        if h.session_id in self.servers:
            raise _err(ErrorCode.WRONG_SESSION, "session id already in use")
        if h.sender != prepared.destination.name:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, "advertisement from another cloud")
        server = RaspServer(
            self.identity,
            registry=self.registry,
            requirement=prepared.requirement,
            transfer=prepared.transfer,
            replay=self.replay,
            clock=self._clock,
        )
        server._screen(env, session_id=None, steps={1: env.header.kind})  # cheap checks first
        prepared.destination.verify(env.signed_bytes(), env.signature)  # pinned key
        reply = server.handle(env)
        del self.prepared[migration_id]
        self.servers[h.session_id] = server
        self._prune()
        return reply, server.done

    def _cloud_step(self, env: Envelope) -> tuple[Envelope | None, bool]:
        h = env.header
        cloud = self.clouds.get(h.session_id)
        if cloud is None:
            raise _err(ErrorCode.WRONG_SESSION, "no such RASP session at this cloud")
        if h.step == 4 and cloud.state.expect == 4:
            pin = self.pins[h.session_id]
            if h.sender != pin.name:
                raise _err(ErrorCode.UNKNOWN_PRINCIPAL, "request from a server we did not invite")
            cloud._screen(env, session_id=cloud.state.session_id, steps={4: env.header.kind})
            pin.verify(env.signed_bytes(), env.signature)
        before = cloud.state.expect
        reply = cloud.handle(env)
        s = cloud.state
        if before == 10 and s.expect == 12 and s.res_sa is not None and s.transfer is not None:
            # a service runs on a host at most once: a new arrival replaces an earlier one
            # (e.g. an attempt aborted after step 10 and retried to this host)
            arrival = Arrival(s.transfer.service, bytes(h.session_id), s.server_name or "",
                              s.res_sa)
            self._alloc.put_arrival(arrival, self._clock())
            self.arrivals[arrival.service] = arrival
        return reply, cloud.state.expect == 12

    def session_info(self, session_id: bytes) -> SessionInfo:
        """Role, next expected step, peer and transfer of a session in progress here."""
        sid = bytes(session_id)
        with self._lock:
            server = self.servers.get(sid)
            if server is not None:
                peer = server.state.cloud.name if server.state.cloud else ""
                return SessionInfo("server", server.state.expect, peer, None)
            cloud = self.clouds.get(sid)
            if cloud is not None:
                s = cloud.state
                return SessionInfo("cloud", s.expect, s.server_name or "", s.transfer)
        raise _err(ErrorCode.WRONG_SESSION, "no such RASP session at this endpoint")

    def _prune(self) -> None:
        for sessions in (self.servers, self.clouds):
            while len(sessions) > MAX_KEPT_SESSIONS:
                sid, _ = sessions.popitem(last=False)
                self.pins.pop(sid, None)
                self.transfer_set.discard(sid)

    def snapshot(self) -> object:
        """Everything the endpoint holds (memory and disk), for before/after comparisons."""
        with self._lock:
            return (
                sorted(self.prepared.items()),
                sorted((k, v.snapshot(), v.transfer) for k, v in self.servers.items()),
                sorted((k, repr(v.snapshot())) for k, v in self.clouds.items()),
                sorted(self.transfer_set),
                self.allocated,
                dump(self.store),
            )
