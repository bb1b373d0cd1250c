"""The two decisions of BloSM (seed 001, Algorithms 1-2): where to write the metadata and
when it counts as written (`write_to_blockchain`), and whether a destination takes the
container (`self_evaluate`).  See their docstrings for how the paper's pseudocode is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agents.ledger.consensus import DEFAULT_QUORUM, required_confirmations
from agents.ledger.transactions import ContainerMetadata

# ---------------------------------------------------------------------------------- Algorithm 1


@dataclass(frozen=True)
class SubmitStatus:
    """Whether newTransaction accepted the metadata: the transaction id, or why not."""

    ok: bool
    tx_id: str = ""
    error: str = ""


class LedgerPort(Protocol):
    """What Algorithm 1 needs from 'Blockchain.instance()'."""

    def new_transaction(self, metadata: ContainerMetadata) -> SubmitStatus:
        """Sign and submit `metadata` as a transaction (Algorithm 1, newTransaction)."""
        ...

    def confirmations(self, tx_id: str, *, at_least: int = 0, wait_s: float = 0.0) -> int:
        """Current confirmations of `tx_id`; may block up to wait_s until >= at_least."""
        ...

    def total_nodes(self) -> int:
        """How many nodes confirm blocks now (Algorithm 1, totalNodes)."""
        ...


@dataclass(frozen=True)
class WriteResult:
    """Algorithm 1's outcome: ok once `confirmations` >= `required` of `total_nodes`."""

    ok: bool
    tx_id: str
    confirmations: int
    total_nodes: int
    required: int
    elapsed_s: float
    reason: str = ""


def write_to_blockchain(
    port: LedgerPort,
    metadata: ContainerMetadata,
    *,
    quorum: float = DEFAULT_QUORUM,
    timeout_s: float,
    clock: Callable[[], float],
    poll_s: float = 0.05,
) -> WriteResult:
    """Algorithm 1: write the metadata, then wait until >= quorum of the nodes confirmed.

    Follows the paper line by line (newTransaction; false if not OK; c = confirmations,
    n = totalNodes; while c < n * 0.9 re-read c), with two changes the spec asks for: the loop
    ends with ok=False after `timeout_s` instead of spinning forever, and the threshold is
    computed exactly (`required_confirmations`).  `n` is re-read on every round so a node that
    registers while we wait is counted.  Each round asks the port to block up to `poll_s`
    until the required count is reached (a gRPC port long-polls, so this is not a busy loop).
    """
    start = clock()
    status = port.new_transaction(metadata)
    if not status.ok:
        return WriteResult(False, status.tx_id, 0, 0, 0, clock() - start, status.error)
    n = port.total_nodes()
    need = required_confirmations(n, quorum)
    c = port.confirmations(status.tx_id)
    while c < need:
        remaining = timeout_s - (clock() - start)
        if remaining <= 0:
            return WriteResult(
                False, status.tx_id, c, n, need, clock() - start,
                f"timed out after {timeout_s:.3f} s with {c}/{n} confirmations (need {need})",
            )
        c = port.confirmations(status.tx_id, at_least=need, wait_s=min(poll_s, remaining))
        n = port.total_nodes()
        need = required_confirmations(n, quorum)
    return WriteResult(True, status.tx_id, c, n, need, clock() - start)


# ---------------------------------------------------------------------------------- Algorithm 2


@dataclass(frozen=True)
class NodeResources:
    """Algorithm 2's `sys`: the destination's free resources and its application types."""

    free_memory: int  # bytes, compared with metadata.total_size (as in the paper)
    free_cpu: int  # millicores
    free_gpu: int  # milli-GPU
    application_types: tuple[str, ...]


@dataclass(frozen=True)
class SelfEvaluation:
    """The outcome of Algorithm 2 and the `prob` entries that led to it."""

    source_ip: str
    accept: bool  # the Boolean flag sent with migrationRequest(source_ip, result)
    memory_ok: bool
    cpu_ok: bool
    gpu_ok: bool
    type_matches: int  # how many local applications have meta.type
    reason: str


def self_evaluate(metadata: ContainerMetadata, node: NodeResources) -> SelfEvaluation:
    """Algorithm 2, destination node self-evaluation, read as follows.

    The pseudocode appends `meta.size > sys.memory(free)` (and the same for cpu and gpu) to
    `prob`, then counts the FALSE entries and rejects when that count exceeds one.  Read
    literally, a node with every resource free would be rejected and a node lacking all three
    accepted, which contradicts the prose (section 4.2): "true means that the node can provide
    this resource and false means the opposite" and "[result] is updated to false ... if more
    than one of the resources fail in comparison".  We follow the prose, which is the only
    reading consistent with the decision rule:

    1. prob = [size <= free memory, cpu <= free cpu, gpu <= free gpu]  (equal still fits);
    2. one TRUE per local application whose type equals meta.type (lines 11-13);
    3. result = TRUE; if len(prob) == 3 (no application type matched) result = FALSE;
       otherwise result = FALSE when more than one entry of prob is FALSE.

    So a destination with a matching application type accepts when at most ONE of
    memory / CPU / GPU is short.  That tolerance is the paper's rule and is kept exactly; a
    caller that wants all three to fit can check the `*_ok` fields.
    """
    prob = [
        metadata.total_size <= node.free_memory,
        metadata.cpu_usage <= node.free_cpu,
        metadata.gpu_usage <= node.free_gpu,
    ]
    matches = sum(1 for app_type in node.application_types if app_type == metadata.type)
    prob.extend([True] * matches)
    result = True
    failed = prob.count(False)
    if len(prob) == 3:
        result = False
        reason = f"no local application of type {metadata.type!r}"
    elif failed > 1:
        result = False
        reason = f"{failed} of memory/cpu/gpu do not fit"
    else:
        reason = "fits" if failed == 0 else "one resource short (tolerated by Algorithm 2)"
    return SelfEvaluation(
        source_ip=metadata.source_ip,
        accept=result,
        memory_ok=prob[0],
        cpu_ok=prob[1],
        gpu_ok=prob[2],
        type_matches=matches,
        reason=reason,
    )
