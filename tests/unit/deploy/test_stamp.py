"""The deployed-state stamp: what makes the controller skip a deploy, and what does not."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from edgeferry.deploy.stamp import VALID_S, decide, inputs_digest, new_stamp, stamp_path

REPO_ROOT = Path(__file__).resolve().parents[3]

NOW = 1_800_000_000.0


def test_skip_only_when_every_host_holds_the_current_valid_stamp() -> None:
    good = json.dumps(new_stamp("d1", now=NOW - 60))
    hosts = ["control", "edge1", "edge2"]
    assert decide(hosts, dict.fromkeys(hosts, good), "d1", now=NOW).skip
    cases = {
        "no stamp": None,
        "other inputs": json.dumps(new_stamp("d0", now=NOW - 60)),
        "expired": json.dumps(new_stamp("d1", now=NOW - VALID_S - 1)),
        "unreadable": "{not json",
    }
    for label, text in cases.items():
        found = {**dict.fromkeys(hosts, good), "edge2": text}
        verdict = decide(hosts, found, "d1", now=NOW)
        assert not verdict.skip, label
        assert verdict.reasons["edge1"] == "up to date"
        assert verdict.reasons["edge2"] != "up to date", label
    # a host of the inventory that was never read is not proven
    assert not decide(hosts, {"control": good, "edge1": good}, "d1", now=NOW).skip
    assert not decide([], {}, "d1", now=NOW).skip


def test_the_stamp_lives_where_the_role_writes_it() -> None:
    doc = yaml.safe_load((REPO_ROOT / "roles/edgeferry_stamp/defaults/main.yml").read_text())
    assert stamp_path() == doc["edgeferry_stamp_path"] == "/var/lib/edgeferry-deploy/stamp.json"


def _project(root: Path) -> Path:
    for rel, text in {"roles/r/tasks/main.yml": "---\n", "agents/a.py": "A = 1\n",
                      "pyproject.toml": "[project]\n", "README.md": "x\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    inv = root / "inventory" / "lab1"
    inv.mkdir(parents=True)
    (inv / "hosts.yml").write_text("all: {}\n")
    for folder in ("pki/lab1/ca", "state/lab1/manifests", "state/lab1/build"):
        (root / ".edgeferry" / folder).mkdir(parents=True)
    (root / ".edgeferry/pki/lab1/ca/ca.crt").write_text("CA")
    (root / ".edgeferry/state/lab1/registry-password").write_text("pw")
    return inv


def test_the_digest_follows_every_input_and_nothing_the_deploy_writes(tmp_path: Path) -> None:
    inv = _project(tmp_path)
    base = inputs_digest(inv, root=tmp_path)
    assert inputs_digest(inv, root=tmp_path) == base
    # what the deploy itself writes on the controller, and files outside the inputs
    (tmp_path / ".edgeferry/state/lab1/manifests/edge1.json").write_text("{}")
    (tmp_path / ".edgeferry/state/lab1/build/edgeferry.whl").write_text("w")
    (tmp_path / "README.md").write_text("changed\n")
    assert inputs_digest(inv, root=tmp_path) == base
    # every input moves it
    edits = [tmp_path / "roles/r/tasks/main.yml", tmp_path / "agents/a.py",
             tmp_path / "pyproject.toml", inv / "hosts.yml",
             tmp_path / ".edgeferry/pki/lab1/ca/ca.crt",
             tmp_path / ".edgeferry/state/lab1/registry-password"]
    seen = {base}
    for path in edits:
        path.write_text(path.read_text() + "#\n")
        now = inputs_digest(inv, root=tmp_path)
        assert now not in seen, path
        seen.add(now)
    (tmp_path / "agents/new.py").write_text("B = 2\n")   # untracked, not ignored: an input
    assert inputs_digest(inv, root=tmp_path) not in seen
