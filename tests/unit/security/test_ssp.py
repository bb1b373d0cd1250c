"""SSP: happy path, timed/private/session capabilities, and per-step attacks."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest

from agents.security.capability import CapType, ObjectId, SealedCapabilityAuthority
from agents.security.crypto import Identity, SessionCipher, new_symmetric_key
from agents.security.envelope import Endpoint, Envelope, Kind
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.ssp import (
    PROTOCOL,
    RegisterService,
    RequestAccepted,
    RequestService,
    ServerInfo,
    ServiceRegistered,
    ServiceRequest,
    ServiceResult,
    SessionAccepted,
    SessionEnd,
    SessionStart,
    SspApplication,
    SspCms,
    SspServer,
    SspSmf,
    UsageAccepted,
    UsageRequest,
)
from agents.security.ssp_driver import run_ssp_in_process
from agents.security.stores import InMemoryReplayCache, InMemoryRevocationStore
from tests.unit.security.conftest import FakeClock

RECEIVER = {1: "smf", 2: "cms", 3: "smf", 4: "server", 5: "smf", 6: "app", 7: "server",
            8: "app", 9: "server", 10: "app", 11: "server"}  # fmt: skip
SENDER = {1: "cms", 2: "smf", 3: "app", 4: "smf", 5: "server", 6: "smf", 7: "app",
          8: "server", 9: "app", 10: "server", 11: "app"}  # fmt: skip
IDENT = {"smf": "smf", "cms": "cms", "server": "server1", "app": "appl"}
STEPS = list(range(1, 12))
SERVICE = ("nms", "1.0")


def echo_handler(details: bytes) -> bytes:
    return b"done:" + details


@dataclass
class World:
    cms: SspCms
    smf: SspSmf
    server: SspServer
    app: SspApplication
    infos: tuple[ServerInfo, ...]
    caches: dict[str, InMemoryReplayCache]
    stores: dict[str, InMemoryRevocationStore]
    clock: FakeClock
    ids: dict[str, Identity]
    before: dict[int, Any] = field(default_factory=dict)

    def party(self, role: str) -> Any:
        return getattr(self, role)


def make_world(ids: dict[str, Identity]) -> World:
    clock = FakeClock()
    caches = {r: InMemoryReplayCache() for r in ("cms", "smf", "server", "app")}
    stores = {r: InMemoryRevocationStore() for r in ("smf", "server")}
    smf_auth = SealedCapabilityAuthority(
        "smf", secrets.token_bytes(32), store=stores["smf"],
        master_types=[CapType.USER, CapType.DEVICE, CapType.SERVICE, CapType.SERVER], clock=clock,
    )  # fmt: skip
    srv_auth = SealedCapabilityAuthority(
        "server1", secrets.token_bytes(32), store=stores["server"],
        master_types=[CapType.SESSION], clock=clock,
    )  # fmt: skip
    smf = SspSmf(ids["smf"], authority=smf_auth, cms={"cms": ids["cms"].public},
                 replay=caches["smf"], clock=clock)  # fmt: skip
    server = SspServer(ids["server1"], smf=ids["smf"].public, authority=srv_auth,
                       ip="10.0.0.7", port=9000, handler=echo_handler,
                       replay=caches["server"], clock=clock)  # fmt: skip
    app = SspApplication(ids["appl"], smf=ids["smf"].public,
                         user_cap=smf.register_user("alice", holder=ids["appl"].public),
                         dev_cap=smf.register_device("car7", "alice", holder=ids["appl"].public),
                         replay=caches["app"], clock=clock)  # fmt: skip
    cms = SspCms(ids["cms"], smf=ids["smf"].public, replay=caches["cms"], clock=clock)
    infos = (ServerInfo(ids["server1"].public, "10.0.0.7", 9000),)
    return World(cms, smf, server, app, infos, caches, stores, clock, ids)


def snapshot(w: World, role: str) -> Any:
    extra = len(w.stores[role]) if role in w.stores else None
    return (w.party(role).snapshot(), len(w.caches[role]), extra)


def restore(w: World, role: str, snap: Any) -> None:
    state = snap[0]
    if role == "smf":
        w.smf.services, w.smf.sessions = dict(state[0]), dict(state[1])
        w.smf._cms_sessions = set(state[2])
    elif role == "server":
        w.server.provisioned, w.server.sessions = dict(state[0]), dict(state[1])
    else:
        w.party(role).state = state


def run_to(w: World, k: int) -> Envelope:
    m: Envelope | None = w.cms.register_service(*SERVICE, w.infos)
    for step in STEPS:
        assert m is not None
        if step == k:
            return m
        role = RECEIVER[step]
        w.before[step] = snapshot(w, role)
        m = w.party(role).handle(m.to_bytes())
        if step == 2:
            reg = w.cms.state.registered
            assert reg is not None
            w.server.provision(reg.serv_id, reg.serv_cap)
            m = w.app.request_service(*SERVICE, "10.0.0.2")
        elif step == 8:
            m = w.app.request(b"read block 0")
        elif step == 10:
            m = w.app.end()
    raise AssertionError("unreachable")


def rejected(w: World, role: str, message: bytes | Envelope, code: ErrorCode) -> None:
    before = snapshot(w, role)
    with pytest.raises(ProtocolError) as err:
        w.party(role).handle(message)
    assert err.value.code is code, err.value
    assert snapshot(w, role) == before


# --- happy path and capability behaviour ----------------------------------------------------


def test_full_session(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    run = run_ssp_in_process(
        w.cms, w.smf, {"server1": w.server}, w.app, service=SERVICE, server_infos=w.infos,
        requests=[b"a", b"b", b"c"],
    )  # fmt: skip
    assert run.results == [b"done:a", b"done:b", b"done:c"]
    assert sorted(run.stage_ns) == [1, 2, 3, 4, 5]
    assert sorted(run.step_ns) == STEPS
    sess = w.server.sessions[run.session_id]
    assert sess.phase == "ended" and sess.last_seq == 4
    assert sess.cap_sess is not None
    cap = w.server.authority.verify  # CAP SESS and the timed capability are both revoked now
    for c in (sess.cap_sess, sess.time_cap):
        with pytest.raises(ProtocolError) as err:
            cap(c, subjects=[w.app.user_cap, w.app.dev_cap])
        assert err.value.code is ErrorCode.REVOKED
    assert w.app.state.sess_key is None


def test_timed_capability_is_a_private_60s_proxy(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    run_to(w, 6)
    tc = w.server.sessions[next(iter(w.server.sessions))].time_cap
    cap = tc.cap
    assert not cap.is_master and cap.is_private and not cap.can_change
    assert cap.cap_type == CapType.SERVICE
    assert tc.expires_at_ms == w.server.authority.now_ms() + 60_000


@pytest.mark.parametrize(("delay", "code"), [(59.999, None), (60.0, ErrorCode.EXPIRED)])
def test_timed_capability_expiry(ids: dict[str, Identity], delay: float, code: Any) -> None:
    w = make_world(ids)
    m7 = run_to(w, 7)
    w.clock.t += delay
    if code is None:
        assert w.server.handle(m7) is not None
    else:
        rejected(w, "server", m7, code)


def test_timed_capability_bound_to_user_and_device(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    m7 = run_to(w, 7)
    s = w.app.state
    assert s.time_cap is not None and s.server is not None and s.serv_id is not None
    other_user = w.smf.register_user("eve", holder=ids["appl"].public)
    body = SessionStart(w.app.dev_cap, other_user, s.serv_id, s.time_cap, b"n" * 16)
    hdr = dataclasses.replace(m7.header, msg_id=secrets.token_bytes(16))
    rejected(w, "server", w.app._sealed(hdr, body, s.server), ErrorCode.NOT_AUTHORISED)


def test_unknown_service_refused(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    run_to(w, 3)
    w.app.state = type(w.app.state)()
    rejected(w, "smf", w.app.request_service("nms", "9.9", "10.0.0.2"), ErrorCode.UNKNOWN_SERVICE)


def test_revoked_user_capability_refused(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    m3 = run_to(w, 3)
    w.smf.authority.revoke(w.app.user_cap)
    before = snapshot(w, "smf")
    with pytest.raises(ProtocolError) as err:
        w.smf.handle(m3)
    assert err.value.code is ErrorCode.REVOKED
    assert snapshot(w, "smf")[:2] == before[:2]


def test_forged_user_capability_refused(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    run_to(w, 3)
    rogue = SealedCapabilityAuthority(
        "smf", secrets.token_bytes(32), store=InMemoryRevocationStore(), master_types=[CapType.USER]
    )
    w.app.user_cap = rogue.issue_master(CapType.USER, ObjectId.from_name("alice"), 0)
    w.app.state = type(w.app.state)()
    rejected(w, "smf", w.app.request_service(*SERVICE, "10.0.0.2"), ErrorCode.BAD_TAG)


def test_request_after_session_end_is_refused(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    m9 = run_to(w, 9)
    reply = w.server.handle(m9)
    assert reply is not None
    w.app.handle(reply)  # request 1 served
    idle = w.app.state
    held = w.app.request(b"late")  # seq 2, never delivered before the end
    w.app.state = idle
    end = w.app.end()  # seq 2 as well: the held request is now stale
    assert w.server.handle(end) is None
    rejected(w, "server", held, ErrorCode.REVOKED)


def test_old_sequence_number_refused(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    m9 = run_to(w, 9)
    reply = w.server.handle(m9)
    assert reply is not None
    w.app.handle(reply)
    w.app.state = dataclasses.replace(w.app.state, seq=0)  # as if the app lost its counter
    again = w.app.request(b"read block 0")  # fresh bytes, same seq 1
    rejected(w, "server", again, ErrorCode.REPLAY)


def test_serv_cap_must_be_the_provisioned_one(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    m4 = run_to(w, 4)
    w.server.provisioned = {k: w.smf.register_user("x", holder=ids["appl"].public)
                            for k in w.server.provisioned}
    rejected(w, "server", m4, ErrorCode.NOT_AUTHORISED)


# --- attacks at every step -------------------------------------------------------------------


@pytest.mark.parametrize("k", STEPS)
def test_replayed_message(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    w.party(RECEIVER[k]).handle(m.to_bytes())
    rejected(w, RECEIVER[k], m.to_bytes(), ErrorCode.REPLAY)


@pytest.mark.parametrize("k", [s for s in STEPS if s not in (1, 3, 4)])
def test_message_from_another_session(ids: dict[str, Identity], k: int) -> None:
    # steps 1, 3 and 4 open a session at their receiver: another session is just a new one
    a, b = make_world(ids), make_world(ids)
    run_to(a, k)
    rejected(a, RECEIVER[k], run_to(b, k), ErrorCode.WRONG_SESSION)


REORDER = {2: (None, ErrorCode.WRONG_STEP), 5: (3, ErrorCode.WRONG_SESSION),
           6: (None, ErrorCode.WRONG_STEP), 7: (4, ErrorCode.WRONG_SESSION),
           8: (6, ErrorCode.WRONG_STEP), 9: (7, ErrorCode.WRONG_STEP),
           10: (8, ErrorCode.WRONG_STEP), 11: (7, ErrorCode.WRONG_STEP)}  # fmt: skip


@pytest.mark.parametrize("k", sorted(REORDER))
def test_reordered_message(ids: dict[str, Identity], k: int) -> None:
    """Step k arrives before the step it depends on was handled by its receiver."""
    w = make_world(ids)
    m = run_to(w, k)
    role = RECEIVER[k]
    restore_to, code = REORDER[k]
    if restore_to is None:
        w.party(role).state = type(w.party(role).state)()
    else:
        restore(w, role, w.before[restore_to])
    rejected(w, role, m, code)


@pytest.mark.parametrize("k", STEPS)
def test_modified_body(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    body = bytearray(m.body)
    body[len(body) // 2] ^= 0x01
    code = ErrorCode.DECRYPT_FAILED if k in (3, 9, 10, 11) else ErrorCode.BAD_SIGNATURE
    rejected(w, RECEIVER[k], dataclasses.replace(m, body=bytes(body)), code)


@pytest.mark.parametrize("k", STEPS)
def test_modified_signature_or_header(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    moved = dataclasses.replace(
        m, header=dataclasses.replace(m.header, sent_at_ms=m.header.sent_at_ms + 1)
    )
    code = ErrorCode.DECRYPT_FAILED if k in (3, 9, 10, 11) else ErrorCode.BAD_SIGNATURE
    rejected(w, RECEIVER[k], moved, code)
    if m.header.kind is not Kind.SESSION:
        sig = bytearray(m.signature)
        sig[-1] ^= 0x01
        bad = dataclasses.replace(m, signature=bytes(sig))
        rejected(w, RECEIVER[k], bad, ErrorCode.BAD_SIGNATURE)


@pytest.mark.parametrize("k", STEPS)
def test_reflected_message(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    rejected(w, SENDER[k], m, ErrorCode.REFLECTED)


class Mallory(Endpoint):
    PROTOCOL = PROTOCOL


def forged(w: World, k: int) -> Any:
    who = w.ids["mallory"].public
    rogue = SealedCapabilityAuthority(
        "smf", secrets.token_bytes(32), store=InMemoryRevocationStore(), master_types=list(CapType)
    )
    cap = rogue.issue_master(CapType.USER, ObjectId(1), 0)
    info = ServerInfo(who, "10.6.6.6", 1)
    n = b"n" * 16
    return {
        1: RegisterService("evil", "1", (info,)),
        2: ServiceRegistered("nms", "1.0", w.infos, "svc-x", cap),
        3: RequestService("nms", "1.0", cap, cap, who, "10.6.6.6"),
        4: UsageRequest("svc-x", cap, cap, cap, "10.6.6.6", who),
        5: UsageAccepted(cap, cap, cap, "10.6.6.6", 1),
        6: RequestAccepted(cap, cap, cap, "10.6.6.6", 1, who, "svc-x"),
        7: SessionStart(cap, cap, "svc-x", cap, n),
        8: SessionAccepted(cap, cap, cap, new_symmetric_key(), n, n),
        9: ServiceRequest(cap, n, b"x"),
        10: ServiceResult(cap, n, b"x"),
        11: SessionEnd(cap, n),
    }[k]


def inject(w: World, k: int, template: Envelope, as_name: str) -> Envelope:
    ep = Mallory(w.ids["mallory"], replay=InMemoryReplayCache(), clock=w.clock)
    ep.name = as_name
    t = template.header
    h = ep._header(session_id=t.session_id, step=k, receiver=t.receiver, kind=t.kind, seq=t.seq)
    if h.kind is Kind.SESSION:
        return ep._session(h, forged(w, k), SessionCipher(new_symmetric_key()))
    return ep._sealed(h, forged(w, k), w.ids[IDENT[RECEIVER[k]]].public)


@pytest.mark.parametrize("k", STEPS)
def test_injected_message_from_unknown_principal(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    # step 3: the application key is self-asserted; the forged capabilities give it away
    code = ErrorCode.BAD_TAG if k == 3 else ErrorCode.UNKNOWN_PRINCIPAL
    rejected(w, RECEIVER[k], inject(w, k, m, "mallory"), code)


@pytest.mark.parametrize("k", STEPS)
def test_injected_message_impersonating_the_peer(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    # step 3: the embedded (self-asserted) key carries mallory's name, not the header's
    special = {3: ErrorCode.UNKNOWN_PRINCIPAL, 9: ErrorCode.DECRYPT_FAILED,
               10: ErrorCode.DECRYPT_FAILED, 11: ErrorCode.DECRYPT_FAILED}  # fmt: skip
    code = special.get(k, ErrorCode.BAD_SIGNATURE)
    rejected(w, RECEIVER[k], inject(w, k, m, m.header.sender), code)
