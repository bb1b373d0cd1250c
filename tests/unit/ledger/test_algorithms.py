"""Algorithm 1 (write + wait for 90 % confirmations) and Algorithm 2 (self-evaluation)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agents.ledger.consensus import required_confirmations
from agents.ledger.decisions import NodeResources, SubmitStatus, self_evaluate, write_to_blockchain
from agents.ledger.transactions import ContainerMetadata
from tests.unit.ledger.helpers import metadata

GB = 1_000_000_000


# ---------------------------------------------------------------------------- Algorithm 1


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakePort:
    """Confirmations arrive on a schedule of (time, count); waiting advances the fake clock."""

    clock: FakeClock
    nodes: int
    schedule: list[tuple[float, int]]
    submit_ok: bool = True
    node_schedule: list[tuple[float, int]] = field(default_factory=list)
    submitted: list[ContainerMetadata] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def new_transaction(self, metadata: ContainerMetadata) -> SubmitStatus:
        self.submitted.append(metadata)
        if not self.submit_ok:
            return SubmitStatus(False, error="refused: submitter is not registered")
        return SubmitStatus(True, tx_id="ab" * 32)

    def _count(self) -> int:
        return max([c for t, c in self.schedule if t <= self.clock.now], default=0)

    def confirmations(self, tx_id: str, *, at_least: int = 0, wait_s: float = 0.0) -> int:
        assert tx_id == "ab" * 32
        self.waits.append(wait_s)
        self.clock.now += wait_s
        return self._count()

    def total_nodes(self) -> int:
        return max([n for t, n in self.node_schedule if t <= self.clock.now], default=self.nodes)


def test_writes_then_waits_for_ninety_percent() -> None:
    clock = FakeClock()
    port = FakePort(clock, nodes=10, schedule=[(0.1, 3), (0.2, 8), (0.3, 9)])
    result = write_to_blockchain(port, metadata(), timeout_s=5, clock=clock, poll_s=0.05)
    assert result.ok and result.confirmations == 9 and result.required == 9
    assert result.total_nodes == 10
    assert result.elapsed_s == pytest.approx(0.3)
    assert port.submitted == [metadata()]


def test_failed_write_returns_false_without_waiting() -> None:
    clock = FakeClock()
    port = FakePort(clock, nodes=10, schedule=[], submit_ok=False)
    result = write_to_blockchain(port, metadata(), timeout_s=5, clock=clock)
    assert not result.ok and "not registered" in result.reason
    assert port.waits == []


def test_times_out_when_quorum_never_comes() -> None:
    clock = FakeClock()
    port = FakePort(clock, nodes=10, schedule=[(0.0, 8)])
    result = write_to_blockchain(port, metadata(), timeout_s=1.0, clock=clock, poll_s=0.1)
    assert not result.ok
    assert result.confirmations == 8 and result.required == 9
    assert "timed out" in result.reason and "8/10" in result.reason
    assert clock.now == pytest.approx(1.0)


def test_nodes_joining_while_waiting_raise_the_bar() -> None:
    clock = FakeClock()
    port = FakePort(clock, nodes=10, schedule=[(0.1, 9), (0.5, 18)],
                    node_schedule=[(0.0, 10), (0.05, 20)])
    result = write_to_blockchain(port, metadata(), timeout_s=5, clock=clock, poll_s=0.05)
    assert result.ok and result.required == 18 and result.total_nodes == 20


@pytest.mark.parametrize(
    ("n", "quorum", "need"),
    [(0, 0.9, 0), (1, 0.9, 1), (10, 0.9, 9), (11, 0.9, 10), (50, 0.9, 45), (70, 0.9, 63),
     (100, 0.9, 90), (100, 1.0, 100), (3, 0.5, 2)],
)
def test_required_confirmations_is_exact(n: int, quorum: float, need: int) -> None:
    assert required_confirmations(n, quorum) == need


def test_quorum_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError):
        required_confirmations(10, 0)
    with pytest.raises(ValueError):
        required_confirmations(10, 1.5)


# ---------------------------------------------------------------------------- Algorithm 2

# Figures from BloSM: the driver-behaviour container is 4.4 GB, the image-recognition one
# 2.13 GB; a Jetson Xavier AGX has 8 cores (8000 millicores) and one GPU (1000 milli-GPU).
DRIVER = metadata(total_size=4_400_000_000, cpu_usage=2000, gpu_usage=500, type="driver-profiling")

#   free memory, free cpu, free gpu, local application types, expected decision, why
TABLE = [
    (8 * GB, 8000, 1000, ("driver-profiling",), True, "everything fits"),
    (4_400_000_000, 2000, 500, ("driver-profiling",), True, "exactly equal still fits (>)"),
    (2 * GB, 8000, 1000, ("driver-profiling",), True, "only memory short: tolerated"),
    (8 * GB, 1000, 1000, ("driver-profiling",), True, "only cpu short: tolerated"),
    (8 * GB, 8000, 100, ("driver-profiling",), True, "only gpu short: tolerated"),
    (2 * GB, 1000, 1000, ("driver-profiling",), False, "memory and cpu short"),
    (2 * GB, 8000, 100, ("driver-profiling",), False, "memory and gpu short"),
    (8 * GB, 1000, 100, ("driver-profiling",), False, "cpu and gpu short"),
    (1 * GB, 100, 0, ("driver-profiling",), False, "all three short"),
    (8 * GB, 8000, 1000, ("image-recognition",), False, "no application of that type"),
    (8 * GB, 8000, 1000, (), False, "no applications at all (prob.size == 3)"),
    (2 * GB, 8000, 1000, ("image-recognition",), False, "one short and no type match"),
    (8 * GB, 8000, 1000, ("image-recognition", "driver-profiling"), True, "one of two types"),
    (2 * GB, 8000, 1000, ("driver-profiling", "driver-profiling"), True, "two matches, one short"),
    (2 * GB, 1000, 1000, ("driver-profiling", "driver-profiling"), False,
     "two matches do not offset two failures"),
]


@pytest.mark.parametrize(("mem", "cpu", "gpu", "types", "accept", "why"), TABLE,
                         ids=[row[-1] for row in TABLE])
def test_algorithm_2_decision_table(mem: int, cpu: int, gpu: int, types: tuple[str, ...],
                                    accept: bool, why: str) -> None:
    ev = self_evaluate(DRIVER, NodeResources(mem, cpu, gpu, types))
    assert ev.accept is accept, why
    assert ev.source_ip == DRIVER.source_ip
    assert (ev.memory_ok, ev.cpu_ok, ev.gpu_ok) == (
        DRIVER.total_size <= mem, DRIVER.cpu_usage <= cpu, DRIVER.gpu_usage <= gpu)
    assert ev.type_matches == types.count("driver-profiling")


def test_reasons_say_why() -> None:
    no_type = self_evaluate(DRIVER, NodeResources(8 * GB, 8000, 1000, ()))
    assert "no local application" in no_type.reason
    two_short = self_evaluate(DRIVER, NodeResources(GB, 1000, 1000, ("driver-profiling",)))
    assert "2 of memory/cpu/gpu" in two_short.reason
    tolerated = self_evaluate(DRIVER, NodeResources(GB, 8000, 1000, ("driver-profiling",)))
    assert "tolerated" in tolerated.reason
