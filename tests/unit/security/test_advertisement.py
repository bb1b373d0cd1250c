"""Signed advertisements (Algorithm 1): signature, freshness window, replay, bounds, expiry;
Algorithm 2's choice over them."""

from __future__ import annotations

import dataclasses

import pytest

from agents.security.advertisement import (
    Advertisement,
    AdvertTable,
    choose_cloud,
    sign_advertisement,
)
from agents.security.advertisement import Amounts as Resources
from agents.security.crypto import Identity, PublicIdentity
from agents.security.errors import ErrorCode, ProtocolError

MIB = 1024 * 1024
GIB = 1024 * MIB
EDGE1 = Identity.generate("edge1")
EDGE2 = Identity.generate("edge2")
MALLORY = Identity.generate("edge1")  # claims edge1's name with its own key


def advert(cloud: str, seq: int, t: float, free_mem: int = GIB, cpu: int = 1000) -> Advertisement:
    res = Resources(cpu, free_mem, 10 * GIB, 40_000_000, 0)
    return Advertisement(cloud, seq, int(t * 1000), res, res)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def table(clock: Clock, **kw: float) -> AdvertTable:
    keys: dict[str, PublicIdentity] = {"edge1": EDGE1.public, "edge2": EDGE2.public}
    return AdvertTable(keys.get, clock=clock, **kw)  # type: ignore[arg-type]


def refused(t: AdvertTable, body: bytes, sig: bytes) -> ErrorCode:
    before = t.fresh()
    with pytest.raises(ProtocolError) as info:
        t.accept(body, sig)
    assert t.fresh() == before  # a refusal changes nothing
    return info.value.code


def test_signed_advertisement_is_kept_with_its_age() -> None:
    clock = Clock(1000.0)
    t = table(clock)
    a = advert("edge1", 1, 1000.0)
    assert t.accept(*sign_advertisement(EDGE1, a)) == a
    clock.t = 1002.5
    got = t.get("edge1")
    assert got is not None and got[0] == a and got[1] == 2.5


def test_forged_tampered_unknown_and_replayed_advertisements_are_refused() -> None:
    clock = Clock(1000.0)
    t = table(clock)
    body, sig = sign_advertisement(EDGE1, advert("edge1", 5, 1000.0))
    assert refused(t, *sign_advertisement(MALLORY, advert("edge1", 5, 1000.0))) == \
        ErrorCode.BAD_SIGNATURE
    tampered = advert("edge1", 5, 1000.0, free_mem=64 * GIB).body()
    assert refused(t, tampered, sig) == ErrorCode.BAD_SIGNATURE
    stranger = Identity.generate("edge9")
    assert refused(t, *sign_advertisement(stranger, advert("edge9", 1, 1000.0))) == \
        ErrorCode.UNKNOWN_PRINCIPAL
    t.accept(body, sig)
    assert refused(t, body, sig) == ErrorCode.REPLAY  # the same message again
    older = sign_advertisement(EDGE1, advert("edge1", 4, 1000.5))
    assert refused(t, *older) == ErrorCode.REPLAY  # an older sequence number
    assert refused(t, b"\x07garbage", sig) == ErrorCode.MALFORMED
    assert refused(t, b"x" * 5000, sig) == ErrorCode.LIMIT_REACHED


def test_freshness_window() -> None:
    clock = Clock(1000.0)
    t = table(clock, window_s=30.0)
    assert refused(t, *sign_advertisement(EDGE1, advert("edge1", 1, 960.0))) == \
        ErrorCode.EXPIRED
    assert refused(t, *sign_advertisement(EDGE1, advert("edge1", 1, 1040.0))) == \
        ErrorCode.EXPIRED
    t.accept(*sign_advertisement(EDGE1, advert("edge1", 1, 975.0)))  # 25 s old: inside


def test_stale_advertisements_expire_but_their_sequence_floor_stays() -> None:
    clock = Clock(1000.0)
    t = table(clock, ttl_s=10.0, window_s=60.0)  # replay inside the window
    body, sig = sign_advertisement(EDGE1, advert("edge1", 3, 1000.0))
    t.accept(body, sig)
    t.accept(*sign_advertisement(EDGE2, advert("edge2", 1, 1000.0)))
    clock.t = 1008.0
    t.accept(*sign_advertisement(EDGE2, advert("edge2", 2, 1008.0)))
    clock.t = 1011.0
    assert [a.cloud for a, _ in t.fresh()] == ["edge2"] and t.get("edge1") is None
    assert t.expire() == 1 and len(t) == 1
    assert refused(t, body, sig) == ErrorCode.REPLAY


def test_table_is_bounded() -> None:
    clock = Clock(1000.0)
    ids = {f"e{i}": Identity.generate(f"e{i}") for i in range(5)}
    t = AdvertTable(lambda n: ids[n].public if n in ids else None, max_clouds=3, clock=clock)
    for i in range(5):
        clock.t += 1
        t.accept(*sign_advertisement(ids[f"e{i}"], advert(f"e{i}", 1, clock.t)))
    assert len(t) == 3 and [a.cloud for a, _ in t.fresh()] == ["e2", "e3", "e4"]


def test_signing_refuses_another_name() -> None:
    with pytest.raises(ValueError):
        sign_advertisement(EDGE1, advert("edge2", 1, 0.0))


# -- Algorithm 2 ---------------------------------------------------------------------------


def test_jetson_class_host_refused_for_a_2gb_service_x86_accepted() -> None:
    jetson = advert("jetson1", 1, 0.0, free_mem=1536 * MIB, cpu=500)
    x86 = advert("x86-1", 1, 0.0, free_mem=3 * GIB, cpu=1000)
    need = Resources(cpu_millicores=250, memory_bytes=2 * GIB)
    placed = choose_cloud(need, [jetson, x86])
    assert placed.chosen == "x86-1"
    assert placed.ignored == (("jetson1", f"memory_bytes {2 * GIB} > {1536 * MIB}"),)
    refused_all = choose_cloud(need, [jetson])
    assert refused_all.chosen is None and "jetson1" in refused_all.reason()
    assert choose_cloud(need, []).chosen is None


def test_exact_fit_accepted_zero_request_refused_and_ties_deterministic() -> None:
    a = advert("b-edge", 1, 0.0, free_mem=GIB)
    b = advert("a-edge", 1, 0.0, free_mem=GIB)
    assert choose_cloud(Resources(memory_bytes=GIB), [a, b]).chosen == "a-edge"
    assert choose_cloud(Resources(memory_bytes=GIB), [b, a]).chosen == "a-edge"
    assert choose_cloud(Resources(), [a, b]).chosen is None
    near = {"b-edge": 1.0, "a-edge": 2.0}
    assert choose_cloud(Resources(memory_bytes=1), [a, b], distance=near.__getitem__).chosen \
        == "b-edge"
    assert choose_cloud(Resources(memory_bytes=1), [a, b], exclude=["a-edge"]).chosen == "b-edge"


def test_advertisement_round_trips_through_its_body() -> None:
    from agents.security.advertisement import parse_advertisement

    a = dataclasses.replace(advert("edge1", 7, 12.0), gpu_source="nvml",
                            gpu_utilisation_permille=400)
    assert parse_advertisement(a.body()) == a
