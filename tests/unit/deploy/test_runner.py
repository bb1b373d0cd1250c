"""The ansible-runner wrapper: arguments it owns, results from status/rc/stats/events."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from edgeferry.deploy import runner as R
from edgeferry.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]

STATS = {
    "ok": {"control": 10, "edge1": 8},
    "changed": {"control": 2},
    "failures": {"edge1": 1},
    "dark": {},
    "skipped": {"edge1": 3},
    "rescued": {},
    "ignored": {},
}


def fake_runner(events, status="failed", rc=2, stats=STATS):
    calls = {}

    def run(**kwargs):
        calls.update(kwargs)
        for event in events:
            kwargs["event_handler"](event)
        return SimpleNamespace(status=status, rc=rc, stats=stats)

    return run, calls


def test_recap_from_stats_counts_every_host():
    recap = R.recap_from_stats(STATS)
    assert set(recap) == {"control", "edge1"}
    assert recap["control"] == R.HostRecap("control", ok=10, changed=2)
    assert recap["edge1"].failed == 1 and recap["edge1"].skipped == 3
    assert not recap["edge1"].healthy and recap["control"].healthy


def test_recap_from_missing_stats_is_empty():
    assert R.recap_from_stats(None) == {}


def test_describe_failure_ignores_ignored_errors_and_ok_events():
    failed = {"event": "runner_on_failed",
              "event_data": {"host": "edge1", "task": "Install", "res": {"msg": "no\n  space"}}}
    assert R.describe_failure(failed) == "edge1: Install: failed: no space"
    ignored = {"event": "runner_on_failed",
               "event_data": {"host": "e", "task": "t", "ignore_errors": True, "res": {}}}
    assert R.describe_failure(ignored) is None
    assert R.describe_failure({"event": "runner_on_ok", "event_data": {}}) is None
    dark = {"event": "runner_on_unreachable",
            "event_data": {"host": "x", "task": "Gathering Facts", "res": {"msg": "timed out"}}}
    assert R.describe_failure(dark) == "x: Gathering Facts: unreachable: timed out"
    loop = {"event": "runner_on_failed",
            "event_data": {"host": "h", "task": "Check", "res": {
                "msg": "One or more items failed",
                "results": [{"failed": False, "msg": "fine"}, {"failed": True, "msg": "bad a"}]}}}
    assert R.describe_failure(loop) == "h: Check: failed: bad a"


def test_run_playbook_owns_runner_arguments_and_reads_results(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EDGEFERRY_HOME", str(tmp_path / "home"))
    events = [
        {"event": "playbook_on_play_start", "event_data": {"play": "Prepare the hosts"}},
        {"event": "runner_on_ok", "event_data": {"host": "control", "res": {"changed": True}}},
        {"event": "runner_on_ok", "event_data": {"host": "control", "res": {"changed": False}}},
        {"event": "runner_on_failed",
         "event_data": {"host": "edge1", "task": "Install", "res": {"msg": "boom"}}},
        {"event": "playbook_on_stats", "event_data": {}},
    ]
    run, calls = fake_runner(events)
    lines: list[str] = []
    inv = tmp_path / "inv"
    inv.mkdir()
    result = R.run_playbook("site.yml", inv, tags=["pki", "agents"], check=True,
                            progress=lines.append, run_dir=tmp_path / "run", runner_run=run)
    assert calls["playbook"] == str(REPO / "playbooks" / "site.yml")  # from a checkout
    assert calls["inventory"] == str(inv)
    assert calls["private_data_dir"] == str(tmp_path / "run")
    assert calls["cmdline"] == "--tags pki,agents --check"
    assert calls["envvars"]["ANSIBLE_CONFIG"] == str(REPO / "ansible.cfg")
    assert calls["envvars"]["ANSIBLE_ROLES_PATH"] == str(REPO / "roles")
    # the controller's state goes to the workspace (the roles read it), not next to the roles
    assert calls["envvars"]["EDGEFERRY_CONTROLLER_DIR"] == str(tmp_path / "home" / ".edgeferry")
    assert calls["quiet"] is True
    assert not result.ok and result.rc == 2 and result.status == "failed"
    assert result.failures == ["edge1: Install: failed: boom"]
    assert result.hosts["control"].changed == 2
    assert lines[0] == "▶ Prepare the hosts"
    assert "  control: ok=1 changed=1 failed=0" in lines
    assert "  edge1: ok=0 changed=0 failed=1" in lines


def test_successful_run_is_ok(tmp_path: Path):
    run, _ = fake_runner([], status="successful", rc=0, stats={"ok": {"h": 1}})
    result = R.run_playbook("site.yml", tmp_path, run_dir=tmp_path / "r", runner_run=run)
    assert result.ok and result.changed_total == 0


def test_unknown_playbook_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        R.run_playbook("nope.yml", tmp_path, runner_run=lambda **_: None)


def test_resolve_inventory_errors_name_the_fix(tmp_path: Path):
    with pytest.raises(ConfigError, match="edgeferry lab up"):
        R.resolve_inventory(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"hosts\.yml"):
        R.resolve_inventory(tmp_path)
    (tmp_path / "hosts.yml").write_text("all: {}\n")
    assert R.resolve_inventory(tmp_path) == tmp_path.resolve()


def test_new_run_dir_is_private_and_unique(tmp_path: Path):
    inv = tmp_path / "lab"
    inv.mkdir()
    a = R.new_run_dir(inv, "site.yml", base=tmp_path / "runs")
    b = R.new_run_dir(inv, "site.yml", base=tmp_path / "runs")
    assert a != b and a.parent.name == "lab" and (a.stat().st_mode & 0o777) == 0o700


def test_default_strategy_is_mitogens_linear_found_from_the_installed_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import importlib.util

    monkeypatch.delenv(R.STRATEGY_ENV, raising=False)
    run, calls = fake_runner([], status="successful", rc=0, stats={})
    result = R.run_playbook("site.yml", tmp_path, run_dir=tmp_path / "r", runner_run=run)
    env = calls["envvars"]
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear" == result.strategy
    spec = importlib.util.find_spec("ansible_mitogen")
    assert spec is not None and spec.origin is not None
    expected = Path(spec.origin).parent / "plugins" / "strategy"
    assert Path(env["ANSIBLE_STRATEGY_PLUGINS"]) == expected
    assert (expected / "mitogen_linear.py").is_file()


def test_linear_switches_back_to_ansibles_own_strategy(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(R.STRATEGY_ENV, "linear")
    run, calls = fake_runner([], status="successful", rc=0, stats={})
    result = R.run_playbook("site.yml", tmp_path, run_dir=tmp_path / "r", runner_run=run)
    assert calls["envvars"]["ANSIBLE_STRATEGY"] == "linear" == result.strategy
    assert "ANSIBLE_STRATEGY_PLUGINS" not in calls["envvars"]
    # an explicit choice wins over the environment
    R.run_playbook("site.yml", tmp_path, run_dir=tmp_path / "r2", runner_run=run,
                   strategy="mitogen_free")
    assert calls["envvars"]["ANSIBLE_STRATEGY"] == "mitogen_free"


def test_an_unknown_strategy_is_refused_before_the_runner_starts(tmp_path: Path):
    run, calls = fake_runner([], status="successful", rc=0, stats={})
    with pytest.raises(ConfigError, match=r"unknown Ansible strategy 'fastest'.*mitogen_linear"):
        R.run_playbook("site.yml", tmp_path, run_dir=tmp_path / "r", runner_run=run,
                       strategy="fastest")
    assert calls == {}
