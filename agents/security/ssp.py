"""SSP — Secure Service Protocol (seed 000, section 6.2, Figure 9), transport-free.

Roles: `SspCms` (Cloud Management System, stage 1), `SspSmf` (Service Management Framework,
the CA for USER/DEVICE/SERVICE capabilities), `SspServer` (a Chosen Server, the CA for its own
SESSION capabilities) and `SspApplication`. Same style as RASP: `handle(message) -> next | None`.

  Stage 1  1. CMS -> SMF   Register Service(details)                 SEALED to SMF, signed
           2. SMF -> CMS   Service Registered(details, SERV ID, SERV CAP)   SEALED, signed
  Stage 2  3. APPL -> SMF  Request service(name, version, DEV CAP, USER CAP, PK(APPL))
           4. SMF -> Srv   Usage request(DEV CAP, USER CAP, IP client, + SERV ID/CAP, PK(APPL))
           5. Srv -> SMF   Usage accepted(DEV CAP, USER CAP, SERV TIME CAP, IP, port)
           6. SMF -> APPL  Request accepted(..., SERV TIME CAP, IP, port, PK(SERV))
  Stage 3  7. APPL -> Srv  Session start(DEV CAP, USER CAP, SERV ID, SERV TIME CAP, NA)
           8. Srv -> APPL  Session accepted(DEV CAP, USER CAP, CAP SESS, SESS KEY, NA, NB)
  Stage 4  9. APPL -> Srv  Service request(CAP SESS, NB, details)     SESSION (AES-256-GCM)
          10. Srv -> APPL  Service request done(CAP SESS, NA, result) SESSION
  Stage 5 11. APPL -> Srv  Session end(CAP SESS, NB)                  SESSION; CAP SESS revoked
Steps 1-8 are sealed to the receiver's X25519 key and signed by the sender (Ed25519).

Interpretations (written down as the spec asks):
- SERV TIME CAP is a private proxy of SERV CAP derived by the chosen server: 60 s lifetime,
  bound to [USER CAP, DEV CAP] (holder binding), and single use: accepting step 7 revokes it,
  so a recorded step 7 cannot open a second session.
- The chosen server was given SERV CAP by the CMS (stage 1: "passes the Service ID and the
  Service Capability"); `SspServer.provision` stores it. At step 4 the SMF (signature checked)
  presents SERV CAP again and the server compares it in constant time with the provisioned one
  before deriving from it (`derive_proxy(master_authenticated=True)`): the server does not hold
  the SMF's tag key, so SMF-issued capabilities stay unforgeable by servers.
- Step 4 also carries SERV ID, SERV CAP and PK(APPL): the server needs PK(APPL) to check step 7's
  signature and to encrypt step 8 (the paper has step 8 under PK(APPL) without saying how the
  server learns it).
- CAP SESS is a master SESSION capability (the server is the CA for the session objects it
  creates), private to [USER CAP, DEV CAP], without the C bit.
- Step 9 and 11 carry NB, step 10 carries NA (the paper's step 11 text says "Nonce (A)" in the
  formula and "(NB)" in the prose; we use NB, the server's nonce, for both app->server steps).
  Requests carry a sequence number in the authenticated header; a number not above the last
  accepted one is a REPLAY. The traffic key is HKDF(SESS KEY, NA || NB, label || session id).
- USER CAP and DEV CAP are issued by the SMF (`register_user`, `register_device`, the SMF's
  Register User / Register Device commands) and verified by it at step 3. They are no bearer
  tokens: both name the fingerprint of the application's key PK(APPL) they were issued for, and
  step 3 (signed with that key: proof of possession) is accepted only when both name the key
  that signed it; the DEV CAP names its owner, and step 3 refuses a USER CAP with another
  user's device. Both expire (`DEFAULT_MASTER_TTL_S`, checked with the SMF's clock); the SMF
  revokes and reissues them (agents/smf/core.py).
- One session id (chosen by the application at step 3) runs through steps 3-11.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from agents.security.capability import (
    CapType,
    ObjectId,
    SealedCapability,
    SealedCapabilityAuthority,
    require_holder,
    require_owner,
)
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

PROTOCOL = "ssp/1"
TIMED_CAP_TTL_S = 60.0
DEFAULT_SESSION_TTL_S = 3600.0
DEFAULT_MASTER_TTL_S = 24 * 3600.0  # USER CAP / DEV CAP lifetime
ALL_PROPERTIES = 0xFFF
_SESS_INFO = b"edgeferry/ssp/session-key/v1"


def _err(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, message)


def _same_cap(a: SealedCapability, b: SealedCapability) -> bool:
    return constant_time_equal(a.to_bytes(), b.to_bytes())


def _traffic_cipher(key: bytes, na: bytes, nb: bytes, session_id: bytes) -> SessionCipher:
    return SessionCipher(derive_key(key, salt=na + nb, info=_SESS_INFO + session_id))


# --- payloads -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerInfo:
    WIRE_NAME = "ssp.ServerInfo"
    public: PublicIdentity
    ip: str
    port: int


@dataclass(frozen=True)
class RegisterService:  # 1
    WIRE_NAME = "ssp.RegisterService"
    name: str
    version: str
    servers: tuple[ServerInfo, ...]


@dataclass(frozen=True)
class ServiceRegistered:  # 2
    WIRE_NAME = "ssp.ServiceRegistered"
    name: str
    version: str
    servers: tuple[ServerInfo, ...]
    serv_id: str
    serv_cap: SealedCapability


@dataclass(frozen=True)
class RequestService:  # 3
    WIRE_NAME = "ssp.RequestService"
    name: str
    version: str
    dev_cap: SealedCapability
    user_cap: SealedCapability
    appl: PublicIdentity
    ip_client: str


@dataclass(frozen=True)
class UsageRequest:  # 4
    WIRE_NAME = "ssp.UsageRequest"
    serv_id: str
    serv_cap: SealedCapability
    dev_cap: SealedCapability
    user_cap: SealedCapability
    ip_client: str
    appl: PublicIdentity


@dataclass(frozen=True)
class UsageAccepted:  # 5
    WIRE_NAME = "ssp.UsageAccepted"
    dev_cap: SealedCapability
    user_cap: SealedCapability
    serv_time_cap: SealedCapability
    ip_server: str
    port: int


@dataclass(frozen=True)
class RequestAccepted:  # 6
    WIRE_NAME = "ssp.RequestAccepted"
    dev_cap: SealedCapability
    user_cap: SealedCapability
    serv_time_cap: SealedCapability
    ip_server: str
    port: int
    server: PublicIdentity
    serv_id: str


@dataclass(frozen=True)
class SessionStart:  # 7
    WIRE_NAME = "ssp.SessionStart"
    dev_cap: SealedCapability
    user_cap: SealedCapability
    serv_id: str
    serv_time_cap: SealedCapability
    na: bytes


@dataclass(frozen=True)
class SessionAccepted:  # 8
    WIRE_NAME = "ssp.SessionAccepted"
    dev_cap: SealedCapability
    user_cap: SealedCapability
    cap_sess: SealedCapability
    sess_key: bytes
    na: bytes
    nb: bytes


@dataclass(frozen=True)
class ServiceRequest:  # 9
    WIRE_NAME = "ssp.ServiceRequest"
    cap_sess: SealedCapability
    nb: bytes
    details: bytes


@dataclass(frozen=True)
class ServiceResult:  # 10
    WIRE_NAME = "ssp.ServiceResult"
    cap_sess: SealedCapability
    na: bytes
    result: bytes


@dataclass(frozen=True)
class SessionEnd:  # 11
    WIRE_NAME = "ssp.SessionEnd"
    cap_sess: SealedCapability
    nb: bytes


# --- CMS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CmsState:
    expect: int = 0  # 2 while waiting for the SMF, 0 otherwise
    session_id: bytes | None = None
    registered: ServiceRegistered | None = None


class SspCms(Endpoint):
    """Cloud Management System: registers a service and its servers with the SMF (stage 1)."""

    PROTOCOL = PROTOCOL

    def __init__(
        self,
        identity: Identity,
        *,
        smf: PublicIdentity,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(identity, replay=replay, clock=clock)
        self.smf = smf
        self.state = CmsState()
        self._request: RegisterService | None = None

    def snapshot(self) -> CmsState:
        return self.state

    def register_service(
        self, name: str, version: str, servers: tuple[ServerInfo, ...]
    ) -> Envelope:
        """Step 1."""
        if self.state.expect != 0:
            raise _err(ErrorCode.WRONG_STEP, "a registration is already in progress")
        with StepTimer(self.timings_ns, 1):
            sid = new_session_id()
            self._request = RegisterService(name, version, servers)
            self.state = CmsState(expect=2, session_id=sid)
            hdr = self._header(session_id=sid, step=1, receiver=self.smf.name, kind=Kind.SEALED)
            return self._sealed(hdr, self._request, self.smf)

    def handle(self, message: bytes | Envelope) -> None:
        s = self.state
        env = self._screen(
            message, session_id=s.session_id, steps={2: Kind.SEALED} if s.expect == 2 else {}
        )
        with StepTimer(self.timings_ns, 2):
            reg = self._open(env, ServiceRegistered, sender=self.smf)
            req = self._request
            assert req is not None
            if (reg.name, reg.version, reg.servers) != (req.name, req.version, req.servers):
                raise _err(ErrorCode.NOT_AUTHORISED, "registration differs from our request")
            self._commit(env)
            self.state = replace(s, expect=0, registered=reg)


# --- SMF ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    version: str
    serv_id: str
    serv_cap: SealedCapability
    servers: tuple[ServerInfo, ...]


@dataclass(frozen=True)
class SmfSession:
    appl: PublicIdentity
    user_cap: SealedCapability
    dev_cap: SealedCapability
    service: ServiceRecord
    server: ServerInfo
    done: int  # last step handled: 3 or 5


class SspSmf(Endpoint):
    """Service Management Framework: CA for users, devices and services; picks servers."""

    PROTOCOL = PROTOCOL

    def __init__(
        self,
        identity: Identity,
        *,
        authority: SealedCapabilityAuthority,
        cms: dict[str, PublicIdentity],
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
        choose_server: Callable[[tuple[ServerInfo, ...]], ServerInfo] = lambda s: s[0],
    ) -> None:
        super().__init__(identity, replay=replay, clock=clock)
        self.authority = authority
        self.cms = dict(cms)
        self.choose_server = choose_server
        self.services: dict[tuple[str, str], ServiceRecord] = {}
        self.sessions: dict[bytes, SmfSession] = {}
        self._cms_sessions: set[bytes] = set()

    def snapshot(self) -> tuple[object, ...]:
        return (dict(self.services), dict(self.sessions), frozenset(self._cms_sessions))

    def register_user(self, name: str, role: int = 0, *, holder: PublicIdentity,
                      ttl_s: float = DEFAULT_MASTER_TTL_S) -> SealedCapability:
        """Register User: a USER master capability (property = role/rank bits) bound to the
        application key `holder`, valid for `ttl_s`."""
        return self.authority.issue_master(CapType.USER, ObjectId.from_name(name), role,
                                           ttl_s=ttl_s, holder_key=holder.fingerprint())

    def register_device(self, name: str, owner: str, *, holder: PublicIdentity,
                        owner_bits: int = 0, ttl_s: float = DEFAULT_MASTER_TTL_S
                        ) -> SealedCapability:
        """Register Device: a DEVICE master capability naming its owner (the user `owner`),
        bound to the application key `holder`, valid for `ttl_s`."""
        return self.authority.issue_master(
            CapType.DEVICE, ObjectId.from_name(name), owner_bits, ttl_s=ttl_s,
            holder_key=holder.fingerprint(), owner=ObjectId.from_name(owner))

    def handle(self, message: bytes | Envelope) -> Envelope | None:
        steps = {1: Kind.SEALED, 3: Kind.SEALED, 5: Kind.SEALED}
        env = self._screen(message, session_id=None, steps=steps)
        with StepTimer(self.timings_ns, env.header.step):
            result: Envelope = getattr(self, f"_step{env.header.step}")(env)
            return result

    def _step1(self, env: Envelope) -> Envelope:
        h = env.header
        if h.session_id in self._cms_sessions or h.session_id in self.sessions:
            raise _err(ErrorCode.WRONG_SESSION, "session id already used")
        cms = self.cms.get(h.sender)
        if cms is None:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"{h.sender!r} is not a known CMS")
        req = self._open(env, RegisterService, sender=cms)
        if not req.servers:
            raise _err(ErrorCode.MALFORMED, "a service needs at least one server")
        self._commit(env)
        serv_id = "svc-" + secrets.token_hex(8)
        serv_cap = self.authority.issue_master(
            CapType.SERVICE, ObjectId.from_name(serv_id), ALL_PROPERTIES, change=True, system=True
        )
        record = ServiceRecord(req.name, req.version, serv_id, serv_cap, req.servers)
        self.services[(req.name, req.version)] = record
        self._cms_sessions.add(h.session_id)
        hdr = self._header(session_id=h.session_id, step=2, receiver=h.sender, kind=Kind.SEALED)
        body = ServiceRegistered(req.name, req.version, req.servers, serv_id, serv_cap)
        return self._sealed(hdr, body, cms)

    def _step3(self, env: Envelope) -> Envelope:
        h = env.header
        if h.session_id in self.sessions or h.session_id in self._cms_sessions:
            raise _err(ErrorCode.WRONG_SESSION, "session id already used")
        req = self._open(env, RequestService, self_asserted=lambda p: p.appl)
        user = self.authority.verify(req.user_cap)
        dev = self.authority.verify(req.dev_cap)
        if user.cap_type != CapType.USER or dev.cap_type != CapType.DEVICE:
            raise _err(ErrorCode.NOT_AUTHORISED, "USER CAP and DEV CAP are required")
        if req.user_cap.expires_at_ms is None or req.dev_cap.expires_at_ms is None:
            raise _err(ErrorCode.NOT_AUTHORISED, "USER CAP and DEV CAP must expire")
        for cap in (req.user_cap, req.dev_cap):  # step 3 is signed with PK(APPL): possession
            require_holder(cap, req.appl.fingerprint())
        require_owner(req.dev_cap, user)
        service = self.services.get((req.name, req.version))
        if service is None:
            raise _err(ErrorCode.UNKNOWN_SERVICE, f"no service {req.name} {req.version}")
        server = self.choose_server(service.servers)
        self._commit(env)
        self.sessions[h.session_id] = SmfSession(
            req.appl, req.user_cap, req.dev_cap, service, server, done=3
        )
        hdr = self._header(
            session_id=h.session_id, step=4, receiver=server.public.name, kind=Kind.SEALED
        )
        body = UsageRequest(
            service.serv_id, service.serv_cap, req.dev_cap, req.user_cap, req.ip_client, req.appl
        )
        return self._sealed(hdr, body, server.public)

    def _step5(self, env: Envelope) -> Envelope:
        h = env.header
        sess = self.sessions.get(h.session_id)
        if sess is None:
            raise _err(ErrorCode.WRONG_SESSION, "no such SSP session at the SMF")
        if sess.done != 3:
            raise _err(ErrorCode.WRONG_STEP, "usage already accepted for this session")
        acc = self._open(env, UsageAccepted, sender=sess.server.public)
        if not (_same_cap(acc.user_cap, sess.user_cap) and _same_cap(acc.dev_cap, sess.dev_cap)):
            raise _err(ErrorCode.NOT_AUTHORISED, "server answered for other capabilities")
        self._commit(env)
        self.sessions[h.session_id] = replace(sess, done=5)
        hdr = self._header(
            session_id=h.session_id, step=6, receiver=sess.appl.name, kind=Kind.SEALED
        )
        body = RequestAccepted(
            acc.dev_cap,
            acc.user_cap,
            acc.serv_time_cap,
            acc.ip_server,
            acc.port,
            sess.server.public,
            sess.service.serv_id,
        )
        return self._sealed(hdr, body, sess.appl)


# --- Chosen Server --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSession:
    appl: PublicIdentity
    user_cap: SealedCapability
    dev_cap: SealedCapability
    serv_id: str
    time_cap: SealedCapability
    phase: str = "offered"  # offered -> open -> ended
    cap_sess: SealedCapability | None = None
    sess_key: bytes | None = None
    na: bytes | None = None
    nb: bytes | None = None
    last_seq: int = 0


class SspServer(Endpoint):
    """A Chosen Server: issues timed capabilities, runs sessions, serves requests."""

    PROTOCOL = PROTOCOL

    def __init__(
        self,
        identity: Identity,
        *,
        smf: PublicIdentity,
        authority: SealedCapabilityAuthority,
        ip: str,
        port: int,
        handler: Callable[[bytes], bytes],
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
        session_ttl_s: float = DEFAULT_SESSION_TTL_S,
    ) -> None:
        super().__init__(identity, replay=replay, clock=clock)
        self.smf = smf
        self.authority = authority
        self.ip = ip
        self.port = port
        self.handler = handler
        self.session_ttl_s = session_ttl_s
        self.provisioned: dict[str, SealedCapability] = {}
        self.sessions: dict[bytes, ServerSession] = {}

    def snapshot(self) -> tuple[object, ...]:
        return (dict(self.provisioned), dict(self.sessions))

    def provision(self, serv_id: str, serv_cap: SealedCapability) -> None:
        """What the CMS does after stage 1: hand SERV ID and SERV CAP to the server."""
        self.provisioned[serv_id] = serv_cap

    def handle(self, message: bytes | Envelope) -> Envelope | None:
        steps = {4: Kind.SEALED, 7: Kind.SEALED, 9: Kind.SESSION, 11: Kind.SESSION}
        env = self._screen(message, session_id=None, steps=steps)
        with StepTimer(self.timings_ns, env.header.step):
            result: Envelope | None = getattr(self, f"_step{env.header.step}")(env)
            return result

    def _lookup(self, env: Envelope, phase: str) -> ServerSession:
        sess = self.sessions.get(env.header.session_id)
        if sess is None:
            raise _err(ErrorCode.WRONG_SESSION, "no such SSP session at this server")
        if sess.phase == "ended":
            raise _err(ErrorCode.REVOKED, "session has ended; CAP SESS is revoked")
        if sess.phase != phase:
            raise _err(ErrorCode.WRONG_STEP, f"step {env.header.step} not expected now")
        if env.header.sender != sess.appl.name:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, "sender is not this session's application")
        return sess

    def _cipher(self, sess: ServerSession, session_id: bytes) -> SessionCipher:
        assert sess.sess_key and sess.na and sess.nb
        return _traffic_cipher(sess.sess_key, sess.na, sess.nb, session_id)

    def _step4(self, env: Envelope) -> Envelope:
        h = env.header
        if h.session_id in self.sessions:
            raise _err(ErrorCode.WRONG_SESSION, "session id already used")
        req = self._open(env, UsageRequest, sender=self.smf)
        provisioned = self.provisioned.get(req.serv_id)
        if provisioned is None or not _same_cap(provisioned, req.serv_cap):
            raise _err(ErrorCode.NOT_AUTHORISED, "SERV CAP is not the one provisioned")
        time_cap = self.authority.derive_proxy(
            req.serv_cap,
            ttl_s=TIMED_CAP_TTL_S,
            subjects=[req.user_cap, req.dev_cap],
            master_authenticated=True,
        )
        self._commit(env)
        self.sessions[h.session_id] = ServerSession(
            req.appl, req.user_cap, req.dev_cap, req.serv_id, time_cap
        )
        hdr = self._header(session_id=h.session_id, step=5, receiver=h.sender, kind=Kind.SEALED)
        body = UsageAccepted(req.dev_cap, req.user_cap, time_cap, self.ip, self.port)
        return self._sealed(hdr, body, self.smf)

    def _step7(self, env: Envelope) -> Envelope:
        h = env.header
        sess = self._lookup(env, "offered")
        start = self._open(env, SessionStart, sender=sess.appl)
        subjects = [start.user_cap, start.dev_cap]
        self.authority.verify(start.serv_time_cap, subjects=subjects)  # EXPIRED/REVOKED/...
        if not _same_cap(start.serv_time_cap, sess.time_cap) or start.serv_id != sess.serv_id:
            raise _err(ErrorCode.NOT_AUTHORISED, "timed capability was issued for another use")
        self._commit(env)
        self.authority.revoke(sess.time_cap)  # single use
        cap_sess = self.authority.issue_master(
            CapType.SESSION,
            ObjectId.from_name(h.session_id.hex()),
            ALL_PROPERTIES,
            ttl_s=self.session_ttl_s,
            subjects=subjects,
        )
        key, nb = new_symmetric_key(), new_nonce()
        self.sessions[h.session_id] = replace(
            sess, phase="open", cap_sess=cap_sess, sess_key=key, na=start.na, nb=nb
        )
        hdr = self._header(session_id=h.session_id, step=8, receiver=h.sender, kind=Kind.SEALED)
        body = SessionAccepted(start.dev_cap, start.user_cap, cap_sess, key, start.na, nb)
        return self._sealed(hdr, body, sess.appl)

    def _check_session_message(
        self, env: Envelope, sess: ServerSession, cap: SealedCapability, nb: bytes
    ) -> None:
        assert sess.cap_sess is not None and sess.nb is not None
        self.authority.verify(cap, subjects=[sess.user_cap, sess.dev_cap])
        if not _same_cap(cap, sess.cap_sess):
            raise _err(ErrorCode.NOT_AUTHORISED, "CAP SESS of another session")
        if not constant_time_equal(nb, sess.nb):
            raise _err(ErrorCode.STALE_NONCE, "NB is not this session's")
        if env.header.seq <= sess.last_seq:
            raise _err(ErrorCode.REPLAY, "sequence number already used")

    def _step9(self, env: Envelope) -> Envelope:
        h = env.header
        sess = self._lookup(env, "open")
        req = self._open(
            env, ServiceRequest, sender=sess.appl, cipher=self._cipher(sess, h.session_id)
        )
        self._check_session_message(env, sess, req.cap_sess, req.nb)
        result = self.handler(req.details)
        self._commit(env)
        self.sessions[h.session_id] = replace(sess, last_seq=h.seq)
        hdr = self._header(
            session_id=h.session_id, step=10, receiver=h.sender, kind=Kind.SESSION, seq=h.seq
        )
        assert sess.cap_sess is not None and sess.na is not None
        body = ServiceResult(sess.cap_sess, sess.na, result)
        return self._session(hdr, body, self._cipher(sess, h.session_id))

    def _step11(self, env: Envelope) -> None:
        h = env.header
        sess = self._lookup(env, "open")
        end = self._open(env, SessionEnd, sender=sess.appl, cipher=self._cipher(sess, h.session_id))
        self._check_session_message(env, sess, end.cap_sess, end.nb)
        self._commit(env)
        assert sess.cap_sess is not None
        self.authority.revoke(sess.cap_sess)
        self.sessions[h.session_id] = replace(sess, phase="ended", last_seq=h.seq, sess_key=None)


# --- Application ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplState:
    expect: int = 0  # 6, 8, 10 while waiting; 0 idle; -1 ended
    session_id: bytes | None = None
    server: PublicIdentity | None = None
    serv_id: str | None = None
    time_cap: SealedCapability | None = None
    ip_server: str | None = None
    port: int | None = None
    na: bytes | None = None
    nb: bytes | None = None
    sess_key: bytes | None = None
    cap_sess: SealedCapability | None = None
    seq: int = 0
    last_result: bytes | None = None


class SspApplication(Endpoint):
    """The application: asks the SMF for a service, opens a session, sends requests."""

    PROTOCOL = PROTOCOL

    def __init__(
        self,
        identity: Identity,
        *,
        smf: PublicIdentity,
        user_cap: SealedCapability,
        dev_cap: SealedCapability,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(identity, replay=replay, clock=clock)
        self.smf = smf
        self.user_cap = user_cap
        self.dev_cap = dev_cap
        self.state = ApplState()

    def snapshot(self) -> ApplState:
        return self.state

    @property
    def established(self) -> bool:
        return self.state.cap_sess is not None and self.state.expect == 0

    def _cipher(self) -> SessionCipher:
        s = self.state
        assert s.sess_key and s.na and s.nb and s.session_id
        return _traffic_cipher(s.sess_key, s.na, s.nb, s.session_id)

    def request_service(self, name: str, version: str, ip_client: str) -> Envelope:
        """Step 3."""
        if self.state.session_id is not None:
            raise _err(ErrorCode.WRONG_STEP, "this application session already started")
        with StepTimer(self.timings_ns, 3):
            sid = new_session_id()
            self.state = replace(self.state, expect=6, session_id=sid)
            hdr = self._header(session_id=sid, step=3, receiver=self.smf.name, kind=Kind.SEALED)
            body = RequestService(
                name, version, self.dev_cap, self.user_cap, self.identity.public, ip_client
            )
            return self._sealed(hdr, body, self.smf)

    def handle(self, message: bytes | Envelope) -> Envelope | None:
        s = self.state
        kinds = {6: Kind.SEALED, 8: Kind.SEALED, 10: Kind.SESSION}
        env = self._screen(
            message,
            session_id=s.session_id,
            steps={s.expect: kinds[s.expect]} if s.expect in kinds else {},
        )
        with StepTimer(self.timings_ns, env.header.step):
            result: Envelope | None = getattr(self, f"_step{env.header.step}")(env)
            return result

    def _check_caps(self, user: SealedCapability, dev: SealedCapability) -> None:
        if not (_same_cap(user, self.user_cap) and _same_cap(dev, self.dev_cap)):
            raise _err(ErrorCode.NOT_AUTHORISED, "reply names other capabilities than ours")

    def _step6(self, env: Envelope) -> Envelope:
        s = self.state
        assert s.session_id is not None
        acc = self._open(env, RequestAccepted, sender=self.smf)
        self._check_caps(acc.user_cap, acc.dev_cap)
        self._commit(env)
        na = new_nonce()
        self.state = replace(
            s,
            expect=8,
            server=acc.server,
            serv_id=acc.serv_id,
            time_cap=acc.serv_time_cap,
            ip_server=acc.ip_server,
            port=acc.port,
            na=na,
        )
        hdr = self._header(
            session_id=s.session_id, step=7, receiver=acc.server.name, kind=Kind.SEALED
        )
        body = SessionStart(self.dev_cap, self.user_cap, acc.serv_id, acc.serv_time_cap, na)
        return self._sealed(hdr, body, acc.server)

    def _step8(self, env: Envelope) -> None:
        s = self.state
        assert s.server is not None and s.na is not None
        acc = self._open(env, SessionAccepted, sender=s.server)
        self._check_caps(acc.user_cap, acc.dev_cap)
        if not constant_time_equal(acc.na, s.na):
            raise _err(ErrorCode.STALE_NONCE, "NA echoed by the server is not ours")
        if len(acc.sess_key) != 32:
            raise _err(ErrorCode.MALFORMED, "SESS KEY must be 32 bytes")
        self._commit(env)
        self.state = replace(s, expect=0, cap_sess=acc.cap_sess, sess_key=acc.sess_key, nb=acc.nb)

    def request(self, details: bytes) -> Envelope:
        """Step 9: one service request under the session key."""
        s = self.state
        if not self.established or s.server is None or s.session_id is None:
            raise _err(ErrorCode.WRONG_STEP, "no open session (or a request is outstanding)")
        assert s.cap_sess is not None and s.nb is not None
        with StepTimer(self.timings_ns, 9):
            seq = s.seq + 1
            self.state = replace(s, expect=10, seq=seq)
            hdr = self._header(
                session_id=s.session_id, step=9, receiver=s.server.name, kind=Kind.SESSION, seq=seq
            )
            return self._session(hdr, ServiceRequest(s.cap_sess, s.nb, details), self._cipher())

    def _step10(self, env: Envelope) -> None:
        s = self.state
        assert s.server is not None and s.cap_sess is not None and s.na is not None
        if env.header.seq != s.seq:
            raise _err(ErrorCode.WRONG_STEP, "reply to another request")
        res = self._open(env, ServiceResult, sender=s.server, cipher=self._cipher())
        if not _same_cap(res.cap_sess, s.cap_sess):
            raise _err(ErrorCode.NOT_AUTHORISED, "reply under another CAP SESS")
        if not constant_time_equal(res.na, s.na):
            raise _err(ErrorCode.STALE_NONCE, "NA echoed by the server is not ours")
        self._commit(env)
        self.state = replace(s, expect=0, last_result=res.result)

    def end(self) -> Envelope:
        """Step 11: end the session (the server revokes CAP SESS)."""
        s = self.state
        if not self.established or s.server is None or s.session_id is None:
            raise _err(ErrorCode.WRONG_STEP, "no open session to end")
        assert s.cap_sess is not None and s.nb is not None
        with StepTimer(self.timings_ns, 11):
            seq = s.seq + 1
            cipher = self._cipher()
            self.state = replace(s, expect=-1, seq=seq, sess_key=None)
            hdr = self._header(
                session_id=s.session_id, step=11, receiver=s.server.name, kind=Kind.SESSION, seq=seq
            )
            return self._session(hdr, SessionEnd(s.cap_sess, s.nb), cipher)
