"""SSP under attack, step by step: the SMF agent and an edge host's chosen server are real
agents (mTLS); the CMS and the application are the client-side roles in this process.

Steps 4 and 5 travel between the SMF and the server inside Request Service: the attacker sits
on that path (a tap on the SMF's server stub that forwards to the real server over mTLS) and
holds, records or substitutes them. Per step: modified body, modified header, injection,
reflection, misrouting, an out-of-order (earlier) message, a message of another session, then
the honest message, its replay and (for agents) its replay after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as pb
from agents.security.ssp import ServerInfo, SspApplication, SspCms
from agents.security.stores import InMemoryReplayCache
from agents.smf.domain import ServerEntry
from tests.adversarial.attacker import CaseLog, flip_body, forge, shift_header
from tests.adversarial.harness import Lab, Principal


class Held(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "held by the attacker"


class PathTap:
    """The attacker between the SMF and the chosen servers (steps 4 and 5)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.m4: bytes | None = None
        self.m5: bytes | None = None
        self.hold = False
        self.substitute: Callable[[bytes], bytes] | None = None
        self.install()

    def install(self) -> None:
        assert self.lab.smf_servicer is not None
        self.lab.smf_servicer.server_stub = lambda entry: self._stub(entry)  # type: ignore[assignment]

    def _stub(self, entry: ServerEntry) -> Any:
        real = self.lab.ssp_server(entry.name, "smf").stub
        tap = self

        class Stub:
            def Deliver(self, request: pb.ServerDeliverRequest, timeout: float
                        ) -> pb.ServerDeliverResponse:
                tap.m4 = bytes(request.message)
                if tap.hold:
                    raise Held()
                resp = real.Deliver(request, timeout=timeout)
                tap.m5 = bytes(resp.reply)
                if tap.substitute is not None:
                    return pb.ServerDeliverResponse(reply=tap.substitute(tap.m5))
                return resp

        return Stub()


class Session:
    """One application's SSP session (stages 2-5) with every message recorded."""

    def __init__(self, lab: Lab, who: Principal, tap: PathTap) -> None:
        self.lab, self.tap = lab, tap
        smf_public = lab.smf_client().identity()
        self.app = SspApplication(who.app, smf=smf_public, user_cap=who.user_cap,
                                  dev_cap=who.device_cap, replay=InMemoryReplayCache())
        self.msgs: dict[int, bytes] = {3: self.app.request_service("nms", "1",
                                                                    "127.0.0.1").to_bytes()}

    def server(self) -> Any:
        return self.lab.ssp_server("edge1", "app")

    def stage2(self) -> None:
        reply, _, _ = self.lab.smf_client("app").request_service(self.msgs[3])
        assert self.tap.m4 and self.tap.m5
        self.msgs[4], self.msgs[5], self.msgs[6] = self.tap.m4, self.tap.m5, reply

    def step(self, k: int) -> None:
        """Honest delivery of step k (k >= 6) and recording of the next message."""
        if k == 6:
            out = self.app.handle(self.msgs[6])
            assert out is not None
            self.msgs[7] = out.to_bytes()
        elif k in (7, 9):
            self.msgs[k + 1], _ = self.server().deliver(self.msgs[k])
        elif k == 8:
            self.app.handle(self.msgs[8])
            self.msgs[9] = self.app.request(b"read block 7").to_bytes()
        elif k == 10:
            self.app.handle(self.msgs[10])
            self.msgs[11] = self.app.end().to_bytes()
        elif k == 11:
            self.server().deliver(self.msgs[11])

    def run_to(self, k: int) -> Session:
        self.stage2()
        for j in range(6, k):
            self.step(j)
        return self


def parties(lab: Lab, locals_: list[Any]) -> Callable[[], object]:
    def snap() -> object:
        assert lab.smf_core is not None
        return (lab.smf_core.snapshot(), lab.edges["edge1"].ssp.snapshot(),
                [(p.snapshot(), len(p._replay)) for p in locals_])
    return snap


def send(lab: Lab, role: str, message: bytes, local: Any = None) -> None:
    if role == "smf":
        lab.smf_client("app").request_service(message)
    elif role == "server":
        lab.ssp_server("edge1", "app").deliver(message)
    else:
        local.handle(message)


AUTH = {1: "BAD_SIGNATURE", 2: "BAD_SIGNATURE", 4: "BAD_SIGNATURE", 5: "BAD_SIGNATURE",
        6: "BAD_SIGNATURE", 7: "BAD_SIGNATURE", 8: "BAD_SIGNATURE", 9: "DECRYPT_FAILED",
        10: "DECRYPT_FAILED", 11: "DECRYPT_FAILED"}


@pytest.fixture
def world(lab: Lab) -> tuple[Lab, Principal, PathTap, Session]:
    who = lab.scenario()
    tap = PathTap(lab)
    # one complete session of another user's application, every message recorded
    done = Session(lab, lab.principal("Grace", "Hopper"), tap).run_to(12)
    return lab, who, tap, done


def test_ssp_stage1_under_attack(world: tuple[Lab, Principal, PathTap, Session],
                                 cases: CaseLog) -> None:
    lab, _, _, done = world
    smf = lab.smf_client()
    smf_public = smf.identity()
    edge = lab.edges["edge1"]
    info = (ServerInfo(edge.rasp.public, "127.0.0.1", edge.server.port),)
    old_cms = SspCms(lab.cms, smf=smf_public, replay=InMemoryReplayCache())
    m1_old = old_cms.register_service("cache", "1", info).to_bytes()
    m2_old, _ = smf.register_service(m1_old)
    old_cms.handle(m2_old)
    cms = SspCms(lab.cms, smf=smf_public, replay=InMemoryReplayCache())
    m1 = cms.register_service("cache", "2", info).to_bytes()
    snap = parties(lab, [cms])

    def attempt(name: str, fn: Callable[[], Any], code: str) -> None:
        cases.run(f"ssp step {name}", fn, code, snap)

    def to_smf(m: bytes) -> Callable[[], Any]:
        return lambda: smf.register_service(m)

    attempt("1 modify-body", to_smf(flip_body(m1)), "BAD_SIGNATURE")
    attempt("1 modify-header", to_smf(shift_header(m1)), "BAD_SIGNATURE")
    attempt("1 inject", to_smf(forge(m1)), "BAD_SIGNATURE")
    attempt("1 reflect", lambda: cms.handle(m1), "REFLECTED")
    attempt("1 misroute", lambda: send(lab, "server", m1), "WRONG_RECIPIENT")
    attempt("1 reorder", to_smf(done.msgs[3]), "REPLAY")
    attempt("1 replay-other-session", to_smf(m1_old), "REPLAY")
    m2, _ = smf.register_service(m1)
    attempt("1 replay", to_smf(m1), "REPLAY")
    lab.restart_smf()
    smf = lab.smf_client()
    attempt("1 replay-after-restart", to_smf(m1), "REPLAY")

    attempt("2 modify-body", lambda: cms.handle(flip_body(m2)), "BAD_SIGNATURE")
    attempt("2 modify-header", lambda: cms.handle(shift_header(m2)), "BAD_SIGNATURE")
    attempt("2 inject", lambda: cms.handle(forge(m2)), "BAD_SIGNATURE")
    attempt("2 reflect", to_smf(m2), "REFLECTED")
    attempt("2 misroute", lambda: send(lab, "server", m2), "WRONG_RECIPIENT")
    attempt("2 replay-other-session", lambda: cms.handle(m2_old), "WRONG_SESSION")
    cms.handle(m2)
    attempt("2 replay", lambda: cms.handle(m2), "REPLAY")
    assert cms.state.registered is not None and cms.state.registered.name == "cache"


def test_ssp_step3_under_attack(world: tuple[Lab, Principal, PathTap, Session],
                                cases: CaseLog) -> None:
    lab, who, tap, done = world
    s = Session(lab, who, tap)
    m3 = s.msgs[3]
    snap = parties(lab, [s.app])

    def attempt(name: str, role: str, m: bytes, code: str) -> None:
        cases.run(f"ssp step 3 {name}", lambda: send(lab, role, m, s.app), code, snap)

    attempt("modify-body", "smf", flip_body(m3), "DECRYPT_FAILED")
    attempt("modify-header", "smf", shift_header(m3), "DECRYPT_FAILED")
    attempt("inject", "smf", forge(m3), "DECRYPT_FAILED")  # header (AAD) changed
    attempt("reflect", "app", m3, "REFLECTED")
    attempt("misroute", "server", m3, "WRONG_RECIPIENT")
    attempt("reorder", "smf", done.msgs[5], "REPLAY")
    attempt("replay-other-session", "smf", done.msgs[3], "REPLAY")
    s.stage2()
    attempt("replay", "smf", m3, "REPLAY")
    lab.restart_smf()
    tap.install()
    attempt("replay-after-restart", "smf", m3, "REPLAY")


def test_ssp_step4_under_attack(world: tuple[Lab, Principal, PathTap, Session],
                                cases: CaseLog) -> None:
    lab, who, tap, done = world
    s = Session(lab, who, tap)
    tap.hold = True  # the attacker keeps step 4 from the server
    with pytest.raises(grpc.RpcError) as held:
        lab.smf_client("app").request_service(s.msgs[3])
    assert held.value.code() == grpc.StatusCode.UNAVAILABLE
    tap.hold = False
    assert tap.m4 is not None
    m4 = tap.m4
    snap = parties(lab, [s.app])

    def attempt(name: str, role: str, m: bytes, code: str) -> None:
        cases.run(f"ssp step 4 {name}", lambda: send(lab, role, m, s.app), code, snap)

    attempt("modify-body", "server", flip_body(m4), "BAD_SIGNATURE")
    attempt("modify-header", "server", shift_header(m4), "BAD_SIGNATURE")
    attempt("inject", "server", forge(m4), "BAD_SIGNATURE")
    attempt("reflect", "smf", m4, "REFLECTED")
    attempt("misroute", "app", m4, "WRONG_RECIPIENT")
    attempt("reorder", "server", done.msgs[7], "REPLAY")
    attempt("replay-other-session", "server", done.msgs[4], "REPLAY")
    send(lab, "server", m4)  # the honest step 4 is still accepted
    attempt("replay", "server", m4, "REPLAY")
    lab.restart_edge("edge1")
    attempt("replay-after-restart", "server", m4, "REPLAY")


def test_ssp_step5_under_attack(world: tuple[Lab, Principal, PathTap, Session],
                                cases: CaseLog) -> None:
    """Step 5 reaches the SMF only inside Request Service: the tap substitutes it."""
    lab, who, tap, done = world
    probe = Session(lab, who, tap)
    snap = parties(lab, [probe.app])

    def substituted(name: str, change: Callable[[bytes], bytes], code: str) -> None:
        s = Session(lab, who, tap)
        taken: dict[str, object] = {}

        def swap(m5: bytes) -> bytes:
            taken["before"] = snap()  # steps 3-4 were honest; only step 5 is attacked
            return change(m5)

        tap.substitute = swap
        try:
            cases.run(f"ssp step 5 {name}",
                      lambda: lab.smf_client("app").request_service(s.msgs[3]), code, snap,
                      captured=lambda: taken["before"])
        finally:
            tap.substitute = None

    substituted("modify-body", flip_body, "BAD_SIGNATURE")
    substituted("modify-header", shift_header, "BAD_SIGNATURE")
    substituted("inject", forge, "BAD_SIGNATURE")
    substituted("reorder", lambda _m: done.msgs[3], "REPLAY")
    substituted("replay-other-session", lambda _m: done.msgs[5], "REPLAY")
    s = Session(lab, who, tap)
    s.stage2()
    m5 = s.msgs[5]
    cases.run("ssp step 5 reflect", lambda: send(lab, "server", m5), "REFLECTED", snap)
    cases.run("ssp step 5 misroute", lambda: send(lab, "app", m5, probe.app),
              "WRONG_RECIPIENT", snap)
    substituted("replay", lambda _m: m5, "REPLAY")
    lab.restart_smf()
    tap.install()
    substituted("replay-after-restart", lambda _m: m5, "REPLAY")


# steps 6-11: (receiver, sender, third party) and the expected codes of reorder / other session
LATE = {
    6: ("app", "smf", "server", "WRONG_RECIPIENT"),  # the other session had another app
    7: ("server", "app", "smf", "REPLAY"),
    8: ("app", "server", "smf", "WRONG_RECIPIENT"),
    9: ("server", "app", "smf", "REPLAY"),
    10: ("app", "server", "smf", "WRONG_RECIPIENT"),
    11: ("server", "app", "smf", "REPLAY"),
}
EARLIER = {6: None, 7: 4, 8: 6, 9: 7, 10: 8, 11: 9}


@pytest.mark.parametrize("k", range(6, 12))
def test_ssp_late_steps_under_attack(world: tuple[Lab, Principal, PathTap, Session],
                                     cases: CaseLog, k: int) -> None:
    lab, who, tap, done = world
    s = Session(lab, who, tap).run_to(k)
    m = s.msgs[k]
    to, sender, third, other_code = LATE[k]
    snap = parties(lab, [s.app])

    def attempt(name: str, role: str, msg: bytes, code: str) -> None:
        cases.run(f"ssp step {k} {name}", lambda: send(lab, role, msg, s.app), code, snap)

    attempt("modify-body", to, flip_body(m), AUTH[k])
    attempt("modify-header", to, shift_header(m), AUTH[k])
    attempt("inject", to, forge(m), AUTH[k])
    attempt("reflect", sender, m, "REFLECTED")
    attempt("misroute", third, m, "WRONG_RECIPIENT")
    earlier = EARLIER[k]
    stale = s.msgs[earlier] if earlier is not None else done.msgs[8]
    attempt("reorder", to, stale, "REPLAY" if earlier is not None else "WRONG_RECIPIENT")
    attempt("replay-other-session", to, done.msgs[k], other_code)
    s.step(k)
    attempt("replay", to, m, "REPLAY")
    if to == "server":
        lab.restart_edge("edge1")
        attempt("replay-after-restart", to, m, "REPLAY")
