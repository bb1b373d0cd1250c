"""Crash safety of Migrate Service (issue 5, part 5): faults at every phase, then a retry.

The lab of migration_lab.py (real agents over mTLS, node agents as processes, local engine, TLS
registry with auth). For every phase of the plan, the source's or the destination's node agent
is SIGKILLed just before the phase starts (a fault-injection step slotted into the SMF's plan),
or while a phase runs (a timer), and separately the registry is killed before push and before
pull. After each faulty migration the test checks the invariants, restarts what it killed and
retries the same Migrate Service:

* never two running copies (counted on the engine across both agents' container prefixes);
* the SMF location never names the destination unless its copy runs; a failure leaves either
  exactly one running copy (rolled back) or a journalled failed state;
* the retry completes (the location moves, exactly one copy runs at the destination);
* no NMS block is lost: the client (which finds the NMS only through the SMF) writes blocks
  before every migration and all of them read back with their SHA-256 after the retry.

What one engine does not prove: network partitions between real hosts (a killed agent's
containers keep running here exactly as on a real host, which is the case that matters).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.smf.domain import MigrationState, Phase, PhaseResult
from edgeferry.images.registry import REGISTRY_BINARY
from tests.integration.migration_lab import MigrationLab, migration_lab, phase_table

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

BOUNDARY = ["stop", "commit", "push", "rasp_handshake", "ledger_write", "self_evaluation",
            "pull", "run", "first_response", "rasp_location_update", "location_commit",
            "source_cleanup"]
DURING = [("source", "stop", 0.05), ("source", "push", 0.02), ("destination", "pull", 0.02),
          ("destination", "run", 0.1), ("destination", "first_response", 0.05)]


@dataclass
class Fault:
    kind: str      # "kill" (before the phase), "kill_during" (timer), "registry"
    role: str      # "source", "destination", "registry"
    phase: str
    delay: float = 0.0

    def __str__(self) -> str:
        return f"{self.kind}:{self.role}@{self.phase}"


FAULTS = ([Fault("kill", role, phase) for phase in BOUNDARY
           for role in ("source", "destination")]
          + [Fault("kill_during", role, phase, delay) for role, phase, delay in DURING]
          + [Fault("registry", "registry", phase) for phase in ("push", "pull")])


@pytest.fixture
def lab(lab_pki, tmp_path: Path) -> Iterator[MigrationLab]:  # type: ignore[no-untyped-def]
    with migration_lab(lab_pki, tmp_path) as lab:
        yield lab


def _kill_registry(lab: MigrationLab) -> None:
    lab.registry.process.kill()
    lab.registry.process.wait()


def _start_registry(lab: MigrationLab) -> None:
    reg = lab.registry
    if reg.process.poll() is None:
        return
    log = (reg.workdir / "registry.log").open("ab")
    reg.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(reg.workdir / "config.yml")],
                                   stdout=log, stderr=subprocess.STDOUT)
    log.close()
    reg._wait_ready()


def _injector(lab: MigrationLab, fault: Fault, source: str, destination: str
              ) -> Callable[[MigrationState], PhaseResult]:
    def inject(state: MigrationState) -> PhaseResult:
        if fault.kind == "registry":
            _kill_registry(lab)
            return PhaseResult(detail="registry killed")
        node = lab.nodes[source if fault.role == "source" else destination]
        if fault.kind == "kill":
            node.kill()
        else:
            threading.Timer(fault.delay, node.kill).start()
        return PhaseResult(detail=f"{fault} ({node.name})")

    return inject


def test_faults_at_every_phase_then_retry(lab: MigrationLab) -> None:
    lab.push_base_image()  # base layers in the registry once, as on a provisioned lab
    client = lab.nms_client(retry_deadline=180.0)
    blocks: dict[int, str] = {}
    ports = lab.ports()
    counts = {"migrations": 0, "faults": 0, "failed_then_retried": 0, "retries_to_success": 0,
              "survived_without_retry": 0, "rolled_back": 0, "failed_state": 0,
              "lost_blocks": 0, "double_running": 0}
    started = time.monotonic()

    def write(n: int) -> None:
        for _ in range(n):
            data = os.urandom(client.block_size)
            bid = client.allocate()
            client.write(bid, data)
            blocks[bid] = hashlib.sha256(data).hexdigest()

    def check_invariants(where: str) -> None:
        running = lab.running_copies()
        if len(running) > 1:
            counts["double_running"] += 1
        location, _ = lab.location()
        host = lab.running_on()
        # the location never names a host whose copy is not running once it moved forward
        assert len(running) <= 1, f"{where}: two copies run: {running}"
        if host is not None and location != host:
            # only allowed while a failed migration keeps an orphan at its destination
            row = ports.container.journal.get(lab.service_id)  # type: ignore[union-attr]
            assert row is not None and row.state == "failed" and row.destination == host, (
                f"{where}: {host} runs the copy, location says {location}, journal {row}")

    for i, fault in enumerate(FAULTS):
        source, _ = lab.location()
        destination = "edge-b" if source == "edge-a" else "edge-a"
        write(3)
        ports.extra_phases = [(fault.phase, Phase(f"fault_{fault.kind}",
                                                  _injector(lab, fault, source, destination)))]
        try:
            report = lab.migrate(destination)
        finally:
            ports.extra_phases = []
        counts["migrations"] += 1
        counts["faults"] += 1
        check_invariants(f"after {fault}")
        # bring back what the fault took down
        _start_registry(lab)
        for node in lab.nodes.values():
            if not node.alive:
                node.start()
        if report.migrated:
            counts["survived_without_retry"] += 1  # e.g. source killed after the commit
            assert lab.location()[0] == destination
        else:
            abort = next((p for p in report.phases if p.phase == "abort"), None)
            if abort is not None and abort.outcome == "ok":
                counts["rolled_back"] += 1
                assert lab.running_on() == source, f"{fault}: rolled back but {lab.running_on()}"
            else:
                counts["failed_state"] += 1
            assert lab.location()[0] == source
            counts["failed_then_retried"] += 1
            retry = lab.migrate(destination)  # the SMF continues it: same id, attempt + 1
            counts["migrations"] += 1
            if not retry.migrated:
                print(f"\n{fault}: retry failed\n{phase_table(retry)}")
            assert retry.migrated, f"{fault}: retry: {retry.error_message}"
            counts["retries_to_success"] += 1
            check_invariants(f"after the retry of {fault}")
        assert lab.location()[0] == destination
        assert lab.running_on() == destination, f"{fault}: {lab.running_copies()}"
        lost = sum(1 for bid, digest in blocks.items()
                   if hashlib.sha256(client.read(bid)).hexdigest() != digest)
        counts["lost_blocks"] += lost
        assert lost == 0, f"{fault}: {lost} blocks lost"
        final = retry if not report.migrated else report
        stop = next(p for p in final.phases if p.phase == "stop")
        print(f"[{i + 1}/{len(FAULTS)}] {fault}: "
              f"{'migrated' if report.migrated else report.error_message.splitlines()[0][:90]}"
              f" | stop {stop.wall_seconds:.2f} s")

    elapsed = time.monotonic() - started
    print(f"\nfault summary: migrations {counts['migrations']}, faults injected "
          f"{counts['faults']}, lost blocks {counts['lost_blocks']}, double-running containers "
          f"{counts['double_running']}, retries to success {counts['retries_to_success']}/"
          f"{counts['failed_then_retried']} (rolled back {counts['rolled_back']}, failed state "
          f"{counts['failed_state']}, survived without retry "
          f"{counts['survived_without_retry']}), blocks {len(blocks)}, {elapsed:.0f} s")
    assert counts["migrations"] >= 30 and counts["faults"] == len(FAULTS)
    assert counts["lost_blocks"] == 0 and counts["double_running"] == 0
    assert counts["retries_to_success"] == counts["failed_then_retried"] > 0
    assert counts["rolled_back"] > 0 and counts["failed_state"] > 0
    client.close()
