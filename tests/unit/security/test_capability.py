from __future__ import annotations

import dataclasses
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.security.capability import (
    Capability,
    CapType,
    ObjectId,
    PaperCapabilityScheme,
    SealedCapability,
    SealedCapabilityAuthority,
    SysFlags,
    holder_binding,
    paper_hash16,
    require_holder,
    require_owner,
)
from agents.security.crypto import Identity
from agents.security.errors import CapabilityError, ErrorCode, ProtocolError
from agents.security.stores import InMemoryRevocationStore

OBJ = ObjectId(0x0011_22FF_FE33_4455, 0x07)
READ, WRITE, ADMIN = 0x001, 0x002, 0x800


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_authority(
    clock: FakeClock | None = None, issuer: str = "smf", **kw: object
) -> SealedCapabilityAuthority:
    return SealedCapabilityAuthority(
        issuer,
        secrets.token_bytes(32),
        store=InMemoryRevocationStore(),
        master_types=list(CapType),
        clock=clock or FakeClock(),
        **kw,  # type: ignore[arg-type]
    )


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


# --- the 128-bit format ----------------------------------------------------------------


@given(
    st.integers(0, 255),
    st.integers(0, 15),
    st.integers(0, 4095),
    st.integers(0, 2**64 - 1),
    st.integers(0, 255),
    st.integers(0, 2**16 - 1),
)
def test_layout_roundtrip(t: int, sys: int, prop: int, eui: int, na: int, rnd: int) -> None:
    cap = Capability.build(t, SysFlags(sys), prop, ObjectId(eui, na), rnd)
    raw = cap.to_bytes()
    assert len(raw) == 16
    assert Capability.from_bytes(raw) == cap
    assert Capability.parse(cap.text()) == cap
    as_int = int.from_bytes(raw, "big")
    assert as_int >> 120 == t
    assert (as_int >> 116) & 0xF == sys
    assert (as_int >> 104) & 0xFFF == prop
    assert (as_int >> 40) & (2**64 - 1) == eui
    assert (as_int >> 32) & 0xFF == na
    assert (as_int >> 16) & 0xFFFF == rnd
    assert as_int & 0xFFFF == paper_hash16(raw[:14])


def test_text_form_and_bad_text() -> None:
    cap = Capability.build(CapType.USER, SysFlags.MASTER, READ, OBJ, 0xABCD)
    text = cap.text()
    assert text.count(":") == 7 and all(len(g) == 4 for g in text.split(":"))
    assert Capability.parse(text.upper()) == cap
    for bad in ("", "00:11", text + ":0000", text.replace(text[0], "g", 1)):
        with pytest.raises(CapabilityError) as err:
            Capability.parse(bad)
        assert err.value.code is ErrorCode.MALFORMED


def test_sys_bit_positions() -> None:
    cap = Capability.build(0, SysFlags.PRIVATE, 0, ObjectId(0), 0)
    assert cap.to_bytes()[1] == 0x80
    cap = Capability.build(0, SysFlags.CHANGE, 0, ObjectId(0), 0)
    assert cap.to_bytes()[1] == 0x10


# --- the paper's scheme is forgeable -----------------------------------------------------


def escalate(cap: Capability) -> Capability:
    """What anybody can do: set M and C, add ADMIN, recompute the unkeyed hash."""
    return Capability.build(
        cap.cap_type,
        cap.sys | SysFlags.MASTER | SysFlags.CHANGE,
        cap.prop | ADMIN,
        cap.object_id,
        cap.random,
    )


def test_forged_escalation_accepted_by_paper_rejected_by_sealed() -> None:
    paper = PaperCapabilityScheme()
    master = paper.issue(CapType.SERVICE, SysFlags.MASTER | SysFlags.CHANGE, READ | WRITE, OBJ)
    proxy = paper.derive_proxy(master, READ)
    assert not proxy.is_master and not proxy.can_change
    forged = escalate(proxy)
    assert forged.is_master and forged.can_change and forged.prop & ADMIN
    assert paper.verify(forged) == forged  # the paper scheme accepts the forgery
    paper.derive_proxy(forged, ADMIN)  # ...and lets it mint further proxies

    auth = make_authority()
    s_master = auth.issue_master(CapType.SERVICE, OBJ, READ | WRITE, change=True)
    s_proxy = auth.derive_proxy(s_master, prop=READ)
    forged_raw = escalate(s_proxy.cap).to_bytes()
    for parent in (s_proxy.parent, None):
        attempt = dataclasses.replace(s_proxy, raw=forged_raw, parent=parent)
        with pytest.raises(CapabilityError) as err:
            auth.verify(attempt)
        assert err.value.code is ErrorCode.BAD_TAG


def test_paper_random_field_brute_forced_in_2_to_16_tries() -> None:
    paper = PaperCapabilityScheme()
    genuine = paper.issue(CapType.SERVICE, SysFlags.MASTER | SysFlags.CHANGE, READ, OBJ)
    accepted = None
    tries = 0
    for guess in range(2**16):  # the attacker knows only the (public) object id
        tries += 1
        cand = Capability.build(
            CapType.SERVICE, SysFlags.MASTER | SysFlags.CHANGE, READ, OBJ, guess
        )
        try:
            accepted = paper.verify_current(cand)
            break
        except CapabilityError:
            continue
    assert accepted == genuine
    assert tries <= 2**16


def test_sealed_random_field_brute_force_fails() -> None:
    auth = make_authority()
    genuine = auth.issue_master(CapType.SERVICE, OBJ, READ, change=True)
    template = dataclasses.replace(genuine, tag=secrets.token_bytes(16))
    rejected = 0
    for guess in range(2**16):
        cand = Capability.build(
            CapType.SERVICE, SysFlags.MASTER | SysFlags.CHANGE, READ, OBJ, guess
        )
        try:
            auth.verify(dataclasses.replace(template, raw=cand.to_bytes()))
        except CapabilityError as err:
            assert err.code is ErrorCode.BAD_TAG
            rejected += 1
    assert rejected == 2**16


def test_paper_revocation_by_new_random() -> None:
    paper = PaperCapabilityScheme()
    cap = paper.issue(CapType.USER, SysFlags.MASTER, READ, OBJ)
    new = paper.revoke(cap)
    assert paper.verify_current(new) == new
    if new.random != cap.random:
        with pytest.raises(CapabilityError) as err:
            paper.verify_current(cap)
        assert err.value.code is ErrorCode.REVOKED


def test_paper_detects_unhashed_tampering() -> None:
    paper = PaperCapabilityScheme()
    cap = paper.issue(CapType.USER, SysFlags.MASTER, READ, OBJ)
    with pytest.raises(CapabilityError) as err:
        paper.verify(Capability.from_bytes(flip(cap.to_bytes(), 20)))
    assert err.value.code is ErrorCode.BAD_TAG


# --- the sealed scheme ------------------------------------------------------------------


def test_every_single_bit_flip_rejected() -> None:
    auth = make_authority()
    user = auth.issue_master(CapType.USER, ObjectId(1), READ)
    dev = auth.issue_master(CapType.DEVICE, ObjectId(2), READ)
    master = auth.issue_master(CapType.SERVICE, OBJ, READ | WRITE, change=True)
    sealed = auth.derive_proxy(master, prop=READ, ttl_s=60, subjects=[user, dev])
    assert auth.verify(sealed, subjects=[user, dev]).is_private
    for bit in range(128):
        bad = dataclasses.replace(sealed, raw=flip(sealed.raw, bit))
        with pytest.raises(CapabilityError) as err:
            auth.verify(bad, subjects=[user, dev])
        assert err.value.code is ErrorCode.BAD_TAG, bit
    for bit in range(len(sealed.tag) * 8):
        bad = dataclasses.replace(sealed, tag=flip(sealed.tag, bit))
        with pytest.raises(CapabilityError) as err:
            auth.verify(bad, subjects=[user, dev])
        assert err.value.code is ErrorCode.BAD_TAG, bit
    for bit in range(len(sealed.holder or b"") * 8):
        bad = dataclasses.replace(sealed, holder=flip(sealed.holder or b"", bit))
        with pytest.raises(CapabilityError) as err:
            auth.verify(bad, subjects=[user, dev])
        assert err.value.code is ErrorCode.BAD_TAG
    assert sealed.expires_at_ms is not None
    for delta in (1, 60_000, -1):
        bad = dataclasses.replace(sealed, expires_at_ms=sealed.expires_at_ms + delta)
        with pytest.raises(CapabilityError):
            auth.verify(bad, subjects=[user, dev])
    for bad in (
        dataclasses.replace(sealed, expires_at_ms=None),
        dataclasses.replace(sealed, parent=None),
        dataclasses.replace(sealed, issuer="smf2"),
    ):
        with pytest.raises(CapabilityError):
            auth.verify(bad, subjects=[user, dev])


def test_every_bit_flip_of_serialised_form_rejected() -> None:
    auth = make_authority()
    sealed = auth.issue_master(CapType.SERVICE, OBJ, READ, change=True)
    data = sealed.to_bytes()
    assert SealedCapability.from_bytes(data) == sealed
    assert SealedCapability.parse(sealed.to_text()) == sealed
    for bit in range(len(data) * 8):
        try:
            auth.verify(SealedCapability.from_bytes(flip(data, bit)))
        except ProtocolError as err:  # MALFORMED, BAD_TAG, UNKNOWN_PRINCIPAL...
            assert err.code is not ErrorCode.REPLAY
            continue
        raise AssertionError(f"bit {bit} flip accepted")


def test_expiry_just_before_and_after_60_seconds() -> None:
    clock = FakeClock(1_700_000_000.0)
    auth = make_authority(clock)
    master = auth.issue_master(CapType.SERVICE, OBJ, READ, change=True)
    timed = auth.derive_proxy(master, ttl_s=60)
    clock.t += 59.999
    auth.verify(timed)
    clock.t = 1_700_000_060.0
    with pytest.raises(CapabilityError) as err:
        auth.verify(timed)
    assert err.value.code is ErrorCode.EXPIRED
    clock.t += 0.001
    with pytest.raises(CapabilityError):
        auth.verify(timed)
    auth.verify(master)  # the master has no expiry


def test_proxy_never_outlives_its_master() -> None:
    clock = FakeClock()
    auth = make_authority(clock)
    master = auth.issue_master(CapType.SERVICE, OBJ, READ, change=True, ttl_s=10)
    proxy = auth.derive_proxy(master, ttl_s=60)
    assert proxy.expires_at_ms == master.expires_at_ms


def test_revocation_and_reissue() -> None:
    store = InMemoryRevocationStore()
    auth = SealedCapabilityAuthority(
        "smf",
        secrets.token_bytes(32),
        store=store,
        master_types=[CapType.SERVICE],
        clock=FakeClock(),
    )
    master = auth.issue_master(CapType.SERVICE, OBJ, READ, change=True)
    proxy = auth.derive_proxy(master)
    new_master = auth.reissue(master)
    assert new_master.cap.random != master.cap.random
    assert new_master.cap.object_id == master.cap.object_id
    auth.verify(new_master)
    for old in (master, proxy):  # revoking a master also revokes its proxies
        with pytest.raises(CapabilityError) as err:
            auth.verify(old)
        assert err.value.code is ErrorCode.REVOKED
    with pytest.raises(CapabilityError) as err:
        auth.reissue(master)
    assert err.value.code is ErrorCode.REVOKED
    # state is in the store: a second authority with the same key and store agrees
    twin = SealedCapabilityAuthority(
        "smf", auth._keys["smf"], store=store, master_types=[], clock=FakeClock()
    )
    with pytest.raises(CapabilityError):
        twin.verify(master)
    twin.verify(new_master)


def test_revoked_single_proxy() -> None:
    auth = make_authority()
    master = auth.issue_master(CapType.SERVICE, OBJ, READ, change=True)
    p1, p2 = auth.derive_proxy(master), auth.derive_proxy(master)
    auth.revoke(p1)
    with pytest.raises(CapabilityError) as err:
        auth.verify(p1)
    assert err.value.code is ErrorCode.REVOKED
    auth.verify(p2)
    auth.verify(master)


def test_proxy_from_proxy_refused() -> None:
    auth = make_authority()
    master = auth.issue_master(CapType.SERVICE, OBJ, READ, change=True)
    proxy = auth.derive_proxy(master)
    for authenticated in (False, True):
        with pytest.raises(CapabilityError) as err:
            auth.derive_proxy(proxy, master_authenticated=authenticated)
        assert err.value.code is ErrorCode.NOT_AUTHORISED


def test_proxy_needs_change_bit_and_cannot_widen() -> None:
    auth = make_authority()
    fixed = auth.issue_master(CapType.SERVICE, OBJ, READ)
    with pytest.raises(CapabilityError) as err:
        auth.derive_proxy(fixed)
    assert err.value.code is ErrorCode.NOT_AUTHORISED
    master = auth.issue_master(CapType.SERVICE, OBJ, READ, change=True)
    with pytest.raises(CapabilityError) as err:
        auth.derive_proxy(master, prop=READ | ADMIN)
    assert err.value.code is ErrorCode.NOT_AUTHORISED


def test_masters_only_from_the_ca_role() -> None:
    server = SealedCapabilityAuthority(
        "server1",
        secrets.token_bytes(32),
        store=InMemoryRevocationStore(),
        master_types=[CapType.SESSION],
        clock=FakeClock(),
    )
    server.issue_master(CapType.SESSION, OBJ, READ)
    for t in (CapType.SERVICE, CapType.USER):
        with pytest.raises(CapabilityError) as err:
            server.issue_master(t, OBJ, READ)
        assert err.value.code is ErrorCode.NOT_AUTHORISED


def test_private_capability_needs_the_bound_subjects() -> None:
    auth = make_authority()
    user = auth.issue_master(CapType.USER, ObjectId(1), READ)
    dev = auth.issue_master(CapType.DEVICE, ObjectId(2), READ)
    other_user = auth.issue_master(CapType.USER, ObjectId(3), READ)
    master = auth.issue_master(CapType.SERVICE, OBJ, READ, change=True)
    priv = auth.derive_proxy(master, subjects=[user, dev])
    assert SysFlags.PRIVATE in priv.cap.sys
    assert auth.verify(priv, subjects=[user, dev]) == priv.cap
    # the binding covers the whole sealed subjects: the same 16 public bytes with another
    # expiry, holder key or tag do not match
    for subjects in (None, [], [user], [other_user, dev], [dev, user],
                     [dataclasses.replace(user, expires_at_ms=1), dev],
                     [dataclasses.replace(user, holder_key=b"k" * 32), dev],
                     [user, dataclasses.replace(dev, tag=bytes(len(dev.tag)))]):
        with pytest.raises(CapabilityError) as err:
            auth.verify(priv, subjects=subjects)
        assert err.value.code is ErrorCode.NOT_AUTHORISED


def test_unknown_issuer_and_trusted_keys() -> None:
    smf = make_authority(issuer="smf")
    other = make_authority(issuer="rogue")
    cap = other.issue_master(CapType.SERVICE, OBJ, READ)
    with pytest.raises(CapabilityError) as err:
        smf.verify(cap)
    assert err.value.code is ErrorCode.UNKNOWN_PRINCIPAL
    # a rogue issuer reusing the smf's name without its key
    impostor = make_authority(issuer="smf")
    with pytest.raises(CapabilityError) as err:
        smf.verify(impostor.issue_master(CapType.SERVICE, OBJ, READ))
    assert err.value.code is ErrorCode.BAD_TAG
    trusting = SealedCapabilityAuthority(
        "server",
        secrets.token_bytes(32),
        store=InMemoryRevocationStore(),
        trusted={"rogue": other._keys["rogue"]},
        clock=FakeClock(),
    )
    trusting.verify(cap)


def test_only_issuer_revokes() -> None:
    a, b = make_authority(issuer="a"), make_authority(issuer="b")
    cap = a.issue_master(CapType.USER, OBJ, READ)
    with pytest.raises(CapabilityError) as err:
        b.revoke(cap)
    assert err.value.code is ErrorCode.NOT_AUTHORISED


def test_purge_forgets_expired_revocations() -> None:
    clock = FakeClock()
    store = InMemoryRevocationStore()
    auth = SealedCapabilityAuthority(
        "smf", secrets.token_bytes(32), store=store, master_types=[CapType.SESSION], clock=clock
    )
    timed = auth.issue_master(CapType.SESSION, OBJ, READ, ttl_s=5)
    forever = auth.issue_master(CapType.SESSION, OBJ, READ)
    auth.revoke(timed)
    auth.revoke(forever)
    clock.t += 6
    assert auth.purge() == 1
    assert len(store) == 1


def test_short_tags_and_keys_refused() -> None:
    with pytest.raises(ValueError):
        SealedCapabilityAuthority("x", b"k" * 16, store=InMemoryRevocationStore())
    with pytest.raises(ValueError):
        SealedCapabilityAuthority("x", b"k" * 32, store=InMemoryRevocationStore(), tag_size=8)


# --- bindings: holder key, owner (no bearer tokens) -------------------------------------------


def test_holder_key_and_owner_round_trip_and_are_under_the_tag() -> None:
    auth = make_authority()
    app = Identity.generate("app")
    owner = ObjectId.from_name("u-ada")
    dev = auth.issue_master(CapType.DEVICE, ObjectId(2), READ, ttl_s=60,
                            holder_key=app.public.fingerprint(), owner=owner)
    assert dev.holder_key == app.public.fingerprint() and len(dev.holder_key) == 32
    assert dev.owner == owner.to_bytes() and len(dev.owner) == 9
    assert owner.to_bytes() == owner.eui64.to_bytes(8, "big") + bytes([owner.netadmin])
    again = SealedCapability.from_bytes(dev.to_bytes())
    assert again == dev and SealedCapability.parse(dev.to_text()) == dev
    auth.verify(again)
    other = Identity.generate("app")
    for changed in (dataclasses.replace(dev, holder_key=other.public.fingerprint()),
                    dataclasses.replace(dev, holder_key=None),
                    dataclasses.replace(dev, owner=ObjectId.from_name("u-bob").to_bytes()),
                    dataclasses.replace(dev, owner=None)):
        with pytest.raises(CapabilityError) as err:
            auth.verify(changed)
        assert err.value.code is ErrorCode.BAD_TAG


@pytest.mark.parametrize("field_name,size", [("holder_key", 16), ("holder_key", 33),
                                             ("owner", 8), ("holder", 16)])
def test_binding_fields_have_exact_sizes(field_name: str, size: int) -> None:
    cap = make_authority().issue_master(CapType.USER, ObjectId(1), READ)
    with pytest.raises(ValueError):
        dataclasses.replace(cap, **{field_name: b"x" * size})


def test_require_holder_and_owner() -> None:
    auth = make_authority()
    app, other = Identity.generate("app"), Identity.generate("app")
    user = auth.issue_master(CapType.USER, ObjectId.from_name("u-ada"), READ,
                             holder_key=app.public.fingerprint())
    dev = auth.issue_master(CapType.DEVICE, ObjectId(2), READ, holder_key=app.public.fingerprint(),
                            owner=ObjectId.from_name("u-ada"))
    bob = auth.issue_master(CapType.USER, ObjectId.from_name("u-bob"), READ,
                            holder_key=app.public.fingerprint())
    unbound = auth.issue_master(CapType.USER, ObjectId(3), READ)
    require_holder(user, app.public.fingerprint())
    require_owner(dev, user.cap)
    for call in (lambda: require_holder(user, other.public.fingerprint()),
                 lambda: require_holder(unbound, app.public.fingerprint()),
                 lambda: require_owner(dev, bob.cap),
                 lambda: require_owner(unbound, user.cap)):
        with pytest.raises(CapabilityError) as err:
            call()
        assert err.value.code is ErrorCode.NOT_AUTHORISED


def test_holder_binding_is_a_full_hash_of_sealed_subjects() -> None:
    auth = make_authority()
    user = auth.issue_master(CapType.USER, ObjectId(1), READ)
    dev = auth.issue_master(CapType.DEVICE, ObjectId(2), READ)
    binding = holder_binding([user, dev])
    assert len(binding) == 32
    assert binding != holder_binding([dev, user])
    with pytest.raises(CapabilityError):
        holder_binding([user.cap, dev])  # type: ignore[list-item]
