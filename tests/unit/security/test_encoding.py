from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.security import encoding
from agents.security.errors import ErrorCode, ProtocolError

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@given(values)
def test_roundtrip_is_identity(value: object) -> None:
    assert encoding.decode(encoding.encode(value)) == value


@given(values)
def test_encoding_is_deterministic_and_canonical(value: object) -> None:
    data = encoding.encode(value)
    assert encoding.encode(encoding.decode(data)) == data


@given(values, st.binary(min_size=1, max_size=4))
def test_trailing_bytes_refused(value: object, extra: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        encoding.decode(encoding.encode(value) + extra)
    assert err.value.code is ErrorCode.MALFORMED


def test_map_key_order_does_not_matter_to_encoding() -> None:
    assert encoding.encode({"b": 1, "a": 2}) == encoding.encode({"a": 2, "b": 1})


def test_unsorted_or_duplicate_keys_refused() -> None:
    good = encoding.encode({"a": 1, "b": 2})
    # swap the two entries by hand: same bytes, wrong order
    entry_a = good[5 : 5 + 6 + 9]
    entry_b = good[5 + 15 :]
    with pytest.raises(ProtocolError):
        encoding.decode(good[:5] + entry_b + entry_a)
    with pytest.raises(ProtocolError):
        encoding.decode(good[:5] + entry_a + entry_a)


def test_bool_and_int_are_distinct() -> None:
    assert encoding.encode(True) != encoding.encode(1)


@dataclass(frozen=True)
class _Inner:
    x: int
    name: str


@dataclass(frozen=True)
class _Outer:
    inner: _Inner
    items: tuple[bytes, ...]
    maybe: int | None
    flag: bool


@dataclass(frozen=True)
class _Other:
    x: int
    name: str


def test_dataclass_roundtrip_and_type_binding() -> None:
    outer = _Outer(_Inner(3, "n"), (b"a", b"b"), None, True)
    assert encoding.decode_as(_Outer, encoding.encode(outer)) == outer
    with pytest.raises(ProtocolError) as err:
        encoding.decode_as(_Other, encoding.encode(_Inner(1, "a")))
    assert err.value.code is ErrorCode.MALFORMED


def test_wrong_field_types_refused() -> None:
    bad = encoding.encode({"@": "_Inner", "x": "notint", "name": "n"})
    with pytest.raises(ProtocolError):
        encoding.decode_as(_Inner, bad)
    extra = encoding.encode({"@": "_Inner", "x": 1, "name": "n", "y": 2})
    with pytest.raises(ProtocolError):
        encoding.decode_as(_Inner, extra)


def test_out_of_range_int_refused() -> None:
    with pytest.raises(ProtocolError):
        encoding.encode(2**63)


@given(st.binary(max_size=64))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        encoding.decode(data)
    except ProtocolError as err:
        assert err.code is ErrorCode.MALFORMED
