"""HSE (paper section 3.1): a task crosses three hops (instance -> master A's proxy -> master B's
proxy -> instance), each with its own key, decrypted and re-encrypted at each proxy; a tampered,
re-routed, replayed or stale frame is refused, and the replay cache stays bounded."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import frame, hse
from agents.security.tcfdl.replay import ReplayCache

NODES = ("app-i", "proxy-a", "proxy-b", "app-j")


def _keys() -> list[bytes]:
    return [hse.new_key() for _ in range(3)]


def _three_hops(payload: bytes, keys: list[bytes], now: int = 5000) -> tuple[bytes, list[bytes]]:
    """The frame delivered to app-j and the frames on each hop."""
    f0 = hse.seal(keys[0], function="resnet", sender="app-i", receiver="proxy-a", hop=0,
                  msg_id=hse.new_msg_id(), sent_ms=now, payload=payload)
    f1 = hse.forward(keys[0], f0, keys[1], me="proxy-a", expect_sender="app-i", expect_hop=0,
                     next_receiver="proxy-b", replay=ReplayCache(), now_ms=now)
    f2 = hse.forward(keys[1], f1, keys[2], me="proxy-b", expect_sender="proxy-a", expect_hop=1,
                     next_receiver="app-j", replay=ReplayCache(), now_ms=now)
    return f2, [f0, f1, f2]


def _open_last(keys: list[bytes], data: bytes, replay: ReplayCache | None = None,
               now: int = 5000) -> hse.HseMessage:
    return hse.open_frame(keys[2], data, me="app-j", expect_sender="proxy-b", expect_hop=2,
                          replay=replay, now_ms=now, expect_function="resnet")


@pytest.mark.parametrize("size", [0, 1, 1024, 256 * 1024, 4 * 1024 * 1024])
def test_three_hops_round_trip(size: int) -> None:
    payload = os.urandom(size)
    keys = _keys()
    last, frames = _three_hops(payload, keys)
    msg = _open_last(keys, last, ReplayCache())
    assert msg.payload == payload and msg.header.hop == 2 and msg.header.sender == "proxy-b"
    ids = {hse.read_header(f).msg_id for f in frames}
    assert len(ids) == 1  # one task id across its hops
    if size >= 64:
        assert all(payload[:64] not in f for f in frames)  # never in clear on the wire


@settings(max_examples=30, deadline=None)
@given(payload=st.binary(max_size=4096), bit=st.integers(0, 7), where=st.floats(0, 1))
def test_any_flipped_bit_is_refused(payload: bytes, bit: int, where: float) -> None:
    keys = _keys()
    last, _ = _three_hops(payload, keys)
    pos = min(int(where * len(last)), len(last) - 1)
    bad = bytearray(last)
    bad[pos] ^= 1 << bit
    with pytest.raises(ProtocolError):
        _open_last(keys, bytes(bad))


def test_each_hop_needs_its_own_key() -> None:
    keys = _keys()
    _, frames = _three_hops(b"task", keys)
    with pytest.raises(ProtocolError) as e:  # hop 2's frame under hop 1's key
        hse.open_frame(keys[1], frames[2], me="app-j", expect_sender="proxy-b", expect_hop=2,
                       replay=None, now_ms=5000)
    assert e.value.code is ErrorCode.DECRYPT_FAILED


def test_rerouted_frame_refused() -> None:
    keys = _keys()
    _, frames = _three_hops(b"task", keys)
    with pytest.raises(ProtocolError) as e:  # delivered to another node
        hse.open_frame(keys[2], frames[2], me="app-k", expect_sender="proxy-b", expect_hop=2,
                       replay=None, now_ms=5000)
    assert e.value.code is ErrorCode.WRONG_RECIPIENT
    with pytest.raises(ProtocolError) as e:  # hop 1's frame replayed onto hop 2's position
        hse.open_frame(keys[2], frames[1], me="proxy-b", expect_sender="proxy-b", expect_hop=2,
                       replay=None, now_ms=5000)
    assert e.value.code is ErrorCode.WRONG_STEP


def test_rewritten_header_refused_even_with_the_right_key() -> None:
    """A relabelled receiver passes the cheap checks but not the tag (AAD binds the header)."""
    keys = _keys()
    last, _ = _three_hops(b"task", keys)
    header_bytes, body = frame.unpack(last)
    h = hse.decode_header(header_bytes)
    for change in ({"receiver": "app-k"}, {"function": "other"}, {"hop": 1},
                   {"msg_id": os.urandom(16)}, {"sent_ms": h.sent_ms + 1}):
        forged = hse.HseHeader(**{**h.__dict__, **change})
        data = frame.pack(hse.encode_header(forged), bytes(body))
        with pytest.raises(ProtocolError) as e:
            hse.open_frame(keys[2], data, me=forged.receiver, expect_sender="proxy-b",
                           expect_hop=forged.hop, replay=None, now_ms=5000)
        assert e.value.code is ErrorCode.DECRYPT_FAILED, change


@settings(max_examples=50, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=32), min_size=3, max_size=3),
       hop=st.integers(0, 15), sent=st.integers(0, 2**63))
def test_header_encoding_round_trips(names: list[str], hop: int, sent: int) -> None:
    h = hse.HseHeader(1, *names, hop, os.urandom(16), sent, os.urandom(12))
    data = hse.encode_header(h)
    assert hse.decode_header(data) == h
    with pytest.raises(ProtocolError):
        hse.decode_header(data + b"x")


def test_replay_and_stale_refused() -> None:
    keys = _keys()
    last, _ = _three_hops(b"task", keys)
    cache = ReplayCache(window_ms=1000, skew_ms=100)
    _open_last(keys, last, cache)
    with pytest.raises(ProtocolError) as e:
        _open_last(keys, last, cache)
    assert e.value.code is ErrorCode.REPLAY
    for now in (5000 + 1001, 5000 - 101):
        with pytest.raises(ProtocolError) as e:
            _open_last(keys, last, ReplayCache(window_ms=1000, skew_ms=100), now=now)
        assert e.value.code is ErrorCode.EXPIRED


def test_forgeries_do_not_fill_the_replay_cache() -> None:
    keys = _keys()
    cache = ReplayCache()
    last, _ = _three_hops(b"task", keys)
    bad = bytearray(last)
    bad[-1] ^= 1
    with pytest.raises(ProtocolError):
        _open_last(keys, bytes(bad), cache)
    assert len(cache) == 0


def test_replay_cache_bounded_in_size_and_time() -> None:
    cache = ReplayCache(max_entries=3, window_ms=100, skew_ms=0)
    for i in range(3):
        cache.check_and_record(i, sent_ms=1000, now_ms=1000)
    with pytest.raises(ProtocolError) as e:  # full of ids still inside the window: fail closed
        cache.check_and_record(3, sent_ms=1050, now_ms=1050)
    assert e.value.code is ErrorCode.LIMIT_REACHED
    cache.check_and_record(3, sent_ms=1101, now_ms=1101)  # the first three aged out
    assert len(cache) == 1


def test_oversize_and_bad_inputs_refused() -> None:
    key = hse.new_key()
    args = {"function": "f", "sender": "a", "receiver": "b", "hop": 0,
            "msg_id": hse.new_msg_id(), "sent_ms": 0}
    with pytest.raises(ProtocolError) as e:
        hse.seal(key, payload=bytes(frame.MAX_TASK_SIZE + 1), **args)  # type: ignore[arg-type]
    assert e.value.code is ErrorCode.LIMIT_REACHED
    with pytest.raises(ProtocolError) as e:
        hse.open_frame(key, bytes(frame.MAX_FRAME_SIZE + 1), me="b", expect_sender="a",
                       expect_hop=0, replay=None, now_ms=0)
    assert e.value.code is ErrorCode.LIMIT_REACHED
    with pytest.raises(ProtocolError) as e:
        hse.seal(b"short", payload=b"", **args)  # type: ignore[arg-type]
    assert e.value.code is ErrorCode.MALFORMED
    with pytest.raises(ProtocolError) as e:
        hse.open_frame(key, b"\x00\x00", me="b", expect_sender="a", expect_hop=0, replay=None,
                       now_ms=0)
    assert e.value.code is ErrorCode.MALFORMED
