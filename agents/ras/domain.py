"""The RAS agent's logic around the RASP Registry state machine (no gRPC).

`RegistryCore`: the Registry role (agents.security.rasp.RaspRegistry) with the RAS table and
its sessions persisted in SQLite after every accepted message, a persistent replay cache, and
the registration of clouds (MAX/ALLOC, public keys) and servers. It serialises calls with a
lock and changes nothing when a message is refused: the state machine commits only after every
check has passed. (The edge hosts' Server SA / Cloud CB roles are the node agent's:
`agents.node.rasp_core`.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from agents.common.store import ReplayCache, Store, dump
from agents.ras.store import (
    DEFAULT_SESSION_CAPACITY,
    DEFAULT_SESSION_TTL_S,
    RasStore,
    RegistryTable,
)
from agents.security.crypto import Identity, PublicIdentity
from agents.security.envelope import Envelope, parse_envelope
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import RaspRegistry, Resources
from agents.security.release import ReleaseIssuer, ReleaseOrder


def _err(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, message)


# --- Registry -------------------------------------------------------------------------------


class RegistryCore:
    """The RAS: RAS table, registrations and the Registry role of RASP."""

    def __init__(
        self, identity: Identity, store: Store, *, clock: Callable[[], float] = time.time,
        session_capacity: int = DEFAULT_SESSION_CAPACITY,
        session_ttl_s: float = DEFAULT_SESSION_TTL_S,
    ) -> None:
        self.identity = identity
        self.store = store
        self._ras = RasStore(store, session_capacity=session_capacity,
                             session_ttl_s=session_ttl_s, clock=clock)
        table, sessions = self._ras.load()
        self.replay = ReplayCache(store, "rasp-registry", clock=clock)
        self.registry = RaspRegistry(identity, table=table, replay=self.replay, clock=clock)
        self.registry.sessions.update(sessions)
        self._table = table
        self.issuer = ReleaseIssuer(identity, replay=self.replay, clock=clock)
        self._lock = threading.Lock()

    @property
    def public(self) -> PublicIdentity:
        """The registry's public identity (name and keys), which clouds and servers pin."""
        return self.identity.public

    @property
    def table(self) -> RegistryTable:
        """The live RAS table: registered clouds and servers and their allocations."""
        return self._table

    def register_cloud(
        self, public: PublicIdentity, maximum: Resources, allocated: Resources | None = None
    ) -> Resources:
        """Register (or re-key) an advertising cloud; return its FREE."""
        if public.name == self.identity.name:
            raise _err(ErrorCode.REFLECTED, "a cloud cannot use the registry's own name")
        with self._lock:
            self.table.register_cloud(public, maximum, allocated)
            self._ras.save(self.table)
            return self.table.free_of(public.name)

    def register_server(self, public: PublicIdentity) -> None:
        """Register (or re-key) a server and persist the table; a server may not take the registry's
        own name (`REFLECTED`)."""
        if public.name == self.identity.name:
            raise _err(ErrorCode.REFLECTED, "a server cannot use the registry's own name")
        with self._lock:
            self.table.register_server(public)
            self._ras.save(self.table)

    def deliver(self, message: bytes) -> tuple[bytes | None, float]:
        """Handle step 2, 5 or 12; return the reply and seconds spent. The reply to step 2 is
        step 3, to step 5 step 6; to step 12 the release order for the host the service left
        (agents/security/release.py), or None when the registry holds no allocation of it there."""
        t0 = time.perf_counter()
        env = parse_envelope(message)
        sid = env.header.session_id
        with self._lock:
            if env.header.step == 2 and sid not in self.registry.sessions:
                self._make_room()
            elif sid in self.registry.sessions and self._ras.sessions.get(sid) is None:
                del self.registry.sessions[sid]  # expired: later steps find no session
            self.table.last_move = None
            reply = self.registry.handle(env)
            move = self.table.last_move
            if env.header.step == 12:
                reply = self._moved(sid)
            with self.store.transaction():  # the session's row (+ the moved service's rows)
                self._ras.save_session(sid, self.registry.sessions[sid])
                if move is not None:
                    self._ras.save_move(self.table, move[0])
        return (None if reply is None else reply.to_bytes()), time.perf_counter() - t0

    def _make_room(self) -> None:
        """Before a new session: forget expired ones; LIMIT_REACHED if the table is full."""
        for key in self._ras.sessions.expire():
            self.registry.sessions.pop(key, None)
        if len(self.registry.sessions) >= self._ras.sessions.capacity:
            raise _err(ErrorCode.LIMIT_REACHED,
                       f"the registry holds {len(self.registry.sessions)} RASP sessions, its "
                       "limit; retry when old ones expire")

    def _moved(self, session_id: bytes) -> Envelope | None:
        """After step 12: tag the service's new allocation with its session; order the host
        it left to free the allocation the registry just took back from that host's row."""
        move = self.table.last_move
        self.table.last_move = None
        if move is None:
            return None
        service, old, new = move
        self.table.services[service] = replace(new, session_id=bytes(session_id))
        ticket = self.registry.last_ticket
        if old is None or old.cloud != new.server or ticket is None:
            return None
        return self.issuer.issue(ReleaseOrder(
            service=service, host=new.server, arrival_session=old.session_id,
            departure_session=bytes(session_id), destination=new.cloud,
            resources=old.allocated, ticket=ticket))

    def snapshot(self) -> object:
        """Everything the registry holds (memory and disk), for before/after comparisons."""
        with self._lock:
            sessions, table = self.registry.snapshot()
            return (sorted(sessions.items()), repr(table), dump(self.store))


