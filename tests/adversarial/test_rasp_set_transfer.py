"""SetTransfer (the diff-first order's split of RASP) under attack, between real agents.

In the diff-first order the SMF runs RASP steps 1-8 before the source stops and tells the
source's Server SA the pushed image afterwards (RaspEndpointService.SetTransfer), so step 10's
M_Trf still carries it under Ksc. The RPC must not become a way to change what a session
transfers: it is refused to every role but the SMF (the authorization matrix crosses it with
every caller; one explicit case here), after step 10, for another service than the one
prepared, a second time (replay), for a session that is not a server session of that host, and
with unbounded or malformed fields -- each refusal leaves every party's state unchanged.
"""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from agents.node.rasp_core import MAX_IMAGE_BYTES, MAX_IMAGE_REF
from agents.security.rasp import TransferDescriptor
from tests.adversarial.attacker import CaseLog
from tests.adversarial.harness import SERVICE_NEEDS, Lab
from tests.adversarial.test_rasp_attacks import Driver, snapshot

DIGEST = "sha256:" + "ab" * 32
PUSHED = TransferDescriptor("nms", "registry.lab:5000/edge1/nms:m-1-1", DIGEST, 4_000_000)


def _begin(lab: Lab, mid: str) -> Driver:
    """Steps 1-8 delivered: the source's session expects step 9 (the diff order's stop)."""
    lab.register_hosts()
    return Driver(lab, mid).run_to(9)


def test_set_transfer_after_step_8_is_what_step_10_carries_to_the_destination(lab: Lab
                                                                             ) -> None:
    a = _begin(lab, "m-set")
    assert lab.edges["edge1"].rasp.servers[a.sid].transfer == lab.transfer()  # as prepared
    lab.endpoint("edge1").set_transfer(a.sid, PUSHED)
    a.run_to(12)  # steps 9, 10, 11
    got = lab.endpoint("edge2").session_info(a.sid).transfer
    assert (got.service, got.image_ref, got.image_digest, got.size_bytes) == (
        PUSHED.service, PUSHED.image_ref, PUSHED.image_digest, PUSHED.size_bytes)


def test_relay_begin_then_finish_carries_the_pushed_digest(lab: Lab) -> None:
    lab.register_hosts()
    relay = lab.relay("edge1", "edge2")
    hs = relay.begin("m-relay", source=lab.edges["edge1"].rasp.public,
                     destination=lab.edges["edge2"].rasp.public, requirement=SERVICE_NEEDS,
                     transfer=lab.transfer())
    assert sorted(hs.timings.message_bytes) == list(range(1, 9)) and not hs.finished
    assert lab.edges["edge1"].rasp.session_info(hs.session_id).expect == 9
    relay.finish(hs, PUSHED)
    assert sorted(hs.timings.message_bytes) == list(range(1, 12)) and hs.finished
    assert lab.endpoint("edge2").session_info(hs.session_id).transfer.image_digest == DIGEST
    relay.location_update(hs)
    assert {(r.service, r.cloud) for r in lab.ras_client().table().locations} == {
        ("nms", "edge2")}


def test_set_transfer_after_step_10_is_refused(lab: Lab, cases: CaseLog) -> None:
    a = _begin(lab, "m-late")
    a.run_to(11)  # step 10 produced (and delivered): the transfer is fixed
    cases.run("set-transfer after step 10",
              lambda: lab.endpoint("edge1").set_transfer(a.sid, PUSHED), "WRONG_STEP",
              lambda: snapshot(lab))
    a.run_to(13)  # the session finishes with what step 10 carried
    cases.run("set-transfer after step 12",
              lambda: lab.endpoint("edge1").set_transfer(a.sid, PUSHED), "WRONG_STEP",
              lambda: snapshot(lab))
    assert lab.endpoint("edge2").session_info(a.sid).transfer.image_digest == ""


def test_set_transfer_naming_another_service_is_refused(lab: Lab, cases: CaseLog) -> None:
    a = _begin(lab, "m-other")
    other = dataclasses.replace(PUSHED, service="other")
    cases.run("set-transfer other service",
              lambda: lab.endpoint("edge1").set_transfer(a.sid, other), "NOT_AUTHORISED",
              lambda: snapshot(lab))


def test_replayed_set_transfer_is_refused_and_the_first_stands(lab: Lab,
                                                               cases: CaseLog) -> None:
    a = _begin(lab, "m-replay")
    lab.endpoint("edge1").set_transfer(a.sid, PUSHED)
    changed = dataclasses.replace(PUSHED, image_digest="sha256:" + "cd" * 32)
    for name, transfer in (("identical", PUSHED), ("changed digest", changed)):
        cases.run(f"set-transfer replay {name}",
                  lambda t=transfer: lab.endpoint("edge1").set_transfer(a.sid, t),
                  "WRONG_STEP", lambda: snapshot(lab))
    a.run_to(12)
    assert lab.endpoint("edge2").session_info(a.sid).transfer.image_digest == DIGEST


def test_set_transfer_for_a_session_the_host_does_not_serve_is_refused(lab: Lab,
                                                                       cases: CaseLog) -> None:
    a = _begin(lab, "m-where")
    for name, host, sid in (("cloud side", "edge2", a.sid), ("unknown", "edge1", b"x" * 16)):
        cases.run(f"set-transfer {name} session",
                  lambda h=host, s=sid: lab.endpoint(h).set_transfer(s, PUSHED),
                  "WRONG_SESSION", lambda: snapshot(lab))


@pytest.mark.parametrize(("name", "change", "code"), [
    ("long reference", {"image_ref": "r/" + "a" * MAX_IMAGE_REF}, "LIMIT_REACHED"),
    ("reference with spaces", {"image_ref": "reg/nms:1 --privileged"}, "MALFORMED"),
    ("empty reference", {"image_ref": ""}, "MALFORMED"),
    ("no digest", {"image_digest": ""}, "MALFORMED"),
    ("short digest", {"image_digest": "sha256:abcd"}, "MALFORMED"),
    ("zero size", {"size_bytes": 0}, "LIMIT_REACHED"),
    ("huge size", {"size_bytes": MAX_IMAGE_BYTES + 1}, "LIMIT_REACHED"),
])
def test_set_transfer_with_unbounded_or_malformed_fields_is_refused(
        lab: Lab, cases: CaseLog, name: str, change: dict[str, object], code: str) -> None:
    a = _begin(lab, "m-bounds")
    bad = dataclasses.replace(PUSHED, **change)  # type: ignore[arg-type]
    cases.run(f"set-transfer {name}", lambda: lab.endpoint("edge1").set_transfer(a.sid, bad),
              code, lambda: snapshot(lab))
    lab.endpoint("edge1").set_transfer(a.sid, PUSHED)  # the refusal did not use up the call


def test_set_transfer_from_another_role_than_the_smf_is_refused(lab: Lab) -> None:
    a = _begin(lab, "m-role")
    before = snapshot(lab)
    for caller in ("controller", "node.edge2"):
        with pytest.raises(grpc.RpcError) as err:
            lab.endpoint("edge1", as_name=caller).set_transfer(a.sid, PUSHED)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, caller
    assert snapshot(lab) == before
