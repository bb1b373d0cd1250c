"""The 3.10 stand-in for `enum.StrEnum` behaves as Python 3.11's own in every way the agents
use it (checked against the standard library's class on this interpreter)."""

from __future__ import annotations

import enum
import json

from agents.common.compat import StrEnum310


def _pair() -> tuple[type, type]:
    class Ours(StrEnum310):
        OK = "ok"
        FAILED = "failed"
        LATER = enum.auto()

    class Theirs(enum.StrEnum):
        OK = "ok"
        FAILED = "failed"
        LATER = enum.auto()

    return Ours, Theirs


def test_members_read_as_their_values_like_the_standard_strenum() -> None:
    ours, theirs = _pair()
    for name in ("OK", "FAILED", "LATER"):
        a, b = ours[name], theirs[name]
        assert (str(a), f"{a}", f"{a:>8}", a.value, a == b.value, isinstance(a, str)) == \
               (str(b), f"{b}", f"{b:>8}", b.value, b == b.value, isinstance(b, str))
        assert ours(b.value) is a  # lookup by value
        assert json.dumps({"k": a}) == json.dumps({"k": b})
    assert ours.LATER.value == "later"  # auto(): the lower-cased name, as 3.11 gives
    assert [m.value for m in ours] == [m.value for m in theirs]
