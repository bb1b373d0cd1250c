"""Capabilities and sessions under attack, against real agents: the 60 s timed capability
(with a controllable clock), CAP SESS after session end, every single-bit flip of sealed
capabilities, revoked capabilities, and clients without a (lab) certificate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as pb
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as pb_grpc
from agents.security.capability import SealedCapability
from agents.security.crypto import new_nonce
from agents.security.envelope import Kind
from agents.security.errors import ProtocolError
from agents.security.ssp import TIMED_CAP_TTL_S, SessionStart, SspApplication
from agents.security.stores import InMemoryReplayCache
from tests.adversarial.attacker import CaseLog
from tests.adversarial.harness import Lab
from tests.adversarial.test_ssp_attacks import PathTap, Session, parties


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_lab(lab_pki, tmp_path: Path, clock: Clock) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    lab = Lab(lab_pki, tmp_path, clock=clock).start()
    yield lab
    lab.close()


def test_timed_capability_expires_at_60_s(timed_lab: Lab, clock: Clock, cases: CaseLog) -> None:
    lab = timed_lab
    who = lab.scenario()
    tap = PathTap(lab)
    snap = parties(lab, [])

    just_before = Session(lab, who, tap)
    just_before.stage2()  # the server issues SERV TIME CAP at step 4
    clock.now += TIMED_CAP_TTL_S - 0.001
    just_before.step(6)
    just_before.step(7)  # accepted 1 ms before expiry
    assert just_before.msgs[8]

    late = Session(lab, who, tap)
    late.stage2()
    clock.now += TIMED_CAP_TTL_S
    late.step(6)
    cases.run("timed capability at 60.000 s",
              lambda: lab.ssp_server("edge1", "app").deliver(late.msgs[7]), "EXPIRED", snap)
    clock.now += 0.001
    cases.run("timed capability at 60.001 s",
              lambda: lab.ssp_server("edge1", "app").deliver(late.msgs[7]), "EXPIRED", snap)


def test_timed_capability_is_single_use_and_session_cap_dies_with_the_session(
        lab: Lab, cases: CaseLog) -> None:
    who = lab.scenario()
    tap = PathTap(lab)
    snap = parties(lab, [])
    s = Session(lab, who, tap).run_to(8)  # step 7 used the timed capability
    st = s.app.state
    assert st.session_id and st.server and st.serv_id and st.time_cap
    hdr = s.app._header(session_id=st.session_id, step=7, receiver=st.server.name,
                        kind=Kind.SEALED)
    second = s.app._sealed(hdr, SessionStart(who.device_cap, who.user_cap, st.serv_id,
                                             st.time_cap, new_nonce()), st.server).to_bytes()
    cases.run("timed capability used a second time",
              lambda: lab.ssp_server("edge1", "app").deliver(second),
              {"WRONG_STEP", "REVOKED"}, snap)
    s.step(8)
    s.step(9)
    s.app.handle(s.msgs[10])
    saved = s.app.state  # an established session, just before it ends
    lab.ssp_server("edge1", "app").deliver(s.app.end().to_bytes())  # CAP SESS revoked
    s.app.state = saved  # the attacker (or a buggy client) keeps using the session
    again = s.app.request(b"after the end").to_bytes()
    cases.run("CAP SESS after session end",
              lambda: lab.ssp_server("edge1", "app").deliver(again), "REVOKED", snap)
    lab.restart_edge("edge1")
    cases.run("CAP SESS after session end and server restart",
              lambda: lab.ssp_server("edge1", "app").deliver(again),
              {"WRONG_SESSION", "REVOKED"}, snap)


def _flips(data: bytes) -> Iterator[tuple[int, bytes]]:
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        yield bit, bytes(flipped)


def test_every_bit_flip_of_a_user_capability_is_refused(lab: Lab, cases: CaseLog) -> None:
    """Flip each bit of the sealed USER CAP (canonical bytes): either it no longer decodes or
    the SMF refuses the Request Service carrying it."""
    who = lab.scenario()
    smf_public = lab.smf_client().identity()
    snap = parties(lab, [])
    before = snap()
    over_the_wire = 0
    for bit, raw in _flips(who.user_cap.to_bytes()):
        try:
            cap = SealedCapability.from_bytes(raw)
        except (ProtocolError, ValueError):
            cases.count_only(f"USER CAP bit {bit} (does not decode)", rejected=True, sent=False)
            continue
        over_the_wire += 1
        app = SspApplication(who.app, smf=smf_public, user_cap=cap,
                             dev_cap=who.device_cap, replay=InMemoryReplayCache())
        message = app.request_service("nms", "1", "127.0.0.1").to_bytes()

        def attack(message: bytes = message) -> object:
            return lab.smf_client("app").request_service(message)

        cases.run(f"USER CAP bit {bit}", attack,
                  {"BAD_TAG", "UNKNOWN_PRINCIPAL", "MALFORMED", "NOT_AUTHORISED"}, snap,
                  captured=lambda: before)
    assert over_the_wire >= 256  # at least the 128 capability bits and the 128-bit tag
    assert snap() == before


def test_revoked_capabilities_are_refused(lab: Lab, cases: CaseLog) -> None:
    who = lab.scenario()
    tap = PathTap(lab)
    assert lab.smf_core is not None
    old_user, old_dev = who.user_cap, who.device_cap
    new_user = lab.smf_core.reissue_user_capability(who.user_id).capability
    new_dev = lab.smf_core.reissue_device_capability(who.device_id).capability
    snap = parties(lab, [])
    smf = lab.smf_client()
    cases.run("migrate with a revoked USER CAP",
              lambda: smf.migrate(lab.service_id, who.user_id, who.device_id, old_user,
                                  new_dev, "edge2"), "REVOKED", snap)
    cases.run("migrate with a revoked DEV CAP",
              lambda: smf.migrate(lab.service_id, who.user_id, who.device_id, new_user,
                                  old_dev, "edge2"), "REVOKED", snap)
    s = Session(lab, who, tap)  # still holding the old capabilities
    cases.run("request service with revoked capabilities",
              lambda: lab.smf_client("app").request_service(s.msgs[3]), "REVOKED", snap)
    lab.restart_smf()  # revocations persist
    smf = lab.smf_client()
    cases.run("migrate with a revoked USER CAP after SMF restart",
              lambda: smf.migrate(lab.service_id, who.user_id, who.device_id, old_user,
                                  new_dev, "edge2"), "REVOKED", snap)
    report = smf.migrate(lab.service_id, who.user_id, who.device_id, new_user, new_dev, "edge2")
    assert report.migrated


@pytest.mark.parametrize("how", ["no-client-cert", "foreign-ca", "plaintext"])
def test_client_without_a_lab_certificate_is_refused(lab: Lab, cases: CaseLog,
                                                     how: str) -> None:
    who = lab.scenario()
    assert lab.smf is not None
    target = f"127.0.0.1:{lab.smf.port}"
    pki = lab.pki
    if how == "no-client-cert":
        creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.cert_path.read_bytes())
        channel = grpc.secure_channel(target, creds)
    elif how == "foreign-ca":
        c = pki.foreign_client
        creds = grpc.ssl_channel_credentials(
            root_certificates=pki.ca.cert_path.read_bytes(),
            private_key=c.key_path.read_bytes(), certificate_chain=c.cert_path.read_bytes())
        channel = grpc.secure_channel(target, creds)
    else:
        channel = grpc.insecure_channel(target)
    snap = parties(lab, [])
    before = snap()
    stub = pb_grpc.SmfServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.MigrateService(pb.MigrateServiceRequest(
            service_id=lab.service_id, user_id=who.user_id, device_id=who.device_id,
            user_capability=who.user_cap.to_bytes(), device_capability=who.device_cap.to_bytes(),
            destination="edge2"), timeout=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
    cases.count_only(f"client {how}", rejected=True, sent=True)
    channel.close()
    assert snap() == before
    assert lab.smf_client().service(lab.service_id).location == "edge1"
