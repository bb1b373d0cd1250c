"""site.yml through the real ansible-runner wrapper: syntax, inventory validation, check mode,
and (marker `lab`) a full deploy on an emulated lab whose second run changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgeferry.deploy.runner import run_playbook

REPO_ROOT = Path(__file__).resolve().parents[2]

EXAMPLE = REPO_ROOT / "inventory" / "example-hardware"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


@pytest.mark.parametrize("playbook", ["site.yml", "verify.yml", "verify_deployment.yml",
                                      "teardown.yml"])
def test_playbooks_pass_syntax_check(playbook):
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(EXAMPLE), f"playbooks/{playbook}", "--syntax-check"],
        cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def bad_inventory(tmp_path: Path, mutate) -> Path:
    """A copy of the example-hardware inventory changed by `mutate(hosts, group_vars_dir)`."""
    inv = tmp_path / "badinv"
    shutil.copytree(EXAMPLE, inv)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    mutate(hosts, inv / "group_vars")
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return inv


def run_validation(inv: Path, tmp_path: Path):
    return run_playbook("validate.yml", inv, run_dir=tmp_path / "run")


def test_example_inventory_passes_validation(tmp_path):
    inv = bad_inventory(tmp_path, lambda hosts, gv: None)
    result = run_validation(inv, tmp_path)
    assert result.ok, result.failures
    assert set(result.hosts) == {"ctl01", "xavier01", "xavier02", "x86edge01"}


def test_missing_group_stops_validation(tmp_path):
    def drop_jetson(hosts, gv):
        del hosts["all"]["children"]["jetson"]
        for name in ("xavier01", "xavier02"):
            hosts["all"]["children"]["edge"]["hosts"][name]["edgeferry_profile"] = "x86"
        hosts["all"]["children"]["x86"]["hosts"].update({"xavier01": None, "xavier02": None})

    result = run_validation(bad_inventory(tmp_path, drop_jetson), tmp_path)
    assert not result.ok
    assert any("group 'jetson' is missing" in f for f in result.failures), result.failures


def test_bad_address_names_host_and_variable(tmp_path):
    def bad_address(hosts, gv):
        hosts["all"]["children"]["edge"]["hosts"]["xavier02"]["edgeferry_address"] = "192.0.2.300"

    result = run_validation(bad_inventory(tmp_path, bad_address), tmp_path)
    assert not result.ok
    msgs = [f for f in result.failures if f.startswith("xavier02:")]
    assert msgs and "host xavier02: variable edgeferry_address '192.0.2.300'" in msgs[0]
    assert not any(f.startswith("xavier01:") for f in result.failures)


def test_missing_registry_password_names_host_and_variable(tmp_path):
    def no_password(hosts, gv):
        path = gv / "all" / "registry.yml"
        data = yaml.safe_load(path.read_text())
        data["edgeferry_registry_password_generate"] = False
        path.write_text(yaml.safe_dump(data))

    result = run_validation(bad_inventory(tmp_path, no_password), tmp_path)
    assert not result.ok
    assert any("host ctl01: variable edgeferry_registry_password is missing" in f
               for f in result.failures), result.failures


def test_a_catalog_entry_without_its_module_or_a_derived_value_of_another_type_stops_validation(
        tmp_path):
    """The catalog and the values derived from the inventory are left out of the shared role's
    argument spec (rendering them in every play was most of a deploy's argument checks); the
    first play checks them instead, once."""
    def no_module(hosts, gv):
        (gv / "all" / "catalog.yml").write_text(yaml.safe_dump(
            {"edgeferry_agent_catalog": {"bare": {"port": 50050}}}))

    result = run_validation(bad_inventory(tmp_path / "a", no_module), tmp_path / "a")
    assert not result.ok
    assert any("host ctl01: edgeferry_agent_catalog must map each instance to its module" in f
               for f in result.failures), result.failures

    def peers_as_list(hosts, gv):
        hosts["all"]["children"]["edge"]["hosts"]["xavier01"]["edgeferry_agent_peers"] = ["x"]

    result = run_validation(bad_inventory(tmp_path / "b", peers_as_list), tmp_path / "b")
    assert not result.ok
    failed = {f.split(":")[0] for f in result.failures if "must keep their types" in f}
    assert failed == {"xavier01"}, result.failures


def test_check_mode_on_hardware_fails_only_on_reachability(tmp_path):
    inv = bad_inventory(tmp_path, lambda hosts, gv: None)
    result = run_playbook("site.yml", inv, check=True, run_dir=tmp_path / "run")
    assert not result.ok
    # Validation passed for every host; afterwards every host is unreachable and nothing failed.
    assert all(h.failed == 0 for h in result.hosts.values()), result.failures
    assert all(h.unreachable > 0 for h in result.hosts.values())
    assert all(": unreachable:" in f for f in result.failures)


@pytest.mark.lab
@pytest.mark.timeout(3600)
def test_deploy_twice_on_the_emulated_lab_changes_nothing_the_second_time(deployed_lab):
    """Needs root and Docker: the shared deployed lab (tests/integration/conftest.py, deployed
    once already) deployed again changes nothing, and `edgeferry verify` passes on it."""
    import json

    from edgeferry.deploy.timings import load_events

    done = subprocess.run([sys.executable, "-m", "edgeferry.cli.main", "deploy", "-i",
                           str(deployed_lab), "--force", "--json"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    second = json.loads(done.stdout)
    assert second["ok"] and second["strategy"] == "mitogen_linear", second
    # The only change allowed: the first play forgets the deploy stamp the fixture's deploy left
    # (any deploy invalidates it; `edgeferry deploy` records a new one afterwards). Every task
    # of every other play reports nothing changed.
    changed = [(e["event_data"].get("play", ""), e["event_data"].get("task", ""),
                e["event_data"].get("host", "")) for e in load_events(Path(second["run_dir"]))
               if e.get("event") == "runner_on_ok"
               and (e["event_data"].get("res") or {}).get("changed")]
    assert {play for play, _, _ in changed} <= {
        "Forget the deployed-state stamp (any deploy, full or partial, invalidates it)"}, changed
    assert all(r["changed"] <= 1 for r in second["hosts"].values()), second["hosts"]
    from tests.entry import edgeferry

    verify = edgeferry("verify", "-i", str(deployed_lab), "--json", timeout=900)
    assert verify.returncode == 0, verify.stderr[-4000:]
    counts = json.loads(verify.stdout)  # stdout is the JSON alone; the suite's output: stderr
    junit = Path(counts["junit"]).read_text()
    assert counts["tests"] == junit.count("<testcase ") > 0
    assert counts["failures"] == counts["errors"] == 0 and counts["failed"] == []
    assert "<failure" not in junit and "passed" in verify.stderr


@pytest.mark.lab
@pytest.mark.timeout(600)
def test_an_unchanged_deploy_is_skipped_only_when_every_host_proves_it(deployed_lab):
    """Needs root and Docker. The shared lab is deployed; its hosts get the stamp a successful
    full deploy leaves (playbooks/stamp.yml). `edgeferry deploy --json` through the installed
    command then skips the playbook, every host "up to date"; a host whose stamp is gone (a
    re-created host) or carries other inputs makes the controller deploy."""
    import json

    from edgeferry.deploy.stamp import decide, inputs_digest, new_stamp, read_stamps, stamp_path
    from edgeferry.hosts import connection_factory, hosts_from_inventory
    from edgeferry.hosts import run as ssh_run
    from tests.entry import edgeferry

    digest = inputs_digest(deployed_lab)
    stamped = run_playbook("stamp.yml", deployed_lab,
                           extravars={"edgeferry_stamp_record": new_stamp(digest)})
    assert stamped.ok, stamped.failures
    hosts = hosts_from_inventory(deployed_lab)
    done = edgeferry("deploy", "-i", str(deployed_lab), "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["skipped"] is True and out["run_dir"] is None
    assert out["stamps"] == dict.fromkeys(hosts, "up to date")

    connect = connection_factory(hosts)
    try:
        victim = sorted(hosts)[-1]
        path = stamp_path()
        kept = ssh_run(connect(victim), ["cat", path])
        assert json.loads(kept)["digest"] == digest
        ssh_run(connect(victim), ["rm", path])
        verdict = decide(hosts, read_stamps(hosts, connect), inputs_digest(deployed_lab))
        assert not verdict.skip and verdict.reasons[victim].startswith("no stamp")
        other = json.dumps(new_stamp("0" * 64))
        ssh_run(connect(victim), ["sh", "-c", f"printf '%s' '{other}' > {path}"])
        verdict = decide(hosts, read_stamps(hosts, connect), inputs_digest(deployed_lab))
        assert not verdict.skip and verdict.reasons[victim] == "deployed from other inputs"
    finally:
        connect.close_all()
