"""`--json` on the verbs that print data, through the installed `edgeferry` command: stdout is
one JSON document a script can load, progress (if any) goes to stderr, exit codes unchanged."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import yaml

from edgeferry.cli.output import to_jsonable
from edgeferry.pki import LabCA
from tests.entry import REPO, edgeferry


def _trials_by_hand(path: Path) -> int:
    """Trials of an experiment counted from its YAML (product of parameter lists x (repetitions
    + warm-ups) per part), written here independently of edgeferry.experiments.matrix."""
    doc = yaml.safe_load(path.read_text())
    total = 0
    for part in doc.get("parts") or [doc]:
        if part.get("enabled", True) is False:
            continue
        n = 1
        for value in (part.get("parameters") or {}).values():
            n *= len(value) if isinstance(value, list) else 1
        total += n * (int(part.get("repetitions", doc.get("repetitions", 1)))
                      + int(part.get("warmups", doc.get("warmups", 0))))
    return total


def test_run_check_json_counts_the_trials_of_the_definition() -> None:
    path = REPO / "experiments" / "quick.yaml"
    done = edgeferry("run", str(path), "--check", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["valid"] is True
    assert out["trials"] == _trials_by_hand(path)
    assert out["parts"] == len(yaml.safe_load(path.read_text())["parts"])


def test_run_check_json_on_a_bad_definition_exits_2_and_prints_no_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nscenario: no-such-scenario\n")
    done = edgeferry("run", str(bad), "--check", "--json")
    assert done.returncode == 2
    assert done.stdout.strip() == ""


def test_pki_list_json_lists_what_was_revoked(tmp_path: Path) -> None:
    # an inventory name of its own: the controller files its PKI under
    # <checkout>/.edgeferry/pki/<inventory name> (edgeferry.deploy.revocation.pki_dir)
    name = f"jsontest-{secrets.token_hex(4)}"
    inventory = tmp_path / "inventory" / name
    inventory.mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all: {}\n")
    pki_root = REPO / ".edgeferry" / "pki" / name
    try:
        ca = LabCA.create(pki_root / "ca")
        ca.issue("node", pki_root / "hosts" / "edge1", dns_names=["node.edge1"])
        empty = edgeferry("pki", "list", "-i", str(inventory), "--json")
        assert empty.returncode == 0, empty.stderr
        assert json.loads(empty.stdout) == []
        revoked = edgeferry("pki", "revoke", "node.edge1", "-i", str(inventory))
        assert revoked.returncode == 0, revoked.stderr
        listed = edgeferry("pki", "list", "-i", str(inventory), "--json")
        rows = json.loads(listed.stdout)
        assert [r["name"] for r in rows] == ["node.edge1"]
        assert rows[0]["reason"] == "unspecified" and rows[0]["serial_number"] > 0
    finally:
        shutil.rmtree(pki_root, ignore_errors=True)


def test_to_jsonable_keeps_protobuf_field_names_and_bytes_readable() -> None:
    from agents._proto.edgeferry.common.v1 import common_pb2

    timing = common_pb2.PhaseTiming(phase="pull", wall_seconds=1.5, bytes_moved=7)
    assert to_jsonable({"t": timing, "raw": b"\x01\xff", "p": Path("/x")}) == {
        "t": {**to_jsonable(timing)}, "raw": "01ff", "p": "/x"}
    as_dict = to_jsonable(timing)
    assert as_dict["phase"] == "pull" and as_dict["wall_seconds"] == 1.5
    assert int(as_dict["bytes_moved"]) == 7


def test_run_with_a_failed_trial_writes_its_report_and_exits_1(tmp_path: Path) -> None:
    """A run whose trials fail still writes the report, and exits 1 (README: 'the operation
    ran and failed (a check, a trial ...)'). Algorithm 1 given a microsecond fails unless the
    confirmations are already in at its first read (it waits only while they are short): CI saw
    one of two trials succeed that way, so the run has four and counts the failures it finds."""
    definition = tmp_path / "fail.yaml"
    definition.write_text(yaml.safe_dump({
        "name": "exit-code", "description": "trials that cannot succeed", "seed": 1,
        "target": {"lab": {}},
        "parts": [{"scenario": "ledger-decision", "repetitions": 4,
                   "workload": {"timeout_s": 0.000001, "peer_hosts": 1},
                   "parameters": {"nodes": 3}}]}))
    done = edgeferry("run", str(definition), "--json", "--reports-dir", str(tmp_path / "r"))
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    rows = [json.loads(line) for line in
            (Path(out["run_dir"]) / "trials.jsonl").read_text().splitlines() if line.strip()]
    failed = [r for r in rows if r.get("outcome") == "failed"]
    assert len(rows) == 4 and len(failed) >= 1, rows
    assert all("did not reach the quorum" in str(r.get("error")) for r in failed), failed
    assert out["trials_failed"] == len(failed)
    assert Path(out["report_md"]).is_file() and Path(out["report_html"]).is_file()
    assert f"{len(failed)} of 4 trials failed" in done.stderr
