"""The SMF's logic: SSP's SMF role, the SMF commands and the location record (no gRPC).

Calls to other parties go through ports given by the caller (the servicer passes functions
that make the gRPC calls), so this module stays transport-free and testable with fakes.

Capabilities: the SMF is the CA for USER, DEVICE and SERVICE capabilities (sealed scheme: the
paper's 128 bits plus a keyed HMAC tag). The tag key is generated at first start into the data
directory (0600); revocations persist in SQLite. USER CAP and DEV CAP are bound to the key of
the application they were issued for (SSP step 3 checks possession), the DEV CAP names its owner,
and both expire after `capability_ttl_s` (SMF clock). Revoking or reissuing one remembers its id
until it would have expired anyway, in a table of at most `max_revocations` entries.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import cast

from agents.common.store import (
    ReplayCache,
    SessionBound,
    SqliteRevocationStore,
    Store,
    TableFull,
    dump,
)
from agents.security.advertisement import AdvertTable, Placement, choose_cloud, from_rasp
from agents.security.capability import (
    CapType,
    ObjectId,
    SealedCapability,
    SealedCapabilityAuthority,
    decode_capability,
    require_owner,
)
from agents.security.crypto import Identity, PublicIdentity
from agents.security.envelope import parse_envelope
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources
from agents.security.ssp import DEFAULT_MASTER_TTL_S, ServiceRecord, SspSmf
from agents.smf.domain import (
    AlreadyExists,
    DeviceEntry,
    InvalidRequest,
    Location,
    MigrationInProgress,
    NotFound,
    ServerEntry,
    ServiceEntry,
    TooMany,
    UserEntry,
)
from agents.smf.store import SmfStore

MAX_RANK = 0xFFF
DEFAULT_MAX_REVOCATIONS = 100_000

#: server_port(server, step-4 envelope bytes) -> step-5 envelope bytes
ServerPort = Callable[[ServerEntry, bytes], bytes]


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


class SmfCore:
    """Service Management Framework state and commands."""

    def __init__(self, identity: Identity, store: Store, secret: bytes, *,
                 clock: Callable[[], float] = time.time, session_capacity: int = 10_000,
                 session_ttl_s: float = 3600.0,
                 capability_ttl_s: float = DEFAULT_MASTER_TTL_S,
                 max_revocations: int = DEFAULT_MAX_REVOCATIONS,
                 advert_window_s: float = 30.0, advert_ttl_s: float = 90.0) -> None:
        if capability_ttl_s <= 0 or max_revocations <= 0:
            raise ValueError("capability lifetime and revocation bound must be positive")
        self.identity = identity
        self.capability_ttl_s = capability_ttl_s
        self.max_revocations = max_revocations
        self.store = store
        self.db = SmfStore(store)
        self.revocations = SqliteRevocationStore(store, "smf-capabilities")
        self.authority = SealedCapabilityAuthority(
            identity.name, secret, store=self.revocations,
            master_types=[CapType.USER, CapType.DEVICE, CapType.SERVICE, CapType.SERVER],
            clock=clock,
        )
        self.replay = ReplayCache(store, "ssp-smf", clock=clock)
        self.ssp = SspSmf(identity, authority=self.authority, cms=self.db.cms(),
                          replay=self.replay, clock=clock)
        self._lock = threading.RLock()
        #: SSP sessions (CMS registrations and application sessions) are bounded and expire
        self.session_bound = SessionBound(capacity=session_capacity, ttl_s=session_ttl_s,
                                          clock=clock)
        self._migrating: set[str] = set()
        #: the edges' signed advertisements (seed 000 Algorithm 1), keys pinned by Add Server
        self.adverts = AdvertTable(self.server_public, window_s=advert_window_s,
                                   ttl_s=advert_ttl_s, clock=clock)
        #: service -> Algorithm 2's last choice for it (read by Migrate Service's record)
        self.placements: dict[str, Placement] = {}
        for service in self.db.services():
            self._publish(service)

    @property
    def public(self) -> PublicIdentity:
        """The SMF's public identity (the issuer of its capabilities)."""
        return self.identity.public

    def _publish(self, service: ServiceEntry) -> None:
        """Mirror a service into the SSP role, the current location's server first (SSP's
        choose_server takes the first server)."""
        loc = self.db.location(service.global_id)
        servers = sorted(service.servers, key=lambda s: 0 if loc and s.name == loc.server else 1)
        self.ssp.services[(service.name, service.version)] = ServiceRecord(
            service.name, service.version, service.global_id, service.capability,
            tuple(s.ssp_info() for s in servers),
        )

    def _make_room(self, session_id: bytes) -> None:
        """Before a message that may open an SSP session: expire old sessions; LIMIT_REACHED
        when the SMF holds its limit of live ones."""
        if session_id in self.ssp.sessions:
            return
        try:
            self.session_bound.make_room(self.ssp.sessions, self.ssp._cms_sessions)
        except TableFull as err:
            raise ProtocolError(ErrorCode.LIMIT_REACHED, str(err)) from None

    # -- registrations ---------------------------------------------------------------------------

    def register_cms(self, public: PublicIdentity) -> None:
        """Register (or replace) a CMS's public identity."""
        with self._lock:
            self.db.put_cms(public)
            self.ssp.cms[public.name] = public

    def register_service(self, message: bytes, *, description: str = "", local_id: str = "",
                         port: int = 0, transport: str = "tcp",
                         requirement: Resources | None = None,
                         image_ref: str = "") -> tuple[bytes, ServiceEntry]:
        """Register Service = SSP steps 1-2; return (step 2 bytes, the new service)."""
        if transport not in ("tcp", "udp"):
            raise InvalidRequest("transport must be tcp or udp")
        if not 0 <= port <= 65535:
            raise InvalidRequest("port must be 0..65535")
        env = parse_envelope(message)
        with self._lock:
            self._make_room(env.header.session_id)
            before = dict(self.ssp.services)
            reply = self.ssp.handle(env)
            assert reply is not None
            added = [k for k, v in self.ssp.services.items() if before.get(k) is not v]
            record = self.ssp.services[added[0]]
            if added[0] in before:  # same name and version registered already: undo
                self.ssp.services[added[0]] = before[added[0]]
                raise AlreadyExists(f"service {record.name} {record.version} is registered")
            service = ServiceEntry(
                global_id=record.serv_id, name=record.name, version=record.version,
                local_id=local_id or _new_id("local"), description=description, port=port,
                transport=transport, requirement=requirement or Resources(),
                image_ref=image_ref, capability=record.serv_cap,
                servers=tuple(
                    ServerEntry(s.public.name, "", s.public, s.ip, s.port, 0)
                    for s in record.servers
                ),
            )
            self.db.add_service(service)
            return reply.to_bytes(), service

    def register_user(self, first_name: str, surname: str, *, holder: PublicIdentity,
                      role: str = "", rank: int = 0, specialisation: str = "") -> UserEntry:
        """Register User: a new user with its USER CAP, bound to the application key `holder`
        (InvalidRequest on bad fields)."""
        if not first_name or not surname:
            raise InvalidRequest("a user needs a first name and a surname")
        if not 0 <= rank <= MAX_RANK:
            raise InvalidRequest(f"rank must be 0..{MAX_RANK}")
        with self._lock:
            gid = _new_id("u")
            cap = self.ssp.register_user(gid, rank, holder=holder, ttl_s=self.capability_ttl_s)
            user = UserEntry(gid, first_name, surname, role, rank, specialisation, cap)
            self.db.add_user(user)
            return user

    def register_device(self, name: str, owner_first_name: str, owner_surname: str, *,
                        holder: PublicIdentity, local_id: str = "",
                        owner_user_id: str = "") -> DeviceEntry:
        """Register Device: a new device of its owner (a registered user: `owner_user_id`, or
        the one user of that name) with its DEV CAP, which names the owner and is bound to the
        application key `holder`."""
        if not name:
            raise InvalidRequest("a device needs a name")
        with self._lock:
            if local_id and any(d.local_id == local_id for d in self.db.devices()):
                raise AlreadyExists(f"local device id {local_id} is taken")
            owner = self._owner(owner_first_name, owner_surname, owner_user_id)
            gid = _new_id("d")
            cap = self.ssp.register_device(gid, owner.global_id, holder=holder,
                                           ttl_s=self.capability_ttl_s)
            device = DeviceEntry(gid, local_id or _new_id("ld"), name, owner_first_name,
                                 owner_surname, cap)
            self.db.add_device(device)
            return device

    def add_server(self, service_id: str, server: ServerEntry) -> ServiceEntry:
        """Add Server; return the updated service (its SERV CAP goes to the new server)."""
        if not server.ipv4 or not 0 < server.port <= 65535:
            raise InvalidRequest("a server needs an IPv4 address and a port")
        with self._lock:
            service = self.service(service_id)
            if service.server(server.name) is not None:
                raise AlreadyExists(f"{server.name} already serves {service_id}")
            self.db.add_server(service_id, server)
            updated = self.service(service_id)
            self._publish(updated)
            return updated

    def _owner(self, first_name: str, surname: str, user_id: str) -> UserEntry:
        if user_id:
            user = self.user(user_id)
            if (user.first_name, user.surname) != (first_name, surname):
                raise InvalidRequest(f"user {user_id} is not {first_name} {surname}")
            return user
        named = [u for u in self.db.users() if (u.first_name, u.surname) == (first_name, surname)]
        if not named:
            raise NotFound(f"no user {first_name} {surname} to own the device")
        if len(named) > 1:
            raise InvalidRequest(f"several users are named {first_name} {surname}: "
                                 "give the owner's user id")
        return named[0]

    def _revoke(self, cap: SealedCapability) -> None:
        """Remember `cap` as revoked until it expires; TooMany when the bounded table is full
        of revocations that have not expired yet."""
        if self.authority.is_revoked(cap):
            return
        if len(self.revocations) >= self.max_revocations:
            self.authority.purge()
            if len(self.revocations) >= self.max_revocations:
                raise TooMany(f"{self.max_revocations} revoked capabilities have not expired")
        self.authority.revoke(cap)

    def _reissued(self, old: SealedCapability, holder: PublicIdentity | None
                  ) -> SealedCapability:
        """A new master of the same object (new random, new expiry; same owner), bound to
        `holder` (None: the same key as before); the old one is revoked."""
        c = old.cap
        key = holder.fingerprint() if holder is not None else old.holder_key
        owner = None if old.owner is None else ObjectId(int.from_bytes(old.owner[:8], "big"),
                                                        old.owner[8])
        self._revoke(old)
        return self.authority.issue_master(c.cap_type, c.object_id, c.prop,
                                           ttl_s=self.capability_ttl_s, holder_key=key,
                                           owner=owner)

    def reissue_user_capability(self, user_id: str, holder: PublicIdentity | None = None
                                ) -> UserEntry:
        """A new USER CAP (new random field and expiry, bound to `holder` or to the same key);
        the old one is refused from now on (REVOKED)."""
        with self._lock:
            user = self.user(user_id)
            cap = self._reissued(user.capability, holder)
            self.db.set_user_capability(user_id, cap)
            return replace(user, capability=cap)

    def reissue_device_capability(self, device_id: str, holder: PublicIdentity | None = None
                                  ) -> DeviceEntry:
        """As for users: a new DEV CAP (same owner); the old one is refused (REVOKED)."""
        with self._lock:
            device = self.device(device_id)
            cap = self._reissued(device.capability, holder)
            self.db.set_device_capability(device_id, cap)
            return replace(device, capability=cap)

    def revoke_user_capability(self, user_id: str) -> UserEntry:
        """Revoke the user's USER CAP (REVOKED from now on, until reissued)."""
        with self._lock:
            user = self.user(user_id)
            self._revoke(user.capability)
            return user

    def revoke_device_capability(self, device_id: str) -> DeviceEntry:
        """Revoke the device's DEV CAP (REVOKED from now on, until reissued)."""
        with self._lock:
            device = self.device(device_id)
            self._revoke(device.capability)
            return device

    # -- lookups -----------------------------------------------------------------------------------

    def service(self, service_id: str) -> ServiceEntry:
        """The service `service_id` (NotFound when there is none)."""
        service = self.db.service(service_id)
        if service is None:
            raise NotFound(f"no service {service_id!r}")
        return service

    def user(self, user_id: str) -> UserEntry:
        """The user `user_id` (NotFound when there is none)."""
        user = self.db.user(user_id)
        if user is None:
            raise NotFound(f"no user {user_id!r}")
        return user

    def device(self, device_id: str) -> DeviceEntry:
        """The device `device_id` (NotFound when there is none)."""
        device = self.db.device(device_id)
        if device is None:
            raise NotFound(f"no device {device_id!r}")
        return device

    def location(self, service_id: str) -> Location:
        """Where the service runs now and its epoch (NotFound when unknown)."""
        loc = self.db.location(service_id)
        if loc is None:
            raise NotFound(f"no location for {service_id!r}")
        return loc

    # -- Request Service (SSP steps 3-6) -----------------------------------------------------------

    def request_service(self, message: bytes, server_port: ServerPort
                        ) -> tuple[bytes, ServerEntry, dict[str, float]]:
        """Step 3 in; steps 4-5 with the chosen server through `server_port`; step 6 out."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        env = parse_envelope(message)
        with self._lock:
            self._make_room(env.header.session_id)
            m4 = self.ssp.handle(env)
            assert m4 is not None
            session = self.ssp.sessions[env.header.session_id]
        service = self.service(session.service.serv_id)
        server = service.server(m4.header.receiver)
        if server is None:
            raise NotFound(f"server {m4.header.receiver!r} is no longer registered")
        timings["smf_step3"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        m5 = server_port(server, m4.to_bytes())
        timings["server_steps4_5"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        with self._lock:
            m6 = self.ssp.handle(parse_envelope(m5))
        assert m6 is not None
        timings["smf_step5"] = time.perf_counter() - t2
        return m6.to_bytes(), server, timings

    # -- advertisements and Algorithm 2 ------------------------------------------------------------

    def server_public(self, name: str) -> PublicIdentity | None:
        """The public identity a server was added with (Add Server), by its name."""
        for service in self.db.services():
            entry = service.server(name)
            if entry is not None:
                return entry.public
        return None

    def place(self, service: ServiceEntry, source: str) -> Placement:
        """Algorithm 2: among the service's other servers that advertised recently, one whose
        FREE fits the service's requirement (`choose_cloud`; INSUFFICIENT_RESOURCES if none)."""
        names = {s.name for s in service.servers} - {source}
        adverts = [a for a, _age in self.adverts.fresh() if a.cloud in names]
        placed = choose_cloud(from_rasp(service.requirement), adverts)
        if placed.chosen is None:
            raise ProtocolError(ErrorCode.INSUFFICIENT_RESOURCES,
                                f"{service.global_id}: {placed.reason()}")
        return placed

    # -- Migrate Service: authorisation and the location record ------------------------------------

    def authorise_caller(self, service_id: str, user_id: str, device_id: str,
                         user_cap: bytes, device_cap: bytes
                         ) -> tuple[ServiceEntry, UserEntry, DeviceEntry]:
        """Check the caller's USER CAP and DEV CAP for ``service_id``; change nothing."""
        user_c = decode_capability(user_cap, "USER CAP")
        dev_c = decode_capability(device_cap, "DEV CAP")
        user = self.db.user(user_id)
        device = self.db.device(device_id)
        if user is None or device is None:
            raise ProtocolError(ErrorCode.UNKNOWN_PRINCIPAL, "unknown user or device")
        u = self.authority.verify(user_c)
        d = self.authority.verify(dev_c)
        if u.cap_type != CapType.USER or u.object_id != ObjectId.from_name(user_id):
            raise ProtocolError(ErrorCode.NOT_AUTHORISED, "USER CAP is not this user's")
        if d.cap_type != CapType.DEVICE or d.object_id != ObjectId.from_name(device_id):
            raise ProtocolError(ErrorCode.NOT_AUTHORISED, "DEV CAP is not this device's")
        require_owner(dev_c, u)
        if (device.owner_first_name, device.owner_surname) != (user.first_name, user.surname):
            raise ProtocolError(ErrorCode.NOT_AUTHORISED, "the device belongs to another user")
        service = self.db.service(service_id)
        if service is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SERVICE, f"no service {service_id!r}")
        return service, user, device

    def authorise_migration(self, service_id: str, user_id: str, device_id: str,
                            user_cap: bytes, device_cap: bytes, destination: str
                            ) -> tuple[ServiceEntry, UserEntry, DeviceEntry, ServerEntry,
                                       ServerEntry, Location]:
        """Check the caller's USER CAP and DEV CAP and the request; change nothing. An empty
        ``destination`` is chosen by `place` (Algorithm 2)."""
        service, user, device = self.authorise_caller(service_id, user_id, device_id,
                                                      user_cap, device_cap)
        if not destination:
            placed = self.place(service, self.location(service_id).server)
            with self._lock:
                self.placements[service.global_id] = placed
            destination = str(placed.chosen)
        dest = service.server(destination)
        if dest is None:
            raise ProtocolError(ErrorCode.UNKNOWN_PRINCIPAL,
                                f"{destination!r} is not a server of {service_id}")
        loc = self.location(service_id)
        if loc.server == destination:
            raise AlreadyExists(f"{service_id} already runs on {destination}")
        source = service.server(loc.server)
        if source is None:
            raise NotFound(f"current server {loc.server!r} is not registered")
        return service, user, device, source, dest, loc

    @contextmanager
    def migration_slot(self, service_id: str) -> Iterator[None]:
        """One migration per service at a time (the epoch fences the rest)."""
        with self._lock:
            if service_id in self._migrating:
                raise MigrationInProgress(f"{service_id} is being migrated already")
            self._migrating.add(service_id)
        try:
            yield
        finally:
            with self._lock:
                self._migrating.discard(service_id)

    def commit_location(self, service_id: str, expected_epoch: int, server: str) -> Location:
        """Move the location record forward (StaleEpoch when another update came first)."""
        with self._lock:
            loc = self.db.commit_location(service_id, expected_epoch, server)
            self._publish(self.service(service_id))
            return loc

    def snapshot(self) -> object:
        """Everything the SMF holds (memory and disk), for before/after comparisons."""
        with self._lock:
            return (sorted(self.ssp.services.items()), sorted(self.ssp.sessions.items()),
                    sorted(cast(frozenset[bytes], self.ssp.snapshot()[2])), dump(self.store))
