"""The installed `edgeferry` command returns the documented exit codes (README "Exit codes")."""

from __future__ import annotations

import pytest

from tests.entry import edgeferry


@pytest.mark.parametrize(("args", "code"), [
    (("audit", "check", "--paper", "--container", "App1", "--edge", "Edge4"), 1),  # DENY
    (("audit", "check", "--paper", "--container", "App1", "--edge", "Edge3"), 0),  # PERMIT
    (("audit", "check", "--container", "App1"), 2),  # neither a policy file nor --paper
    (("audit", "check", "--paper"), 2),  # click usage error: --container missing
    (("no-such-verb",), 2),
    (("--help",), 0),
])
def test_exit_codes_come_back_through_the_entry_point(args: tuple[str, ...], code: int) -> None:
    result = edgeferry(*args)
    assert result.returncode == code, (result.stdout, result.stderr)


def test_a_deny_prints_the_decision_and_exits_1() -> None:
    result = edgeferry("audit", "check", "--paper", "--container", "App1", "--edge", "Edge4")
    assert "DENY: the migration is not executed" in result.stdout
    assert result.returncode == 1


def test_an_unknown_ansible_strategy_exits_2_before_touching_a_host(tmp_path) -> None:
    inventory = tmp_path / "hosts.yml"  # nothing answers at this address: no host is contacted
    inventory.write_text("all:\n  hosts:\n    control:\n      ansible_host: 192.0.2.1\n")
    result = edgeferry("deploy", "-i", str(inventory), "--strategy", "fastest")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "unknown Ansible strategy 'fastest'" in result.stderr
    assert "mitogen_linear" in result.stderr
