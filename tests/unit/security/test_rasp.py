"""RASP: happy path, Algorithms 1-4, and for every step the six attacks of the brief."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.security.crypto import Identity, new_symmetric_key
from agents.security.envelope import Endpoint, Envelope, Kind
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import (
    PROTOCOL,
    Advert,
    CloudCertificate,
    CloudCheckRequest,
    LocationUpdate,
    MigrationAck,
    MigrationInit,
    MigrationRequest,
    MigrationResponse,
    MigrationTransfer,
    RaspCloud,
    RaspRegistry,
    RaspServer,
    RasTable,
    Resources,
    ServerCertificate,
    ServerCheckRequest,
    SessionKeyTransfer,
    TransferDescriptor,
    free_resources,
    run_rasp_in_process,
    server_accepts,
    should_advertise,
)
from agents.security.stores import InMemoryReplayCache
from agents.security.transfer_ticket import TransferTicket, issue_ticket
from tests.unit.security.conftest import FakeClock

MAX_CB = Resources(cpu=8000, memory=16384, storage=100_000, network=1000)
ALLOC_CB = Resources(cpu=2000, memory=4096, storage=10_000, network=100)
NEED = Resources(cpu=1000, memory=2048, storage=5000, network=50)
TRANSFER = TransferDescriptor("nms", "registry.lab:5000/nms:1", "sha256:" + "ab" * 32, 52_000_000)

RECEIVER = {1: "sa", 2: "r", 3: "sa", 4: "cb", 5: "r", 6: "cb", 7: "sa", 8: "cb", 9: "sa",
            10: "cb", 11: "sa", 12: "r"}  # fmt: skip
SENDER = {1: "cb", 2: "sa", 3: "r", 4: "sa", 5: "cb", 6: "r", 7: "cb", 8: "sa", 9: "cb",
          10: "sa", 11: "cb", 12: "cb"}  # fmt: skip
ALL_STEPS = list(range(1, 13))


@dataclass
class World:
    sa: RaspServer
    cb: RaspCloud
    r: RaspRegistry
    caches: dict[str, InMemoryReplayCache]
    clock: FakeClock
    ids: dict[str, Identity]
    before: dict[int, Any] = field(default_factory=dict)  # receiver snapshot before step k

    def party(self, role: str) -> Any:
        return {"sa": self.sa, "cb": self.cb, "r": self.r}[role]


def make_world(ids: dict[str, Identity], *, register_sa: bool = True) -> World:
    clock = FakeClock()
    table = RasTable()
    table.register_cloud(ids["cb"].public, MAX_CB, ALLOC_CB)
    if register_sa:
        table.register_server(ids["sa"].public)
    caches = {k: InMemoryReplayCache() for k in ("sa", "cb", "r")}
    reg = ids["registry"].public
    return World(
        sa=RaspServer(ids["sa"], registry=reg, requirement=NEED, transfer=TRANSFER,
                      replay=caches["sa"], clock=clock),
        cb=RaspCloud(ids["cb"], registry=reg, maximum=MAX_CB, allocated=ALLOC_CB,
                     replay=caches["cb"], clock=clock),
        r=RaspRegistry(ids["registry"], table=table, replay=caches["r"], clock=clock),
        caches=caches,
        clock=clock,
        ids=ids,
    )  # fmt: skip


def snapshot(w: World, role: str) -> Any:
    return (w.party(role).snapshot(), len(w.caches[role]))


def restore(w: World, role: str, snap: Any) -> None:
    state, _ = snap
    if role == "r":
        w.r.sessions, w.r.table = dict(state[0]), copy.deepcopy(state[1])
    else:
        w.party(role).state = state


def run_to(w: World, k: int) -> Envelope:
    """Run honestly until step k's message exists; return it undelivered."""
    m: Envelope | None = w.cb.advertise(w.sa.name)
    for step in ALL_STEPS:
        assert m is not None
        if step == k:
            return m
        role = RECEIVER[step]
        w.before[step] = snapshot(w, role)
        out = w.party(role).handle(m.to_bytes())
        m = w.cb.report_location() if step == 11 else out
    raise AssertionError("unreachable")


def rejected(w: World, role: str, message: bytes | Envelope, code: ErrorCode) -> None:
    """Deliver `message` to `role`; it must fail with `code` and change nothing."""
    before = snapshot(w, role)
    with pytest.raises(ProtocolError) as err:
        w.party(role).handle(message)
    assert err.value.code is code, err.value
    after = snapshot(w, role)
    assert after[1] == before[1]
    if role == "r":
        assert after[0][0] == before[0][0] and after[0][1] == before[0][1]
    else:
        assert after[0] == before[0]


# --- happy path -------------------------------------------------------------------------


def test_full_run(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    run = run_rasp_in_process(w.sa, w.cb, w.r)
    assert w.sa.done and w.cb.state.expect == 0
    assert w.sa.state.ksc == w.cb.state.ksc and w.sa.state.ksc is not None
    assert w.r.table.locations["nms"] == "cb"
    assert w.r.table.allocations[("sa", "cb")] == NEED
    assert w.r.table.clouds["cb"].allocated == ALLOC_CB.plus(NEED)
    assert w.cb.state.allocated == ALLOC_CB.plus(NEED)
    assert w.cb.state.transfer == TRANSFER
    assert sorted(run.stage_ns) == [1, 2, 3, 4] and all(v > 0 for v in run.stage_ns.values())
    assert sorted(run.step_ns) == ALL_STEPS
    assert sorted(run.message_bytes) == ALL_STEPS
    assert run.session_id == w.cb.state.session_id
    assert w.r.sessions[run.session_id].done == 12


def test_secrets_never_travel_in_clear(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    wire: list[bytes] = []
    m: Envelope | None = w.cb.advertise("sa")
    for step in ALL_STEPS:
        assert m is not None
        wire.append(m.to_bytes())
        out = w.party(RECEIVER[step]).handle(wire[-1])
        m = w.cb.report_location() if step == 11 else out
    s = w.sa.state
    assert s.ksc and s.ns and s.nc
    for secret in (s.ksc, s.ns, s.nc, TRANSFER.image_ref.encode()):
        assert not any(secret in blob for blob in wire)


# --- the Resource Allocation Algorithm -------------------------------------------------------

res = st.builds(Resources, *(st.integers(0, 10_000) for _ in range(4)))


@given(res, res)
def test_free_is_max_minus_alloc(maximum: Resources, alloc: Resources) -> None:
    free = free_resources(maximum, alloc)
    for f, m, a in zip(free.values(), maximum.values(), alloc.values(), strict=True):
        assert f == max(m - a, 0)
    assert should_advertise(free) == any(v > 0 for v in free.values())


@given(res, res)
def test_server_accepts_only_if_everything_fits(free: Resources, req: Resources) -> None:
    fits = all(r <= f for r, f in zip(req.values(), free.values(), strict=True))
    assert server_accepts(free, req) == (fits and any(req.values()))


def test_negative_resources_refused() -> None:
    with pytest.raises(ValueError):
        Resources(cpu=-1)


def test_full_cloud_does_not_advertise(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    w.cb.state = dataclasses.replace(w.cb.state, allocated=MAX_CB)
    with pytest.raises(ProtocolError) as err:
        w.cb.advertise("sa")
    assert err.value.code is ErrorCode.INSUFFICIENT_RESOURCES


def test_server_ignores_advert_that_does_not_fit(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    w.sa.requirement = Resources(cpu=7000)  # FREE cpu is 6000
    rejected(w, "sa", run_to(w, 1), ErrorCode.INSUFFICIENT_RESOURCES)


def test_alg3_unregistered_cloud_refused_by_registry(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    del w.r.table.clouds["cb"]
    rejected(w, "r", run_to(w, 2), ErrorCode.UNKNOWN_PRINCIPAL)


def test_alg3_over_advertising_cloud_refused(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    w.r.table.clouds["cb"].allocated = Resources(cpu=7500)  # registry knows less is free
    rejected(w, "r", run_to(w, 2), ErrorCode.INSUFFICIENT_RESOURCES)


def test_alg4_unregistered_server_refused(ids: dict[str, Identity]) -> None:
    w = make_world(ids, register_sa=False)
    rejected(w, "r", run_to(w, 2), ErrorCode.UNKNOWN_PRINCIPAL)


def test_alg4_request_must_fit_registry_view(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    m5 = run_to(w, 5)
    w.r.table.clouds["cb"].allocated = Resources(cpu=7500, memory=15000)
    rejected(w, "r", m5, ErrorCode.INSUFFICIENT_RESOURCES)


def test_stale_message_refused(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    m3 = run_to(w, 3)
    w.clock.t += 121
    rejected(w, "sa", m3, ErrorCode.EXPIRED)


# --- the six attacks, at every step ----------------------------------------------------------


@pytest.mark.parametrize("k", ALL_STEPS)
def test_replayed_message(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    w.party(RECEIVER[k]).handle(m.to_bytes())
    rejected(w, RECEIVER[k], m.to_bytes(), ErrorCode.REPLAY)


@pytest.mark.parametrize("k", [s for s in ALL_STEPS if s not in (1, 2)])
def test_message_from_another_session(ids: dict[str, Identity], k: int) -> None:
    # steps 1 and 2 open a session at their receiver, so "another session" is just a new one
    a, b = make_world(ids), make_world(ids)
    run_to(a, k)
    rejected(a, RECEIVER[k], run_to(b, k), ErrorCode.WRONG_SESSION)


@pytest.mark.parametrize("k", [s for s in ALL_STEPS if s not in (1, 2)])
def test_reordered_message(ids: dict[str, Identity], k: int) -> None:
    """Step k arrives while its receiver still expects its previous step."""
    w = make_world(ids)
    m = run_to(w, k)
    role = RECEIVER[k]
    earlier = [s for s in ALL_STEPS if s < k and RECEIVER[s] == role]
    if earlier:
        restore(w, role, w.before[earlier[-1]])
    else:  # CB's first step is 4: before it advertised at all
        w.cb.state = type(w.cb.state)()
    expected = ErrorCode.WRONG_SESSION if (role == "r" and k == 5) else ErrorCode.WRONG_STEP
    if role == "cb" and not earlier:
        expected = ErrorCode.WRONG_STEP
    rejected(w, role, m, expected)


MODIFIED_BODY = {1: ErrorCode.BAD_SIGNATURE, 4: ErrorCode.DECRYPT_FAILED,
                 9: ErrorCode.DECRYPT_FAILED, 10: ErrorCode.DECRYPT_FAILED,
                 11: ErrorCode.DECRYPT_FAILED}  # fmt: skip


@pytest.mark.parametrize("k", ALL_STEPS)
def test_modified_body(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    body = bytearray(m.body)
    body[-1] ^= 0x01
    bad = dataclasses.replace(m, body=bytes(body))
    rejected(w, RECEIVER[k], bad, MODIFIED_BODY.get(k, ErrorCode.BAD_SIGNATURE))


@pytest.mark.parametrize("k", ALL_STEPS)
def test_modified_signature_or_header(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    if m.header.kind is Kind.SESSION:  # no signature: tamper with the authenticated header
        bad = dataclasses.replace(m, header=dataclasses.replace(m.header, seq=7))
        rejected(w, RECEIVER[k], bad, ErrorCode.DECRYPT_FAILED)
        return
    sig = bytearray(m.signature)
    sig[0] ^= 0x80
    rejected(w, RECEIVER[k], dataclasses.replace(m, signature=bytes(sig)), ErrorCode.BAD_SIGNATURE)
    moved = dataclasses.replace(m, header=dataclasses.replace(m.header, msg_id=b"\0" * 16))
    code = ErrorCode.DECRYPT_FAILED if k == 4 else ErrorCode.BAD_SIGNATURE
    rejected(w, RECEIVER[k], moved, code)


@pytest.mark.parametrize("k", ALL_STEPS)
def test_reflected_message(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    rejected(w, SENDER[k], m, ErrorCode.REFLECTED)


class Mallory(Endpoint):
    PROTOCOL = PROTOCOL


def forged_payload(w: World, k: int, who: Identity) -> Any:
    r = Resources(cpu=1)
    pk = who.public
    return {
        1: Advert(pk, free_resources(MAX_CB, ALLOC_CB)),
        2: CloudCheckRequest(pk.name, "cb", r, b""),
        3: CloudCertificate(pk, r, "sa"),
        4: MigrationRequest(b"n" * 16, pk, r),
        5: ServerCheckRequest(pk.name, pk, r),
        6: ServerCertificate(pk, r, "cb"),
        7: MigrationResponse(b"n" * 16, b"n" * 16, pk.name),
        8: SessionKeyTransfer(b"n" * 16, new_symmetric_key()),
        9: MigrationInit("sa"),
        10: MigrationTransfer(TRANSFER, r, issue_ticket(who, session_id=b"\0" * 16,
                                                        cloud="cb", service="nms")),
        11: MigrationAck("nms", "x"),
        12: LocationUpdate("nms", "cb", "sa", issue_ticket(who, session_id=b"\0" * 16,
                                                           cloud="cb", service="nms")),
    }[k]


def inject(w: World, k: int, template: Envelope, *, as_name: str) -> Envelope:
    """Mallory (unregistered key) builds step k in the right session, claiming `as_name`."""
    mallory = w.ids["mallory"]
    ep = Mallory(mallory, replay=InMemoryReplayCache(), clock=w.clock)
    ep.name = as_name
    h = ep._header(session_id=template.header.session_id, step=k,
                   receiver=template.header.receiver, kind=template.header.kind)  # fmt: skip
    payload = forged_payload(w, k, mallory)
    if h.kind is Kind.SIGNED:
        return ep._signed(h, payload)
    if h.kind is Kind.SEALED:
        return ep._sealed(h, payload, w.ids[{"sa": "sa", "cb": "cb", "r": "registry"}
                                          [RECEIVER[k]]].public)  # fmt: skip
    from agents.security.crypto import SessionCipher

    return ep._session(h, payload, SessionCipher(new_symmetric_key()))


# where the claimed key is self-asserted, detection is deferred (see the next tests)
IMPERSONATION = {k: ErrorCode.BAD_SIGNATURE for k in ALL_STEPS}
IMPERSONATION.update({9: ErrorCode.DECRYPT_FAILED, 10: ErrorCode.DECRYPT_FAILED,
                      11: ErrorCode.DECRYPT_FAILED})  # fmt: skip
UNKNOWN_NAME = {k: ErrorCode.UNKNOWN_PRINCIPAL for k in ALL_STEPS}


@pytest.mark.parametrize("k", [s for s in ALL_STEPS if s not in (1, 4)])
def test_injected_message_impersonating_the_peer(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    rejected(w, RECEIVER[k], inject(w, k, m, as_name=m.header.sender), IMPERSONATION[k])


@pytest.mark.parametrize("k", [s for s in ALL_STEPS if s != 1])
def test_injected_message_from_unknown_principal(ids: dict[str, Identity], k: int) -> None:
    w = make_world(ids)
    m = run_to(w, k)
    rejected(w, RECEIVER[k], inject(w, k, m, as_name="mallory"), UNKNOWN_NAME[k])


def test_injected_advert_is_caught_by_the_registry(ids: dict[str, Identity]) -> None:
    """Step 1 keys are self-asserted (SA cannot know pkC yet): SA accepts provisionally,
    the registry refuses the unregistered advertiser at step 2."""
    w = make_world(ids)
    m1 = run_to(w, 1)
    fake = inject(w, 1, m1, as_name="mallory")
    m2 = w.sa.handle(fake)
    assert m2 is not None
    rejected(w, "r", m2, ErrorCode.UNKNOWN_PRINCIPAL)


def test_advert_impersonating_cb_with_other_key_caught(ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    m1 = run_to(w, 1)
    # an embedded key of another name is refused at once
    rejected(w, "sa", inject(w, 1, m1, as_name="cb"), ErrorCode.UNKNOWN_PRINCIPAL)
    # claiming cb's name with mallory's key passes SA (it cannot know pkC) but not R
    mallory = Mallory(ids["mallory"], replay=InMemoryReplayCache(), clock=w.clock)
    mallory.name = "cb"
    claimed = dataclasses.replace(ids["mallory"].public, name="cb")
    fake = mallory._signed(
        mallory._header(session_id=m1.header.session_id, step=1, receiver="sa", kind=Kind.SIGNED),
        Advert(claimed, free_resources(MAX_CB, ALLOC_CB)),
    )
    m2 = w.sa.handle(fake)
    assert m2 is not None
    rejected(w, "r", m2, ErrorCode.BAD_SIGNATURE)


def test_step4_impersonation_caught_at_step6(ids: dict[str, Identity]) -> None:
    """Step 4 keys are self-asserted (CB cannot know pkS yet): the registry's certificate
    at step 6 names the real key and CB refuses the mismatch."""
    w = make_world(ids)
    m4 = run_to(w, 4)
    fake = inject(w, 4, m4, as_name="sa")
    fake_payload = MigrationRequest(b"n" * 16, ids["mallory"].public, NEED)
    mallory = Mallory(ids["mallory"], replay=InMemoryReplayCache(), clock=w.clock)
    mallory.name = "sa"
    # a well-formed request whose embedded key has the right name but the wrong bytes
    claimed = dataclasses.replace(ids["mallory"].public, name="sa")
    fake = mallory._sealed(fake.header, dataclasses.replace(fake_payload, server=claimed),
                           ids["cb"].public)  # fmt: skip
    m5 = w.cb.handle(fake)
    assert m5 is not None
    with pytest.raises(ProtocolError) as err:
        w.r.handle(m5)
    assert err.value.code is ErrorCode.KEY_MISMATCH


# --- step 12 is bound to step 10's transfer (transfer ticket) ---------------------------------


def _step12(w: World, body: LocationUpdate) -> Envelope:
    s = w.cb.state
    assert s.session_id is not None
    hdr = w.cb._header(session_id=s.session_id, step=12, receiver="registry", kind=Kind.SEALED)
    return w.cb._sealed(hdr, body, w.ids["registry"].public)


def test_step12_for_a_service_step10_did_not_transfer_is_refused(
        ids: dict[str, Identity]) -> None:
    w = make_world(ids)
    run_to(w, 12)
    s = w.cb.state
    assert s.ticket is not None and s.ticket.service == "nms" and s.session_id is not None
    rejected(w, "r", _step12(w, LocationUpdate("other", "cb", "sa", s.ticket)),
             ErrorCode.NOT_AUTHORISED)
    own = issue_ticket(ids["cb"], session_id=s.session_id, cloud="cb", service="other")
    rejected(w, "r", _step12(w, LocationUpdate("other", "cb", "sa", own)),
             ErrorCode.NOT_AUTHORISED)  # the cloud's own signature is no ticket
    claimed = dataclasses.replace(own, server="sa")
    rejected(w, "r", _step12(w, LocationUpdate("other", "cb", "sa", claimed)),
             ErrorCode.BAD_SIGNATURE)
    assert "other" not in w.r.table.locations and ("sa", "cb") not in w.r.table.allocations
    w.r.handle(_step12(w, LocationUpdate("nms", "cb", "sa", s.ticket)).to_bytes())
    assert w.r.table.locations == {"nms": "cb"}


def test_step10_ticket_must_name_the_transferred_service(ids: dict[str, Identity]) -> None:
    """The cloud refuses an M_Trf whose ticket names another service, session or signer."""
    w = make_world(ids)
    run_to(w, 10)
    sid = w.sa.state.session_id
    assert sid is not None

    def m10(ticket: TransferTicket) -> Envelope:
        hdr = w.sa._header(session_id=sid, step=10, receiver="cb", kind=Kind.SESSION)
        return w.sa._session(hdr, MigrationTransfer(TRANSFER, NEED, ticket), w.sa._cipher())

    good = issue_ticket(ids["sa"], session_id=sid, cloud="cb", service="nms")
    for bad, code in [
        (issue_ticket(ids["sa"], session_id=sid, cloud="cb", service="other"),
         ErrorCode.NOT_AUTHORISED),
        (issue_ticket(ids["sa"], session_id=b"\1" * 16, cloud="cb", service="nms"),
         ErrorCode.NOT_AUTHORISED),
        (dataclasses.replace(good, signature=ids["cb"].sign(good.signed_bytes())),
         ErrorCode.BAD_SIGNATURE),
    ]:
        rejected(w, "cb", m10(bad), code)
    w.cb.handle(m10(good).to_bytes())
    assert w.cb.state.ticket == good
