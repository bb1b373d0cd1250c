"""RASP under attack, step by step, between real agents (RAS + two edge hosts, mTLS).

For every step k = 1..12 the attacker holds the honest message m_k and tries, before it is
delivered: a modified body, a modified header, an injected forgery, reflection to its sender,
misrouting to the third party, an out-of-order (earlier) message and a message of another
session; then it lets m_k through (the session must still proceed) and replays it, and replays
it again after restarting the receiving agent. Each attempt must be refused with the expected
code and leave every honest party's state (memory and SQLite) unchanged. Dropping each step is
exercised through the SMF in test_smf_path.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from agents.security.envelope import Kind
from agents.security.rasp import LocationUpdate, TransferDescriptor
from agents.security.transfer_ticket import issue_ticket
from agents.smf.relay import DESTINATION, RECEIVER, REGISTRY, SOURCE
from tests.adversarial.attacker import CaseLog, flip_body, forge, shift_header
from tests.adversarial.harness import SERVICE_NEEDS, Lab

SENDER = {1: DESTINATION, 2: SOURCE, 3: REGISTRY, 4: SOURCE, 5: DESTINATION, 6: REGISTRY,
          7: DESTINATION, 8: SOURCE, 9: DESTINATION, 10: SOURCE, 11: DESTINATION,
          12: DESTINATION}
ROLES = (SOURCE, DESTINATION, REGISTRY)
HOST = {SOURCE: "edge1", DESTINATION: "edge2"}


class Driver:
    """One RASP session driven step by step; `msgs[k]` is the message of step k."""

    def __init__(self, lab: Lab, migration_id: str) -> None:
        self.lab = lab
        self.mid = migration_id
        self.msgs: dict[int, bytes] = {}
        self.relay = lab.relay("edge1", "edge2")
        self.msgs[1], self.sid = self.relay.start(
            migration_id, source=lab.edges["edge1"].rasp.public,
            destination=lab.edges["edge2"].rasp.public, requirement=SERVICE_NEEDS,
            transfer=lab.transfer())
        self.delivered = 0

    def deliver(self, step: int) -> None:
        """Honest delivery of m_step; stores m_{step+1}."""
        assert step == self.delivered + 1
        reply = self.relay.deliver(step, self.msgs[step], self.mid if step == 1 else "")
        self.delivered = step
        if step < 11:
            self.msgs[step + 1] = reply
        elif step == 11:
            assert reply == b""
            self.msgs[12] = self.lab.endpoint("edge2").report_location(self.sid)

    def run_to(self, step: int) -> Driver:
        """Deliver steps 1..step-1."""
        while self.delivered < step - 1:
            self.deliver(self.delivered + 1)
        return self

    def send(self, role: str, message: bytes) -> None:
        """Deliver arbitrary bytes to a party (the attacker's deliveries)."""
        lab = self.lab
        if role == REGISTRY:
            lab.ras_client("smf").deliver(message)
        else:
            lab.endpoint(HOST[role]).deliver(message, self.mid)


def snapshot(lab: Lab) -> object:
    assert lab.ras_core is not None
    return (lab.ras_core.snapshot(), *(e.rasp.snapshot() for e in lab.edges.values()))


def restart(lab: Lab, role: str) -> None:
    if role == REGISTRY:
        lab.restart_ras()
    else:
        lab.restart_edge(HOST[role])


def auth_code(step: int) -> str:
    return "DECRYPT_FAILED" if step in (9, 10, 11) else "BAD_SIGNATURE"


@pytest.mark.parametrize("k", range(1, 13))
def test_rasp_step_under_attack(lab: Lab, cases: CaseLog, k: int) -> None:
    lab.register_hosts()
    done = Driver(lab, "m-done").run_to(13)  # a completed session (all 12 steps)
    a = Driver(lab, "m-a").run_to(k)
    m, to = a.msgs[k], RECEIVER[k]
    third = next(r for r in ROLES if r not in (to, SENDER[k]))

    def snap() -> object:
        return snapshot(lab)

    def attempt(name: str, role: str, message: bytes, code: str) -> None:
        cases.run(f"rasp step {k} {name}", lambda: a.send(role, message), code, snap)

    attempt("modify-body", to, flip_body(m), auth_code(k))
    attempt("modify-header", to, shift_header(m), auth_code(k))
    attempt("inject", to, forge(m), auth_code(k))
    attempt("reflect", SENDER[k], m, "REFLECTED")
    attempt("misroute", third, m, "WRONG_RECIPIENT")
    earlier = [j for j in range(1, k) if RECEIVER[j] == to]
    later = [j for j in range(k + 1, 13) if RECEIVER[j] == to]
    stale = a.msgs[earlier[-1]] if earlier else done.msgs[later[0]]
    attempt("reorder", to, stale, "REPLAY")
    attempt("replay-other-session", to, done.msgs[k], "REPLAY")

    before = snap()
    a.deliver(k)  # the honest message still goes through ...
    assert snap() != before  # ... and the snapshots do see accepted messages
    attempt("replay", to, m, "REPLAY")
    restart(lab, to)
    attempt("replay-after-restart", to, m, "REPLAY")

    if k == 12:  # the registry recorded the new location exactly once
        table = lab.ras_client().table()
        assert {(r.service, r.cloud) for r in table.locations} == {("nms", "edge2")}
        cell = next(r for r in table.allocations if (r.server, r.cloud) == ("edge1", "edge2"))
        # Allocation is per service: the second arrival of 'nms' replaces the first one's entry,
        # and the replays above added nothing.
        assert cell.allocated.cpu_millicores == SERVICE_NEEDS.cpu


def _migrate(lab: Lab, mid: str, source: str, destination: str, service: str) -> bytes:
    """A complete honest RASP run moving `service` from `source` to `destination` (with the
    registry's release order handed to the source); returns the session id."""
    relay = lab.relay(source, destination)
    hs = relay.handshake(mid, source=lab.edges[source].rasp.public,
                         destination=lab.edges[destination].rasp.public,
                         requirement=SERVICE_NEEDS,
                         transfer=TransferDescriptor(service, f"registry.lab:5000/{service}:1",
                                                     "", 0))
    relay.location_update(hs)
    return hs.session_id


def _step12_as(lab: Lab, host: str, sid: bytes, body: LocationUpdate) -> bytes:
    """Step 12 built with `host`'s own RASP key (the compromised destination's)."""
    cloud = lab.edges[host].rasp.clouds[sid]
    hdr = cloud._header(session_id=sid, step=12, receiver=cloud.registry.name,
                        kind=Kind.SEALED)
    return cloud._sealed(hdr, body, cloud.registry).to_bytes()


def test_finding_rasp_step12_other_service_is_refused(lab: Lab, cases: CaseLog) -> None:
    """Finding: RASP step 12 named a service nothing tied to the transfer, so a compromised
    destination moved another service's allocation in the registry and the source freed it
    while that service still ran there. Step 12 is now bound to step 10's transfer ticket."""
    lab.register_hosts()
    # 'other' runs on edge1, where it arrived by RASP (edge1 holds its allocation)
    _migrate(lab, "m-other", "edge2", "edge1", "other")
    assert "other" in lab.edges["edge1"].rasp.arrivals
    # 'nms' migrates edge1 -> edge2; edge2 is compromised and holds the session at step 12
    a = Driver(lab, "m-nms").run_to(12)
    cloud = lab.edges["edge2"].rasp.clouds[a.sid]
    ticket = cloud.state.ticket
    assert ticket is not None and ticket.service == "nms"
    edge2 = lab.edges["edge2"].rasp.identity

    def table() -> object:
        t = lab.ras_client().table()
        return (sorted((r.service, r.server, r.cloud, r.allocated.cpu_millicores)
                       for r in t.service_allocations),
                sorted((r.service, r.cloud) for r in t.locations),
                sorted((r.name, r.allocated.cpu_millicores) for r in t.clouds))

    def snap() -> object:
        return (snapshot(lab), table())

    before_table = table()
    held = lab.edges["edge1"].rasp.arrivals["other"]
    attacks = {
        # the genuine ticket (for nms) with step 12 naming 'other'
        "other-service": (LocationUpdate("other", "edge2", "edge1", ticket), "NOT_AUTHORISED"),
        # a ticket for 'other' the destination signed itself
        "self-signed-ticket": (LocationUpdate("other", "edge2", "edge1", issue_ticket(
            edge2, session_id=a.sid, cloud="edge2", service="other")), "NOT_AUTHORISED"),
        # a ticket for 'other' claiming to be edge1's, signed with edge2's key
        "forged-ticket": (LocationUpdate("other", "edge2", "edge1", dataclasses.replace(
            issue_ticket(edge2, session_id=a.sid, cloud="edge2", service="other"),
            server="edge1")), "BAD_SIGNATURE"),
    }
    for name, (body, code) in attacks.items():
        message = _step12_as(lab, "edge2", a.sid, body)
        cases.run(f"rasp step 12 {name}", lambda m=message: a.send(REGISTRY, m), code, snap)
    # the other service's allocation at the registry and its resources at edge1 are unchanged
    assert table() == before_table
    assert ("other", "edge2", "edge1", SERVICE_NEEDS.cpu) in before_table[0]  # type: ignore[index]
    assert lab.edges["edge1"].rasp.arrivals["other"] == held
    # the honest step 12 still moves nms (and only nms)
    a.deliver(12)
    t = lab.ras_client().table()
    assert {(r.service, r.cloud) for r in t.locations} == {("nms", "edge2"), ("other", "edge1")}
    assert lab.edges["edge1"].rasp.arrivals["other"] == held
