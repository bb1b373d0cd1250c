"""The phase order of a request, and the RASP relay split around the stop (begin: steps 1-8,
finish: SetTransfer then steps 9-11) against recording stand-ins for the three parties."""

from __future__ import annotations

from typing import Any

import pytest

from agents.security.crypto import Identity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources, TransferDescriptor
from agents.smf.domain import DIFF_ORDER, PAPER_ORDER, parse_order
from agents.smf.relay import RECEIVER, REGISTRY, RaspRelay

PREPARED = TransferDescriptor("nms", "reg:5000/nms", "", 0)
PUSHED = TransferDescriptor("nms", "reg:5000/edge1/nms:m-1", "sha256:" + "ab" * 32, 123)


@pytest.mark.parametrize(("text", "order"), [("", DIFF_ORDER), ("diff", DIFF_ORDER),
                                             ("paper", PAPER_ORDER)])
def test_known_orders_parse_and_empty_means_diff(text: str, order: str) -> None:
    assert parse_order(text) == order


@pytest.mark.parametrize("text", ["Paper", "DIFF", "paper ", "fast", "x" * 1000])
def test_unknown_orders_are_refused_as_malformed(text: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_order(text)
    assert err.value.code == ErrorCode.MALFORMED and "unknown migration order" in str(err.value)
    assert len(str(err.value)) < 200  # the refusal does not echo an unbounded request


class Party:
    """Answers step k with a message naming step k+1; records what it was handed."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def deliver(self, message: bytes, migration_id: str = "") -> Any:
        step = int(message.decode().removeprefix("m"))
        self.log.append(("deliver", step))
        reply = b"" if step == 11 else f"m{step + 1}".encode()
        return (reply, 0.001) if RECEIVER[step] == REGISTRY else (reply, False, 0.001)

    def prepare_source(self, *args: Any) -> None:
        self.log.append(("prepare", args[-1]))

    def advertise(self, migration_id: str, server: Any) -> tuple[bytes, bytes]:
        return b"m1", b"sid"

    def set_transfer(self, session_id: bytes, transfer: TransferDescriptor) -> None:
        self.log.append(("set_transfer", session_id, transfer))


def _relay(log: list[Any]) -> RaspRelay:
    return RaspRelay(Party(log), Party(log), Party(log))  # type: ignore[arg-type]


def _begin(relay: RaspRelay) -> Any:
    a, b = Identity.generate("edge1").public, Identity.generate("edge2").public
    return relay.begin("m-1", source=a, destination=b, requirement=Resources(cpu=1),
                       transfer=PREPARED)


def test_begin_runs_steps_1_to_8_and_finish_sets_the_transfer_before_step_9() -> None:
    log: list[Any] = []
    relay = _relay(log)
    hs = _begin(relay)
    assert log == [("prepare", PREPARED), *(("deliver", k) for k in range(1, 9))]
    assert hs.step9 == b"m9" and not hs.finished
    log.clear()
    relay.finish(hs, PUSHED)
    assert log == [("set_transfer", b"sid", PUSHED), ("deliver", 9), ("deliver", 10),
                   ("deliver", 11)]
    assert hs.finished and sorted(hs.timings.message_bytes) == list(range(1, 12))


def test_finish_without_a_transfer_keeps_the_prepared_one_and_runs_once() -> None:
    log: list[Any] = []
    relay = _relay(log)
    hs = _begin(relay)
    relay.finish(hs)
    assert not any(e[0] == "set_transfer" for e in log)
    with pytest.raises(ProtocolError) as err:  # a second finish would replay steps 9-11
        relay.finish(hs, PUSHED)
    assert err.value.code == ErrorCode.WRONG_STEP


def test_handshake_is_begin_then_finish() -> None:
    log: list[Any] = []
    a, b = Identity.generate("edge1").public, Identity.generate("edge2").public
    hs = _relay(log).handshake("m-1", source=a, destination=b, requirement=Resources(cpu=1),
                               transfer=PREPARED)
    assert log == [("prepare", PREPARED), *(("deliver", k) for k in range(1, 12))]
    assert hs.finished and set(hs.timings.stage_s) == {1, 2, 3}
