"""SSP capability bindings against real agents (SMF, edge hosts; mTLS on loopback).

USER CAP and DEV CAP used to be bearer tokens: any application holding the bytes got a session,
and a user's capability was accepted with another user's device. Now both name the fingerprint
of the application key they were issued for (step 3 is signed with it: proof of possession), the
DEV CAP names its owner, both expire, and the SMF revokes and reissues them (RevokeCapability,
ReissueCapability). Every refused attempt must leave the SMF and the server unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest

from agents.security.crypto import Identity
from agents.security.envelope import Envelope, Kind
from agents.security.ssp import RequestService, SspApplication
from agents.security.stores import InMemoryReplayCache
from agents.smf.client import ApplicationSession
from tests.adversarial.attacker import CaseLog
from tests.adversarial.harness import Lab, Principal


def _snap(lab: Lab) -> Callable[[], object]:
    def snap() -> object:
        assert lab.smf_core is not None
        return (lab.smf_core.snapshot(), lab.edges["edge1"].ssp.snapshot())
    return snap


def _step3(lab: Lab, app: Identity, who: Principal, *, user: Principal | None = None,
           device: Principal | None = None) -> bytes:
    """Step 3 built and signed by `app`, with `user`'s USER CAP and `device`'s DEV CAP."""
    role = SspApplication(app, smf=lab.smf_client().identity(),
                          user_cap=(user or who).user_cap, dev_cap=(device or who).device_cap,
                          replay=InMemoryReplayCache())
    return role.request_service("nms", "1", "127.0.0.1").to_bytes()


def _request(lab: Lab, message: bytes) -> Callable[[], object]:
    return lambda: lab.smf_client("app").request_service(message)


def _opens(lab: Lab, who: Principal) -> None:
    """The honest application still gets a session (and a served request)."""
    with lab.app_session(who) as session:
        session.open("nms", "1")
        assert session.request(b"x")


def test_finding_ssp_capability_reuse_by_other_app_refused(lab: Lab, cases: CaseLog) -> None:
    """Finding: a second application reused a victim's USER CAP and DEV CAP and got a session.
    The capabilities name the victim application's key; step 3 must be signed with it."""
    victim = lab.scenario()
    snap = _snap(lab)
    thief = Identity.generate("thief")
    cases.run("ssp reuse of a victim's capabilities by another app",
              _request(lab, _step3(lab, thief, victim)), "NOT_AUTHORISED", snap)
    # the thief even uses the victim application's name (its own keys)
    namesake = Identity.generate(victim.app.name)
    cases.run("ssp reuse under the victim app's name",
              _request(lab, _step3(lab, namesake, victim)), "NOT_AUTHORISED", snap)

    # ... or names the victim's key inside step 3 but cannot sign with it
    class Claiming(SspApplication):
        def request_service(self, name: str, version: str, ip_client: str) -> Envelope:
            env = super().request_service(name, version, ip_client)
            hdr = self._header(session_id=env.header.session_id, step=3,
                               receiver=self.smf.name, kind=Kind.SEALED)
            body = RequestService(name, version, self.dev_cap, self.user_cap, victim.app.public,
                                  ip_client)
            return self._sealed(hdr, body, self.smf)

    claiming = Claiming(namesake, smf=lab.smf_client().identity(), user_cap=victim.user_cap,
                        dev_cap=victim.device_cap, replay=InMemoryReplayCache())
    cases.run("ssp reuse claiming the victim's key without it",
              _request(lab, claiming.request_service("nms", "1", "127.0.0.1").to_bytes()),
              "BAD_SIGNATURE", snap)
    # a session through the real client with stolen capabilities fails the same way
    smf = lab.smf_client("app")
    stolen = ApplicationSession(thief, smf, smf.identity(), victim.user_cap, victim.device_cap,
                                lambda address: lab.channel_to(address, "app"))
    cases.run("ssp session with stolen capabilities", lambda: stolen.open("nms", "1"),
              "NOT_AUTHORISED", snap)
    # the thief's own capabilities (bound to its key) do not lend it the victim's device
    own = lab.principal("Mallory", "Thief", app=thief)
    cases.run("ssp own USER CAP with the victim's DEV CAP",
              _request(lab, _step3(lab, thief, own, device=victim)), "NOT_AUTHORISED", snap)
    _opens(lab, victim)
    _opens(lab, own)


def test_finding_ssp_device_of_other_user_refused(lab: Lab, cases: CaseLog) -> None:
    """Finding: step 3 accepted one user's USER CAP with another user's DEV CAP. The DEV CAP
    names its owner now (both capabilities here are bound to the same application key, so
    only the ownership check can refuse it)."""
    ada = lab.scenario()
    bob = lab.principal("Bob", "Smith", app=ada.app)  # same application, another user
    snap = _snap(lab)
    cases.run("ssp Ada's USER CAP with Bob's DEV CAP",
              _request(lab, _step3(lab, ada.app, ada, device=bob)), "NOT_AUTHORISED", snap)
    cases.run("ssp Bob's USER CAP with Ada's DEV CAP",
              _request(lab, _step3(lab, ada.app, ada, user=bob)), "NOT_AUTHORISED", snap)
    smf = lab.smf_client()
    cases.run("migrate with Ada's USER CAP and Bob's DEV CAP",
              lambda: smf.migrate(lab.service_id, ada.user_id, bob.device_id, ada.user_cap,
                                  bob.device_cap, "edge2"), "NOT_AUTHORISED", snap)
    _opens(lab, ada)
    _opens(lab, bob)


def test_ssp_capability_expired_refused(lab_pki, tmp_path, cases: CaseLog) -> None:  # type: ignore[no-untyped-def]
    """USER CAP / DEV CAP expire after the SMF's configured lifetime (its own clock); a
    reissue gives a fresh one."""
    lab = Lab(lab_pki, tmp_path, smf_settings={"capability_ttl_s": 1.5}).start()
    try:
        who = lab.scenario()
        expires = who.user_cap.expires_at_ms
        assert expires is not None and who.device_cap.expires_at_ms is not None
        assert 0 < expires - time.time() * 1000 <= 1500
        _opens(lab, who)  # still valid
        time.sleep(max(0.0, expires / 1000 - time.time()) + 0.1)
        snap = _snap(lab)
        cases.run("ssp expired capabilities", _request(lab, _step3(lab, who.app, who)),
                "EXPIRED", snap)
        cases.run("migrate with expired capabilities",
                lambda: lab.smf_client().migrate(lab.service_id, who.user_id, who.device_id,
                                                 who.user_cap, who.device_cap, "edge2"),
                "EXPIRED", snap)
        smf = lab.smf_client()
        who.user_cap = smf.reissue_capability("user", who.user_id)
        who.device_cap = smf.reissue_capability("device", who.device_id)
        _opens(lab, who)
    finally:
        lab.close()


def test_ssp_revoked_capability_refused(lab: Lab, cases: CaseLog) -> None:
    """RevokeCapability: refused from then on (REVOKED), also after an SMF restart;
    ReissueCapability: a new capability (optionally for a new application key) that works,
    while the old one stays refused."""
    who = lab.scenario()
    smf = lab.smf_client()
    snap = _snap(lab)
    old_user = who.user_cap
    smf.revoke_capability("user", who.user_id)
    cases.run("ssp revoked USER CAP", _request(lab, _step3(lab, who.app, who)), "REVOKED", snap)
    smf.revoke_capability("device", who.device_id)
    lab.restart_smf()
    cases.run("ssp revoked capabilities after SMF restart",
              _request(lab, _step3(lab, who.app, who)), "REVOKED", snap)
    smf = lab.smf_client()
    new_app = Identity.generate("new-app")  # the user moved to a new application key
    who.user_cap = smf.reissue_capability("user", who.user_id, holder=new_app.public)
    who.device_cap = smf.reissue_capability("device", who.device_id, holder=new_app.public)
    old_app, who.app = who.app, new_app
    _opens(lab, who)
    cases.run("ssp the old app with the reissued capabilities",
              _request(lab, _step3(lab, old_app, who)), "NOT_AUTHORISED", snap)
    cases.run("ssp the revoked USER CAP after the reissue",
              _request(lab, _step3(lab, new_app, who, user=Principal(
                  who.user_id, old_user, who.device_id, who.device_cap, new_app))),
              "REVOKED", snap)
    with pytest.raises(grpc.RpcError) as err:
        smf.revoke_capability("user", "u-nobody")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
