"""Per-trial log collection: which trials, what is fetched, where it goes, failures noted."""

from __future__ import annotations

import pytest

from edgeferry.experiments import logs
from edgeferry.experiments.runner import RunOptions, TargetInfo, run_experiment
from edgeferry.experiments.schema import parse_experiment
from edgeferry.hosts import HostAccess
from tests.unit.experiments import fakes


class FakeResult:
    def __init__(self, stdout: str, exited: int = 0) -> None:
        self.stdout, self.stderr, self.exited = stdout, "", exited


class FakeConn:
    def __init__(self, host: str, fail: bool = False) -> None:
        self.host, self.fail, self.commands = host, fail, []

    def run(self, command, **kwargs):
        self.commands.append(command)
        if self.fail:
            raise OSError("connection refused")
        return FakeResult(f"2026-11-22T10:00:00 {self.host} edgeferry-smf[1]: trial log\n")

    def close(self) -> None: ...


def test_policy():
    assert logs.wanted("failed", "failed") and not logs.wanted("failed", "ok")
    assert logs.wanted("all", "ok") and not logs.wanted("none", "failed")


def test_journal_window_is_widened_by_the_clock_skew_margin():
    argv = logs.journal_argv(1000.4, 1010.2)
    assert argv[argv.index("--since") + 1] == "@995"
    assert argv[argv.index("--until") + 1] == "@1016"
    assert argv[argv.index("-u") + 1] == "edgeferry-*"


def test_collect_writes_each_host_and_notes_the_unreadable_one(tmp_path):
    conns = {"edge1": FakeConn("edge1"), "edge2": FakeConn("edge2", fail=True)}
    found = logs.collect(conns.__getitem__, ["edge2", "edge1"], 1000.0, 1001.0,
                         tmp_path / "logs" / "p" / "003", relative_to=tmp_path)
    assert found["edge1"] == "logs/p/003/edge1.log"
    assert "trial log" in (tmp_path / found["edge1"]).read_text()
    assert found["edge2"].startswith("error: OSError: connection refused")
    assert "journalctl" in conns["edge1"].commands[0]


@pytest.fixture(autouse=True)
def _calls():
    fakes.CALLS.clear()


class HostSteps(fakes.FakeSteps):
    def bring_up(self, experiment, log):
        self.called.append("bring_up")
        return TargetInfo(note="fake target", hosts={
            h: HostAccess(name=h, address=f"10.0.0.{i}") for i, h in enumerate(["a", "b"], 1)})


@pytest.mark.parametrize("policy", ["failed", "all", "none"])
def test_runner_keeps_logs_per_policy(tmp_path, monkeypatch, policy):
    opened: dict[str, FakeConn] = {}

    def factory(hosts):
        def connect(name):
            return opened.setdefault(name, FakeConn(name))
        connect.close_all = lambda: None
        return connect

    monkeypatch.setattr("edgeferry.experiments.runner.connection_factory", factory)
    exp = parse_experiment({
        "name": "fx", "description": "d", "target": {"lab": {}}, "logs": policy,
        "scenario": "fake", "workload": {"fail_at": 3}, "parameters": {"size_mb": [1, 4]},
        "repetitions": 2, "warmups": 0, "order": "grouped"}, "fx.yaml")
    out = run_experiment(exp, steps=HostSteps(), progress=fakes.NullProgress(),
                         options=RunOptions(reports_root=tmp_path))
    records = out.run_dir.read_trials()
    with_logs = {r["trial_id"] for r in records if "logs" in r}
    failed = {r["trial_id"] for r in records if r["outcome"] == "failed"}
    assert len(failed) == 1 and len(records) == 4
    expected = {"failed": failed, "all": {r["trial_id"] for r in records}, "none": set()}
    assert with_logs == expected[policy]
    for r in records:
        for host, rel in r.get("logs", {}).items():
            assert (out.run_dir.path / rel).read_text().startswith("2026-11-22T10:00:00 " + host)
