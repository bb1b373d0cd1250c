"""The implemented scenarios against the real agents (in-process audit, loopback mTLS ledger)."""

from __future__ import annotations

import pytest

from edgeferry.experiments.scenario import ScenarioContext
from edgeferry.experiments.scenarios.audit_cases import AuditCases
from edgeferry.experiments.scenarios.ledger_decision import LedgerDecision
from edgeferry.experiments.workloads import AuditWorkload, LedgerWorkload


def ctx(tmp_path):
    return ScenarioContext(experiment="t", part="p", seed=5, workload={}, run_dir=tmp_path,
                           work_dir=tmp_path)


@pytest.mark.parametrize("target, permit", [("edge:Edge2", False), ("edge:Edge3", True),
                                            ("edge:Edge4", False), ("region:regionB", True),
                                            ("any", True)])
def test_audit_cases_reproduce_the_paper_verdicts(tmp_path, target, permit):
    c = ctx(tmp_path)
    s = AuditCases(AuditWorkload())
    s.prepare(c)
    try:
        r = s.run_trial(c, {"target": target})
    finally:
        s.teardown(c)
    assert [p.phase for p in r.phases] == ["audit", "audit-record"]
    assert r.metrics["permit"] == float(permit) and r.metrics["agrees_with_paper"] == 1.0
    assert 0 < r.phases[0].wall_s < 0.05 and r.outcome == "ok"


def test_ledger_decision_measures_three_paths(tmp_path):
    c = ctx(tmp_path)
    s = LedgerDecision(LedgerWorkload(peer_hosts=1))
    s.prepare(c)
    try:
        r = s.run_trial(c, {"nodes": 3, "high_resource_share": 1.0})
    finally:
        s.teardown(c)
    assert [p.phase for p in r.phases] == ["direct", "ledger-write", "ledger-evaluate",
                                           "central-upload", "central-evaluate"]
    assert r.metrics["confirmations"] >= 2
    assert r.metrics["bandwidth_cost_ledger"] > 1  # blocks reach every node
    assert all(p.wall_s > 0 for p in r.phases)
