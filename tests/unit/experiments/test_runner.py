from __future__ import annotations

import json

import pytest

from edgeferry.experiments.results import RunDir
from edgeferry.experiments.runner import RunOptions, run_experiment
from edgeferry.experiments.scenario import ScenarioUnavailable
from edgeferry.experiments.schema import parse_experiment
from tests.unit.experiments import fakes


def experiment(**workload):
    return parse_experiment({
        "name": "fx", "description": "d", "target": {"lab": {}}, "seed": 7,
        "scenario": "fake", "workload": workload,
        "parameters": {"size_mb": [1, 4], "mode": ["a", "b"]}, "repetitions": 3, "warmups": 1,
        "references": [{"label": "push 4 MB", "phase": "push", "where": {"size_mb": 4},
                        "value": 1.0, "unit": "s", "source": "made up for the test"}]},
        "fx.yaml")


@pytest.fixture(autouse=True)
def _calls():
    fakes.CALLS.clear()


def run(exp, tmp_path, steps=None, **opts):
    return run_experiment(exp, steps=steps or fakes.FakeSteps(), progress=fakes.NullProgress(),
                          options=RunOptions(reports_root=tmp_path, **opts))


def test_every_trial_recorded_with_phases_and_provenance(tmp_path):
    steps = fakes.FakeSteps()
    out = run(experiment(), tmp_path, steps=steps)
    assert steps.called == ["bring_up", "deploy", "verify"]
    records = out.run_dir.read_trials()
    assert len(records) == out.total == 4 * (3 + 1)
    assert sum(r["warmup"] for r in records) == 4
    assert all([p["phase"] for p in r["phases"]] == ["push", "start"] for r in records)
    info = out.run_dir.read_info()
    assert info["status"] == "complete"
    prov = info["provenance"]
    assert prov["edgeferry_version"] and "revision" in prov["git"]
    assert prov["host"]["cpus_logical"] >= 1 and "pydantic" in prov["packages"]
    csv_lines = (out.run_dir.path / "trials.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 2 * len(records)


def test_failed_trial_is_recorded_and_the_run_goes_on(tmp_path):
    out = run(experiment(fail_at=3), tmp_path)
    records = out.run_dir.read_trials()
    assert len(records) == out.total
    failed = [r for r in records if r["outcome"] == "failed"]
    assert len(failed) == 1 and "boom" in failed[0]["error"]


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    fakes.INTERRUPT_AT[:] = [6]
    try:
        with pytest.raises(KeyboardInterrupt):
            run(experiment(), tmp_path)
    finally:
        fakes.INTERRUPT_AT.clear()
    (run_path,) = (tmp_path / "fx").iterdir()
    rd = RunDir.open(run_path)
    assert rd.read_info()["status"] == "interrupted"
    assert len(rd.read_trials()) == 5
    with open(rd.jsonl, "a") as fh:  # a torn line from a crash mid-write is dropped
        fh.write('{"trial_id": "fake/000')
    fakes.CALLS.clear()
    other = run(experiment(fail_at=99), tmp_path / "elsewhere")  # another definition: new run
    assert not other.resumed
    fakes.CALLS.clear()
    out = run(experiment(), tmp_path)  # automatic resume of the newest unfinished run
    assert out.resumed and out.run_dir.path == run_path
    records = out.run_dir.read_trials()
    ids = [r["trial_id"] for r in records]
    assert len(ids) == len(set(ids)) == out.total
    assert len(fakes.CALLS) == out.total - 5
    assert out.run_dir.read_info()["status"] == "complete"


def test_resume_refuses_a_changed_definition(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(experiment(interrupt_at=2), tmp_path)
    (run_path,) = (tmp_path / "fx").iterdir()
    changed = experiment()
    changed.parts[0].repetitions = 5
    from edgeferry.errors import ConfigError

    with pytest.raises(ConfigError, match="different definition"):
        run(changed, tmp_path, resume=run_path)


def test_unavailable_scenario_fails_before_any_step(tmp_path):
    exp = parse_experiment({"name": "fm", "description": "d", "target": {"lab": {}},
                            "scenario": "fake-missing", "parameters": {"size_mb": 1}}, "fm.yaml")
    steps = fakes.FakeSteps()
    with pytest.raises(ScenarioUnavailable, match=r"not implemented yet.*needs the moon"):
        run(exp, tmp_path, steps=steps)
    assert steps.called == [] and not (tmp_path / "fm").exists()


def test_jsonl_lines_are_self_contained(tmp_path):
    out = run(experiment(), tmp_path)
    for line in out.run_dir.jsonl.read_text().splitlines():
        rec = json.loads(line)
        assert {"trial_id", "params", "warmup", "outcome", "phases", "total_s"} <= set(rec)
        assert rec["total_s"] == pytest.approx(sum(p["wall_s"] for p in rec["phases"]))


def test_run_json_records_how_long_each_step_took(tmp_path):
    out = run(experiment(), tmp_path, skip_verify=True)
    info = out.run_dir.read_info()
    steps = [(d["step"], d["outcome"]) for d in info["durations"]]
    assert steps == [("target", "ok"), ("deploy", "ok"), ("trials", "ok")]  # verify skipped
    assert all(d["seconds"] >= 0 and d["started_at"] >= info["started_at"]
               for d in info["durations"])
    trials = info["durations"][-1]
    assert trials["started_at"] + trials["seconds"] <= info["finished_at"] + 1e-3


def test_a_resumed_run_keeps_the_earlier_sessions_durations(tmp_path):
    from edgeferry.experiments.results import step_durations

    fakes.INTERRUPT_AT[:] = [6]
    try:
        with pytest.raises(KeyboardInterrupt):
            run(experiment(), tmp_path)
    finally:
        fakes.INTERRUPT_AT.clear()
    (run_path,) = (tmp_path / "fx").iterdir()
    first = RunDir.open(run_path).read_info()["durations"]
    assert [(d["step"], d["outcome"]) for d in first] == [
        ("target", "ok"), ("deploy", "ok"), ("verify", "ok"), ("trials", "interrupted")]
    fakes.CALLS.clear()
    out = run(experiment(), tmp_path)
    info = out.run_dir.read_info()
    assert info["durations"][:4] == first
    assert [d["step"] for d in info["durations"][4:]] == ["target", "deploy", "verify", "trials"]
    total = step_durations(info)
    assert list(total) == ["target", "deploy", "verify", "trials"]
    assert total["trials"] == pytest.approx(first[3]["seconds"] + info["durations"][7]["seconds"])


def test_a_failing_step_records_its_duration_as_failed(tmp_path):
    class BrokenDeploy(fakes.FakeSteps):
        def deploy(self, experiment, target, log):
            raise RuntimeError("ansible said no")

    with pytest.raises(RuntimeError):
        run(experiment(), tmp_path, steps=BrokenDeploy())
    (run_path,) = (tmp_path / "fx").iterdir()
    info = RunDir.open(run_path).read_info()
    assert [(d["step"], d["outcome"]) for d in info["durations"]] == [
        ("target", "ok"), ("deploy", "failed")]
    assert info["status"] == "failed"
