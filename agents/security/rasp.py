"""RASP — Resource Allocation Secure Protocol (seed 000, sections 3-4, Figure 4), transport-free.

Roles: `RaspServer` (Server SA on cloud CA, migrating a service away), `RaspCloud` (advertising
Cloud CB, receiving it), `RaspRegistry` (the RAS / Registry R holding the RAS table). Each role is
a state machine: `handle(message) -> next message | None`. Messages are `Envelope`s
(agents.security.envelope) whose canonical bytes go into a protobuf `bytes` field.

The twelve steps, as built (paper notation left, ours right):

  Stage 1  1. CB -> SA  Advc(CB, ResCB)              SIGNED by CB; CB's key inside (self-asserted)
  Stage 2  2. SA -> R   (SA, CB, ResCB)pkR           SEALED to R, signed by SA; carries step 1
           3. R  -> SA  sign((CB, pkC, ResCB))       SIGNED by R (Algorithm 3 passed)
           4. SA -> CB  aenc((Ns, SA, ResSA), pkC)   SEALED to the certified pkC, signed by SA
           5. CB -> R   (CB, SA, ResSA)pkR           SEALED to R, signed by CB
           6. R  -> CB  sign((SA, pkS, ResSA))       SIGNED by R (Algorithm 4 passed)
           7. CB -> SA  aenc((Ns, Nc, CB), pkS)      SEALED to the certified pkS, signed by CB
  Stage 3  8. SA -> CB  aenc((Nc, Ksc), pkC)         SEALED, signed by SA
           9. CB -> SA  enc((M_Req, SA), Ksc)        SESSION (AES-256-GCM)
          10. SA -> CB  enc((M_Trf, ResSA), Ksc)     SESSION
          11. CB -> SA  enc((M_Ack), Ksc)            SESSION
  Stage 4 12. SB -> R   aenc((SB, CB), pkR)          SEALED to R, signed by CB

Interpretations of ambiguous points (the spec asks for these to be written down):
- "sign(..., pkS)" in steps 3/6 is read as "signed with skR, addressed to S"; the certificate also
  names its addressee and the session id (header), so it cannot be shown to somebody else.
- Steps 2, 5, 8, 12 are only encrypted in the paper; every message here is also signed by its
  sender, and step 1 (clear text in the paper, "Advc not encrypted" in Table 3) is signed too.
- SA learns pkC only at step 3 and CB learns pkS only at step 6, so steps 1 and 4 carry the
  sender's public identity; it is trusted only once the registry has certified it (SA compares at
  step 3, CB at step 6, KEY_MISMATCH otherwise). The registry also checks step 1's signature
  against the key in its RAS table, because SA forwards the advertisement in step 2.
- Algorithm 3 (step 2 carries no ResSA): CB is registered, the advertised ResCB is non-zero and
  does not exceed the registry's own FREE(CB). Algorithm 4: SA is registered, ResSA is non-zero
  and fits in FREE(CB). "Fits" means <= on every resource (Algorithm 2's "> 0" would refuse an
  exact fit; the spec says "fits"). Failures raise ProtocolError (UNKNOWN_PRINCIPAL /
  INSUFFICIENT_RESOURCES) which the servicer returns as the RPC's error, instead of a signed
  "invalid cloud" reply.
- The session id is chosen by CB when it advertises (step 1); one `RaspServer`/`RaspCloud`
  object per session, one long-lived `RaspRegistry` for all sessions.
- The traffic key for steps 9-11 is HKDF(Ksc, salt = Ns || Nc, info = label || session id), so
  both parties' nonces contribute to it.
- Step 12 is sent by CB on behalf of the migrated service SB (SB has no key of its own); the
  registry then records the allocation (Table 1 cell SA x CB) and the service's new location.
  Step 10 carries SA's signed transfer ticket, which step 12 forwards: the registry accepts
  step 12 only for the service SA transferred in this session (agents/security/transfer_ticket.py).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

from agents.security import encoding
from agents.security.crypto import (
    Identity,
    PublicIdentity,
    SessionCipher,
    constant_time_equal,
    derive_key,
    new_nonce,
    new_session_id,
    new_symmetric_key,
)
from agents.security.envelope import Endpoint, Envelope, Kind, StepTimer
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.stores import ReplayCache
from agents.security.transfer_ticket import TransferTicket, check_ticket, issue_ticket

PROTOCOL = "rasp/1"
_KSC_INFO = b"edgeferry/rasp/ksc/v1"


def _err(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, message)


# --- resources and the Resource Allocation Algorithm (Algorithms 1-4) ----------------------


@dataclass(frozen=True)
class Resources:
    """CPU (millicores), memory (MiB), storage (MiB), network (Mbit/s); all >= 0."""

    WIRE_NAME = "Resources"

    cpu: int = 0
    memory: int = 0
    storage: int = 0
    network: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"resource {f.name} must be a non-negative integer")

    def values(self) -> tuple[int, int, int, int]:
        return (self.cpu, self.memory, self.storage, self.network)

    def plus(self, other: Resources) -> Resources:
        return Resources(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def fits_in(self, other: Resources) -> bool:
        """Every resource of self <= the same resource of other."""
        return all(a <= b for a, b in zip(self.values(), other.values(), strict=True))

    def any_positive(self) -> bool:
        return any(v > 0 for v in self.values())


def free_resources(maximum: Resources, allocated: Resources) -> Resources:
    """Algorithm 1, lines 2-4: FREE = MAX - ALLOC per resource (never below zero)."""
    return Resources(
        *(max(m - a, 0) for m, a in zip(maximum.values(), allocated.values(), strict=True))
    )


def should_advertise(free: Resources) -> bool:
    """Algorithm 1, lines 6-10: advertise when any free resource is > 0, else wait."""
    return free.any_positive()


def server_accepts(free: Resources, requested: Resources) -> bool:
    """Algorithm 2: a non-zero request that fits in the advertised FREE on every resource."""
    return requested.any_positive() and requested.fits_in(free)


@dataclass
class CloudEntry:
    public: PublicIdentity
    maximum: Resources
    allocated: Resources = field(default_factory=Resources)


@dataclass
class RasTable:
    """Table 1: registered advertising clouds and receiving servers, their public keys and
    resources, the allocation of each (server, cloud) cell, and where each service now runs."""

    clouds: dict[str, CloudEntry] = field(default_factory=dict)
    servers: dict[str, PublicIdentity] = field(default_factory=dict)
    allocations: dict[tuple[str, str], Resources] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)

    def register_cloud(
        self, public: PublicIdentity, maximum: Resources, allocated: Resources | None = None
    ) -> None:
        self.clouds[public.name] = CloudEntry(public, maximum, allocated or Resources())

    def register_server(self, public: PublicIdentity) -> None:
        self.servers[public.name] = public

    def free_of(self, cloud: str) -> Resources:
        entry = self.clouds[cloud]
        return free_resources(entry.maximum, entry.allocated)

    def check_cloud(self, cloud: str, advertised: Resources) -> CloudEntry:
        """Algorithm 3 (RAS_CB): a valid cloud whose advertised resources are real."""
        entry = self.clouds.get(cloud)
        if entry is None:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"{cloud!r} is not a registered cloud")
        if not advertised.any_positive() or not advertised.fits_in(self.free_of(cloud)):
            raise _err(
                ErrorCode.INSUFFICIENT_RESOURCES,
                f"{cloud!r} advertises resources the registry does not know it has",
            )
        return entry

    def check_server(self, server: str, cloud: str, requested: Resources) -> PublicIdentity:
        """Algorithm 4 (RAS_SA): a valid server whose non-zero request fits FREE(cloud)."""
        public = self.servers.get(server)
        if public is None:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"{server!r} is not a registered server")
        if cloud not in self.clouds:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"{cloud!r} is not a registered cloud")
        if not requested.any_positive() or not requested.fits_in(self.free_of(cloud)):
            raise _err(
                ErrorCode.INSUFFICIENT_RESOURCES, f"request of {server!r} does not fit {cloud!r}"
            )
        return public

    def record_migration(self, server: str, cloud: str, used: Resources, service: str) -> None:
        entry = self.clouds[cloud]
        entry.allocated = entry.allocated.plus(used)
        cell = self.allocations.get((server, cloud), Resources())
        self.allocations[(server, cloud)] = cell.plus(used)
        self.locations[service] = cloud


# --- payloads (one per step) ------------------------------------------------------------------


@dataclass(frozen=True)
class TransferDescriptor:
    """What M_Trf moves: the service and the image the destination pulls."""

    WIRE_NAME = "rasp.TransferDescriptor"
    service: str
    image_ref: str
    image_digest: str
    size_bytes: int


@dataclass(frozen=True)
class Advert:  # step 1
    WIRE_NAME = "rasp.Advert"
    cloud: PublicIdentity
    free: Resources


@dataclass(frozen=True)
class CloudCheckRequest:  # step 2
    WIRE_NAME = "rasp.CloudCheckRequest"
    server: str
    cloud: str
    res_cb: Resources
    advert: bytes  # the step-1 envelope as received


@dataclass(frozen=True)
class CloudCertificate:  # step 3
    WIRE_NAME = "rasp.CloudCertificate"
    cloud: PublicIdentity
    res_cb: Resources
    server: str


@dataclass(frozen=True)
class MigrationRequest:  # step 4
    WIRE_NAME = "rasp.MigrationRequest"
    ns: bytes
    server: PublicIdentity
    res_sa: Resources


@dataclass(frozen=True)
class ServerCheckRequest:  # step 5
    WIRE_NAME = "rasp.ServerCheckRequest"
    cloud: str
    server: PublicIdentity
    res_sa: Resources


@dataclass(frozen=True)
class ServerCertificate:  # step 6
    WIRE_NAME = "rasp.ServerCertificate"
    server: PublicIdentity
    res_sa: Resources
    cloud: str


@dataclass(frozen=True)
class MigrationResponse:  # step 7
    WIRE_NAME = "rasp.MigrationResponse"
    ns: bytes
    nc: bytes
    cloud: str


@dataclass(frozen=True)
class SessionKeyTransfer:  # step 8
    WIRE_NAME = "rasp.SessionKeyTransfer"
    nc: bytes
    ksc: bytes


@dataclass(frozen=True)
class MigrationInit:  # step 9 (M_Req)
    WIRE_NAME = "rasp.MigrationInit"
    server: str


@dataclass(frozen=True)
class MigrationTransfer:  # step 10 (M_Trf)
    WIRE_NAME = "rasp.MigrationTransfer"
    transfer: TransferDescriptor
    res_sa: Resources
    ticket: TransferTicket  # SA's signature over (session, SA, CB, service)


@dataclass(frozen=True)
class MigrationAck:  # step 11 (M_Ack)
    WIRE_NAME = "rasp.MigrationAck"
    service: str
    image_digest: str


@dataclass(frozen=True)
class LocationUpdate:  # step 12
    WIRE_NAME = "rasp.LocationUpdate"
    service: str
    cloud: str
    server: str
    ticket: TransferTicket  # step 10's, forwarded: the service SA transferred


def _traffic_cipher(ksc: bytes, ns: bytes, nc: bytes, session_id: bytes) -> SessionCipher:
    return SessionCipher(derive_key(ksc, salt=ns + nc, info=_KSC_INFO + session_id))


def _same(a: bytes, b: bytes) -> bool:
    return constant_time_equal(a, b)


# --- Server SA ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerState:
    expect: int = 1  # next step this party accepts; 0 = finished
    session_id: bytes | None = None
    cloud: PublicIdentity | None = None  # self-asserted at step 1, certified at step 3
    res_cb: Resources | None = None
    certified: bool = False
    ns: bytes | None = None
    ksc: bytes | None = None
    nc: bytes | None = None


class RaspServer(Endpoint):
    """Server SA: accepts an advertisement (Algorithm 2) and migrates `transfer` to the cloud."""

    PROTOCOL = PROTOCOL

    def __init__(
        self,
        identity: Identity,
        *,
        registry: PublicIdentity,
        requirement: Resources,
        transfer: TransferDescriptor,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(identity, replay=replay, clock=clock)
        self.registry = registry
        self.requirement = requirement
        self.transfer = transfer
        self.state = ServerState()

    def snapshot(self) -> ServerState:
        return self.state

    @property
    def done(self) -> bool:
        return self.state.expect == 0

    def _cipher(self) -> SessionCipher:
        s = self.state
        assert s.ksc and s.ns and s.nc and s.session_id
        return _traffic_cipher(s.ksc, s.ns, s.nc, s.session_id)

    def handle(self, message: bytes | Envelope) -> Envelope | None:
        s = self.state
        kinds = {1: Kind.SIGNED, 3: Kind.SIGNED, 7: Kind.SEALED, 9: Kind.SESSION, 11: Kind.SESSION}
        steps = {s.expect: kinds[s.expect]} if s.expect in kinds else {}
        env = self._screen(message, session_id=s.session_id, steps=steps)
        with StepTimer(self.timings_ns, env.header.step):
            result: Envelope | None = getattr(self, f"_step{env.header.step}")(env)
            return result

    def _step1(self, env: Envelope) -> Envelope:
        advert = self._open(env, Advert, self_asserted=lambda p: p.cloud)
        if not server_accepts(advert.free, self.requirement):  # Algorithm 2
            raise _err(ErrorCode.INSUFFICIENT_RESOURCES, "advertised resources do not fit")
        self._commit(env)
        sid = env.header.session_id
        self.state = replace(
            self.state, expect=3, session_id=sid, cloud=advert.cloud, res_cb=advert.free
        )
        hdr = self._header(session_id=sid, step=2, receiver=self.registry.name, kind=Kind.SEALED)
        body = CloudCheckRequest(self.name, advert.cloud.name, advert.free, env.to_bytes())
        return self._sealed(hdr, body, self.registry)

    def _step3(self, env: Envelope) -> Envelope:
        s = self.state
        assert s.cloud is not None and s.session_id is not None
        cert = self._open(env, CloudCertificate, sender=self.registry)
        if cert.server != self.name:
            raise _err(ErrorCode.WRONG_RECIPIENT, "certificate was issued for another server")
        if not cert.cloud.same_keys(s.cloud):
            raise _err(ErrorCode.KEY_MISMATCH, "advertiser's key is not the certified one")
        if cert.res_cb != s.res_cb:
            raise _err(ErrorCode.NOT_AUTHORISED, "certified resources differ from the advert")
        self._commit(env)
        ns = new_nonce()
        self.state = replace(s, expect=7, certified=True, ns=ns)
        hdr = self._header(session_id=s.session_id, step=4, receiver=s.cloud.name, kind=Kind.SEALED)
        return self._sealed(
            hdr, MigrationRequest(ns, self.identity.public, self.requirement), s.cloud
        )

    def _step7(self, env: Envelope) -> Envelope:
        s = self.state
        assert s.cloud is not None and s.ns is not None and s.session_id is not None
        resp = self._open(env, MigrationResponse, sender=s.cloud)
        if not _same(resp.ns, s.ns):
            raise _err(ErrorCode.STALE_NONCE, "Ns echoed by the cloud is not ours")
        if resp.cloud != s.cloud.name:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, "response names another cloud")
        self._commit(env)
        ksc = new_symmetric_key()
        self.state = replace(s, expect=9, ksc=ksc, nc=resp.nc)
        hdr = self._header(session_id=s.session_id, step=8, receiver=s.cloud.name, kind=Kind.SEALED)
        return self._sealed(hdr, SessionKeyTransfer(resp.nc, ksc), s.cloud)

    def _step9(self, env: Envelope) -> Envelope:
        s = self.state
        assert s.cloud is not None and s.session_id is not None
        init = self._open(env, MigrationInit, sender=s.cloud, cipher=self._cipher())
        if init.server != self.name:
            raise _err(ErrorCode.WRONG_RECIPIENT, "M_Req names another server")
        self._commit(env)
        self.state = replace(s, expect=11)
        hdr = self._header(
            session_id=s.session_id, step=10, receiver=s.cloud.name, kind=Kind.SESSION
        )
        ticket = issue_ticket(self.identity, session_id=s.session_id, cloud=s.cloud.name,
                              service=self.transfer.service)
        return self._session(
            hdr, MigrationTransfer(self.transfer, self.requirement, ticket), self._cipher()
        )

    def _step11(self, env: Envelope) -> None:
        ack = self._open(env, MigrationAck, sender=self.state.cloud, cipher=self._cipher())
        if ack.service != self.transfer.service or ack.image_digest != self.transfer.image_digest:
            raise _err(ErrorCode.NOT_AUTHORISED, "M_Ack does not acknowledge our transfer")
        self._commit(env)
        self.state = replace(self.state, expect=0)


# --- Cloud CB -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudState:
    expect: int = 0  # 0 before advertising and after finishing; 12 = awaiting service start
    session_id: bytes | None = None
    server_name: str | None = None
    server: PublicIdentity | None = None  # self-asserted at step 4, certified at step 6
    res_sa: Resources | None = None
    ns: bytes | None = None
    nc: bytes | None = None
    ksc: bytes | None = None
    transfer: TransferDescriptor | None = None
    ticket: TransferTicket | None = None
    allocated: Resources = field(default_factory=Resources)


class RaspCloud(Endpoint):
    """Cloud CB: advertises FREE (Algorithm 1) and receives the migrated service."""

    PROTOCOL = PROTOCOL

    def __init__(
        self,
        identity: Identity,
        *,
        registry: PublicIdentity,
        maximum: Resources,
        allocated: Resources | None = None,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(identity, replay=replay, clock=clock)
        self.registry = registry
        self.maximum = maximum
        self.state = CloudState(allocated=allocated or Resources())

    def snapshot(self) -> CloudState:
        return self.state

    @property
    def free(self) -> Resources:
        return free_resources(self.maximum, self.state.allocated)

    def _cipher(self) -> SessionCipher:
        s = self.state
        assert s.ksc and s.ns and s.nc and s.session_id
        return _traffic_cipher(s.ksc, s.ns, s.nc, s.session_id)

    def advertise(self, server: str) -> Envelope:
        """Step 1 (Algorithm 1): advertise FREE to `server` when anything is free."""
        if self.state.expect != 0:
            raise _err(ErrorCode.WRONG_STEP, "this cloud session has already advertised")
        with StepTimer(self.timings_ns, 1):
            free = self.free
            if not should_advertise(free):
                raise _err(ErrorCode.INSUFFICIENT_RESOURCES, "nothing free to advertise")
            sid = new_session_id()
            self.state = replace(self.state, expect=4, session_id=sid, server_name=server)
            hdr = self._header(session_id=sid, step=1, receiver=server, kind=Kind.SIGNED)
            return self._signed(hdr, Advert(self.identity.public, free))

    def handle(self, message: bytes | Envelope) -> Envelope | None:
        s = self.state
        kinds = {4: Kind.SEALED, 6: Kind.SIGNED, 8: Kind.SEALED, 10: Kind.SESSION}
        steps = {s.expect: kinds[s.expect]} if s.expect in kinds else {}
        env = self._screen(message, session_id=s.session_id, steps=steps)
        with StepTimer(self.timings_ns, env.header.step):
            result: Envelope = getattr(self, f"_step{env.header.step}")(env)
            return result

    def _step4(self, env: Envelope) -> Envelope:
        s = self.state
        assert s.session_id is not None
        if env.header.sender != s.server_name:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, "request from a server we did not advertise to")
        req = self._open(env, MigrationRequest, self_asserted=lambda p: p.server)
        if not server_accepts(self.free, req.res_sa):
            raise _err(ErrorCode.INSUFFICIENT_RESOURCES, "requested resources do not fit")
        self._commit(env)
        self.state = replace(s, expect=6, server=req.server, res_sa=req.res_sa, ns=req.ns)
        hdr = self._header(
            session_id=s.session_id, step=5, receiver=self.registry.name, kind=Kind.SEALED
        )
        return self._sealed(
            hdr, ServerCheckRequest(self.name, req.server, req.res_sa), self.registry
        )

    def _step6(self, env: Envelope) -> Envelope:
        s = self.state
        assert s.server is not None and s.ns is not None and s.session_id is not None
        cert = self._open(env, ServerCertificate, sender=self.registry)
        if cert.cloud != self.name:
            raise _err(ErrorCode.WRONG_RECIPIENT, "certificate was issued for another cloud")
        if not cert.server.same_keys(s.server):
            raise _err(ErrorCode.KEY_MISMATCH, "requesting server's key is not the certified one")
        if cert.res_sa != s.res_sa:
            raise _err(ErrorCode.NOT_AUTHORISED, "certified resources differ from the request")
        self._commit(env)
        nc = new_nonce()
        self.state = replace(s, expect=8, nc=nc)
        hdr = self._header(
            session_id=s.session_id, step=7, receiver=s.server.name, kind=Kind.SEALED
        )
        return self._sealed(hdr, MigrationResponse(s.ns, nc, self.name), s.server)

    def _step8(self, env: Envelope) -> Envelope:
        s = self.state
        assert s.server is not None and s.nc is not None and s.session_id is not None
        key = self._open(env, SessionKeyTransfer, sender=s.server)
        if not _same(key.nc, s.nc):
            raise _err(ErrorCode.STALE_NONCE, "Nc echoed by the server is not ours")
        if len(key.ksc) != 32:
            raise _err(ErrorCode.MALFORMED, "Ksc must be 32 bytes")
        self._commit(env)
        self.state = replace(s, expect=10, ksc=key.ksc)
        hdr = self._header(
            session_id=s.session_id, step=9, receiver=s.server.name, kind=Kind.SESSION
        )
        return self._session(hdr, MigrationInit(s.server.name), self._cipher())

    def _step10(self, env: Envelope) -> Envelope:
        s = self.state
        assert s.server is not None and s.res_sa is not None and s.session_id is not None
        trf = self._open(env, MigrationTransfer, sender=s.server, cipher=self._cipher())
        if trf.res_sa != s.res_sa:
            raise _err(ErrorCode.NOT_AUTHORISED, "M_Trf resources differ from the certified ones")
        check_ticket(trf.ticket, s.server, session_id=s.session_id, cloud=self.name,
                     service=trf.transfer.service)
        self._commit(env)
        self.state = replace(s, expect=12, transfer=trf.transfer, ticket=trf.ticket,
                             allocated=s.allocated.plus(s.res_sa))
        hdr = self._header(
            session_id=s.session_id, step=11, receiver=s.server.name, kind=Kind.SESSION
        )
        ack = MigrationAck(trf.transfer.service, trf.transfer.image_digest)
        return self._session(hdr, ack, self._cipher())

    def report_location(self) -> Envelope:
        """Step 12: the migrated service SB now runs here; tell the registry."""
        s = self.state
        if (s.expect != 12 or s.transfer is None or s.server is None or s.session_id is None
                or s.ticket is None):
            raise _err(ErrorCode.WRONG_STEP, "no migrated service to report yet")
        with StepTimer(self.timings_ns, 12):
            self.state = replace(s, expect=0)
            hdr = self._header(
                session_id=s.session_id, step=12, receiver=self.registry.name, kind=Kind.SEALED
            )
            body = LocationUpdate(s.transfer.service, self.name, s.server.name, s.ticket)
            return self._sealed(hdr, body, self.registry)


# --- Registry R -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistrySession:
    server: str
    cloud: str
    res_cb: Resources
    res_sa: Resources | None = None
    done: int = 2  # last step handled: 2, 5 or 12


class RaspRegistry(Endpoint):
    """The RAS / Registry: certifies clouds (Algorithm 3) and servers (Algorithm 4)."""

    PROTOCOL = PROTOCOL

    def __init__(
        self,
        identity: Identity,
        *,
        table: RasTable,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(identity, replay=replay, clock=clock)
        self.table = table
        self.sessions: dict[bytes, RegistrySession] = {}
        self.last_ticket: TransferTicket | None = None  # of the last step 12 accepted

    def snapshot(self) -> tuple[dict[bytes, RegistrySession], RasTable]:
        return dict(self.sessions), copy.deepcopy(self.table)

    def handle(self, message: bytes | Envelope) -> Envelope | None:
        steps = {2: Kind.SEALED, 5: Kind.SEALED, 12: Kind.SEALED}
        env = self._screen(message, session_id=None, steps=steps)
        with StepTimer(self.timings_ns, env.header.step):
            result: Envelope | None = getattr(self, f"_step{env.header.step}")(env)
            return result

    def _session_for(self, env: Envelope, after: int) -> RegistrySession:
        sess = self.sessions.get(env.header.session_id)
        if sess is None:
            raise _err(ErrorCode.WRONG_SESSION, "no such RASP session at the registry")
        if sess.done != after:
            raise _err(ErrorCode.WRONG_STEP, f"step {env.header.step} not expected now")
        if env.header.sender != sess.cloud:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, "sender is not this session's cloud")
        return sess

    def _step2(self, env: Envelope) -> Envelope:
        h = env.header
        if h.session_id in self.sessions:
            raise _err(ErrorCode.WRONG_SESSION, "session already started at the registry")
        sender = self.table.servers.get(h.sender)
        if sender is None:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"{h.sender!r} is not a registered server")
        req = self._open(env, CloudCheckRequest, sender=sender)
        if req.server != h.sender:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, "request names another server")
        advert_env = Envelope.from_bytes(req.advert)
        ah = advert_env.header
        if ah.protocol != PROTOCOL or ah.step != 1 or ah.kind is not Kind.SIGNED:
            raise _err(ErrorCode.MALFORMED, "embedded advertisement is not a RASP step 1")
        if ah.session_id != h.session_id:
            raise _err(ErrorCode.WRONG_SESSION, "advertisement belongs to another session")
        if ah.sender != req.cloud or ah.receiver != req.server:
            raise _err(ErrorCode.WRONG_RECIPIENT, "advertisement is not from CB to SA")
        entry = self.table.check_cloud(req.cloud, req.res_cb)  # Algorithm 3
        entry.public.verify(advert_env.signed_bytes(), advert_env.signature)
        advert = self._open_plain_advert(advert_env)
        if not advert.cloud.same_keys(entry.public):
            raise _err(ErrorCode.KEY_MISMATCH, "advertised key is not the registered one")
        if advert.free != req.res_cb:
            raise _err(ErrorCode.NOT_AUTHORISED, "ResCB differs from the signed advertisement")
        self._commit(env)
        self.sessions[h.session_id] = RegistrySession(req.server, req.cloud, req.res_cb)
        hdr = self._header(session_id=h.session_id, step=3, receiver=h.sender, kind=Kind.SIGNED)
        return self._signed(hdr, CloudCertificate(entry.public, req.res_cb, req.server))

    @staticmethod
    def _open_plain_advert(env: Envelope) -> Advert:
        return encoding.decode_as(Advert, env.body)

    def _step5(self, env: Envelope) -> Envelope:
        h = env.header
        sess = self._session_for(env, after=2)
        entry = self.table.clouds.get(h.sender)
        if entry is None:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"{h.sender!r} is not a registered cloud")
        req = self._open(env, ServerCheckRequest, sender=entry.public)
        if req.cloud != h.sender or req.server.name != sess.server:
            raise _err(ErrorCode.WRONG_SESSION, "request is about another cloud/server pair")
        registered = self.table.check_server(req.server.name, req.cloud, req.res_sa)  # Alg. 4
        if not registered.same_keys(req.server):
            raise _err(ErrorCode.KEY_MISMATCH, "server's key is not the registered one")
        self._commit(env)
        self.sessions[h.session_id] = replace(sess, res_sa=req.res_sa, done=5)
        hdr = self._header(session_id=h.session_id, step=6, receiver=h.sender, kind=Kind.SIGNED)
        return self._signed(hdr, ServerCertificate(registered, req.res_sa, req.cloud))

    def _step12(self, env: Envelope) -> None:
        h = env.header
        sess = self._session_for(env, after=5)
        assert sess.res_sa is not None
        upd = self._open(env, LocationUpdate, sender=self.table.clouds[sess.cloud].public)
        if upd.cloud != sess.cloud or upd.server != sess.server:
            raise _err(ErrorCode.WRONG_SESSION, "location update for another migration")
        server = self.table.servers.get(sess.server)
        if server is None:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"{sess.server!r} is no longer registered")
        # only the service SA transferred in this session's step 10 (its signed ticket)
        check_ticket(upd.ticket, server, session_id=h.session_id, cloud=sess.cloud,
                     service=upd.service)
        self._commit(env)
        self.last_ticket = upd.ticket
        self.table.record_migration(sess.server, sess.cloud, sess.res_sa, upd.service)
        self.sessions[h.session_id] = replace(sess, done=12)


# --- in-process driver ----------------------------------------------------------------------

STAGES = {1: (1,), 2: (2, 3, 4, 5, 6, 7), 3: (8, 9, 10, 11), 4: (12,)}


@dataclass
class RaspRun:
    """Timings of one in-process run. `step_ns[k]`: time the receiver of step k spent handling
    it (decode, verify, decrypt, build the reply; step 1 and 12: the sender building it).
    `stage_ns[s]`: monotonic wall time from the first message of stage s being built to its
    last message being handled (includes serialisation)."""

    session_id: bytes
    stage_ns: dict[int, int]
    step_ns: dict[int, int]
    message_bytes: dict[int, int]
    total_ns: int


def run_rasp_in_process(server: RaspServer, cloud: RaspCloud, registry: RaspRegistry) -> RaspRun:
    """Drive all 12 steps between three in-process parties, as bytes, timing each stage."""
    sizes: dict[int, int] = {}
    step_ns: dict[int, int] = {}
    stage_ns: dict[int, int] = {}

    def deliver(to: RaspServer | RaspCloud | RaspRegistry, env: Envelope | None) -> Envelope | None:
        assert env is not None
        wire = env.to_bytes()
        sizes[env.header.step] = len(wire)
        t0 = time.perf_counter_ns()
        out = to.handle(wire)
        step_ns[env.header.step] = time.perf_counter_ns() - t0
        return out

    start = t = time.perf_counter_ns()
    m: Envelope | None = cloud.advertise(server.name)
    m = deliver(server, m)  # 1 -> 2
    stage_ns[1], t = time.perf_counter_ns() - t, time.perf_counter_ns()
    m = deliver(registry, m)  # 2 -> 3
    m = deliver(server, m)  # 3 -> 4
    m = deliver(cloud, m)  # 4 -> 5
    m = deliver(registry, m)  # 5 -> 6
    m = deliver(cloud, m)  # 6 -> 7
    m = deliver(server, m)  # 7 -> 8
    stage_ns[2], t = time.perf_counter_ns() - t, time.perf_counter_ns()
    m = deliver(cloud, m)  # 8 -> 9
    m = deliver(server, m)  # 9 -> 10
    m = deliver(cloud, m)  # 10 -> 11
    if deliver(server, m) is not None or not server.done:  # 11
        raise ProtocolError(ErrorCode.WRONG_STEP, "server did not finish after step 11")
    stage_ns[3], t = time.perf_counter_ns() - t, time.perf_counter_ns()
    m = cloud.report_location()
    deliver(registry, m)
    stage_ns[4] = time.perf_counter_ns() - t
    assert cloud.state.session_id is not None
    return RaspRun(
        session_id=cloud.state.session_id,
        stage_ns=stage_ns,
        step_ns=dict(sorted(step_ns.items())),
        message_bytes=dict(sorted(sizes.items())),
        total_ns=time.perf_counter_ns() - start,
    )
