"""SmfCore: USER CAP / DEV CAP issue (bound key, owner, expiry), reissue, revocation, and the
bounded table of revoked capability ids (no gRPC)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from agents.common.store import Store
from agents.security.capability import ObjectId, require_owner
from agents.security.crypto import Identity
from agents.security.errors import CapabilityError, ErrorCode
from agents.smf.core import SmfCore
from agents.smf.domain import InvalidRequest, NotFound, TooMany

APP = Identity.generate("app")
DAY_MS = 24 * 3600 * 1000


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def core(tmp_path: Path, clock: Clock, **kw: float) -> SmfCore:
    return SmfCore(Identity.generate("smf"), Store.open(tmp_path / "smf.sqlite3"),
                   secrets.token_bytes(32), clock=clock, **kw)  # type: ignore[arg-type]


def test_issued_capabilities_are_bound_owned_and_expire(tmp_path: Path) -> None:
    clock = Clock()
    smf = core(tmp_path, clock)
    ada = smf.register_user("Ada", "Lovelace", holder=APP.public)
    phone = smf.register_device("phone", "Ada", "Lovelace", holder=APP.public)
    for cap in (ada.capability, phone.capability):
        assert cap.holder_key == APP.public.fingerprint()
        assert cap.expires_at_ms == int(clock.t * 1000) + DAY_MS  # default lifetime 24 h
    assert phone.capability.owner == ObjectId.from_name(ada.global_id).to_bytes()
    require_owner(phone.capability, ada.capability.cap)
    clock.t += 24 * 3600
    with pytest.raises(CapabilityError) as err:
        smf.authority.verify(ada.capability)
    assert err.value.code is ErrorCode.EXPIRED


def test_device_owner_is_a_registered_user(tmp_path: Path) -> None:
    smf = core(tmp_path, Clock())
    with pytest.raises(NotFound):
        smf.register_device("phone", "Nobody", "Here", holder=APP.public)
    a1 = smf.register_user("Ada", "Lovelace", holder=APP.public)
    a2 = smf.register_user("Ada", "Lovelace", holder=APP.public)
    with pytest.raises(InvalidRequest):  # two users of that name: say which
        smf.register_device("phone", "Ada", "Lovelace", holder=APP.public)
    dev = smf.register_device("phone", "Ada", "Lovelace", holder=APP.public,
                              owner_user_id=a2.global_id)
    assert dev.capability.owner == ObjectId.from_name(a2.global_id).to_bytes() != \
        ObjectId.from_name(a1.global_id).to_bytes()
    with pytest.raises(InvalidRequest):  # the id and the names disagree
        smf.register_device("tab", "Bob", "Smith", holder=APP.public, owner_user_id=a1.global_id)


def test_reissue_renews_expiry_keeps_owner_and_can_rebind(tmp_path: Path) -> None:
    clock = Clock()
    smf = core(tmp_path, clock, capability_ttl_s=600)
    ada = smf.register_user("Ada", "Lovelace", holder=APP.public)
    dev = smf.register_device("phone", "Ada", "Lovelace", holder=APP.public)
    clock.t += 300
    new_app = Identity.generate("app2")
    renewed = smf.reissue_device_capability(dev.global_id, new_app.public).capability
    assert renewed.expires_at_ms == int(clock.t * 1000) + 600_000
    assert renewed.owner == dev.capability.owner and renewed.holder_key == \
        new_app.public.fingerprint()
    same_key = smf.reissue_user_capability(ada.global_id).capability
    assert same_key.holder_key == APP.public.fingerprint()
    assert smf.device(dev.global_id).capability == renewed
    for old in (dev.capability, ada.capability):
        with pytest.raises(CapabilityError) as err:
            smf.authority.verify(old)
        assert err.value.code is ErrorCode.REVOKED
    smf.authority.verify(renewed)


def test_revocations_are_bounded_and_forgotten_after_expiry(tmp_path: Path) -> None:
    clock = Clock()
    smf = core(tmp_path, clock, capability_ttl_s=60, max_revocations=2)
    users = [smf.register_user("U", str(i), holder=APP.public) for i in range(3)]
    smf.revoke_user_capability(users[0].global_id)
    smf.revoke_user_capability(users[0].global_id)  # idempotent: no second entry
    smf.revoke_user_capability(users[1].global_id)
    assert len(smf.revocations) == 2
    with pytest.raises(TooMany):
        smf.revoke_user_capability(users[2].global_id)
    smf.authority.verify(users[2].capability)  # the refused revocation changed nothing
    clock.t += 61  # the revoked ones have expired: their ids can go
    fresh = smf.reissue_user_capability(users[2].global_id).capability
    assert len(smf.revocations) == 1
    smf.authority.verify(fresh)
    assert smf.authority.is_revoked(users[2].capability)  # remembered until it expires
    assert not smf.authority.is_revoked(users[0].capability)  # expired: forgotten


def test_lifetime_and_bound_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        core(tmp_path, Clock(), capability_ttl_s=0)
    with pytest.raises(ValueError):
        core(tmp_path, Clock(), max_revocations=0)
