"""Adversarial suite plumbing: a started lab per test and the summary line
``adversarial: N cases, 0 accepted: S sent to agents, L refused before sending`` and the
authorization matrix's ``authz: N calls, 0 unexpected allows, 0 unexpected denials`` at the end
of the run (the run fails if any was accepted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.attacker import CASES, CaseLog
from tests.adversarial.harness import Lab


@pytest.fixture
def cases() -> CaseLog:
    return CASES


@pytest.fixture
def lab(lab_pki, tmp_path: Path) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    lab = Lab(lab_pki, tmp_path).start()
    yield lab
    lab.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.adversarial.test_authz_matrix import MATRIX

    if MATRIX.calls:
        write = terminalreporter.write_line
        write(f"{'authz service':<26} {'calls':>6} {'allowed':>8} {'refused':>8}")
        for service, (calls, allowed, refused) in sorted(MATRIX.by_service.items()):
            write(f"{service:<26} {calls:>6} {allowed:>8} {refused:>8}")
        write(f"authz: {MATRIX.calls} calls, {len(MATRIX.unexpected_allows)} unexpected allows, "
              f"{len(MATRIX.unexpected_denials)} unexpected denials "
              f"({MATRIX.allowed} allowed, {MATRIX.denied} denied by policy, "
              f"{MATRIX.handshake} refused in the handshake; "
              f"{len(MATRIX.state_changes)} state changes on a denial)")
        for line in MATRIX.unexpected_allows + MATRIX.unexpected_denials:
            write(f"authz: UNEXPECTED {line}", red=True)
    if CASES.tried:
        codes = ", ".join(f"{k} {v}" for k, v in sorted(CASES.by_code.items()))
        terminalreporter.write_line(
            f"adversarial: {CASES.tried} cases, {len(CASES.accepted)} accepted: "
            f"{CASES.sent} sent to agents, {CASES.in_process} delivered to the in-process "
            f"application, {CASES.local} refused before sending ({codes})")
        for name in CASES.accepted:
            terminalreporter.write_line(f"adversarial: ACCEPTED {name}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if CASES.accepted:
        session.exitstatus = 1
