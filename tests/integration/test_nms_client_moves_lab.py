"""`edgeferry run` of the client-driven NMS migration on the shared deployed lab (issue 16 item
4): a real fuxfs mount on this machine, the client drives away from edge1, asks the SMF to
migrate its NMS to edge2 at the first position past edge1's threshold, and keeps its mount.

Checked against what the scenario does not compute itself: where the trigger fired, from the
recorded position and the edges' coordinates in the experiment below; where the NMS runs, from
the lab hosts' Docker engines; the files and the acknowledged writes, as the scenario's
independent reads report them (a kept mount and a fresh one).

Needs root, a Docker engine and FUSE (CI is root with Docker; edgeferry.sh installs fuse3).
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.shared_lab_run import run_experiment, the_one_trial

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

EDGES = {"edge1": (0.0, 0.0, 600.0), "edge2": (1000.0, 0.0, 600.0), "edge3": (500.0, 900.0, 300.0)}
SPEED, STEP = 100.0, 0.5


def experiment(path: Path, lab_file: Path) -> Path:
    doc = {
        "name": "itest-client-moves",
        "description": "integration test: a fuxfs client moves, its NMS follows",
        "target": {"lab": {"lab_file": str(lab_file)}},
        "seed": 11,
        "scenario": "nms-client-moves",
        "workload": {
            "source": "edge1", "destination": "edge2", "client": "control",
            "mobility": {
                "edges": {n: {"at": [x, y], "threshold_m": r} for n, (x, y, r) in EDGES.items()},
                "path": [[0, 0], [1000, 0]], "speed_mps": SPEED, "step_s": STEP}},
        "parameters": {"volume_mb": 2, "files": 3},
        "repetitions": 1,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def containers(lab: str, host: str) -> list[str]:
    out = subprocess.run(["docker", "exec", f"ef-{lab}-{host}", "docker", "ps", "--format",
                          "{{.Names}}"], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_a_moving_fuxfs_client_takes_its_nms_along(
        tmp_path: Path, deployed_lab: Path, deployed_lab_file: Path) -> None:
    lab = str(yaml.safe_load(deployed_lab_file.read_text())["name"])
    run_dir = run_experiment(experiment(tmp_path / "itest-client-moves.yaml", deployed_lab_file),
                             tmp_path / "reports", timeout=1700)
    t = the_one_trial(run_dir)
    names = [p["phase"] for p in t["phases"]]
    assert names[:4] == ["ssp", "mount", "write-files", "move"], names
    assert names[-2:] == ["reconnect", "verify-files"], names
    # the destination's self-evaluation happens before the stop: not part of the downtime
    assert names.index("self-evaluation") < names.index("stop") < names.index("pull")

    move = t["detail"]["trigger"]
    x, y = move["position"]
    d1 = math.dist((x, y), EDGES["edge1"][:2])
    d2 = math.dist((x, y), EDGES["edge2"][:2])
    assert move["target"] == "edge2" and move["serving"] == "edge1"
    # past edge1's threshold, inside edge2's, and at most one sample (plus scheduling) late
    assert EDGES["edge1"][2] < d1 <= EDGES["edge1"][2] + SPEED * (STEP + 0.5), d1
    assert d2 <= EDGES["edge2"][2] and move["distance_m"] == pytest.approx(d1)
    assert move["t_s"] == pytest.approx(d1 / SPEED, abs=0.05)

    m = t["metrics"]
    assert m["files_checked"] == 3 and m["files_changed"] == 0, t["phases"][-1]["detail"]
    assert m["acked_writes"] > 0 and m["acked_writes_lost"] == 0, t["phases"][-1]["detail"]
    assert m["mount_kept"] == 1
    # fsyncs issued while the NMS was away waited for it: no write returned an error, and
    # the longest wait is at least the part of the downtime a 0.2 s writer must meet
    assert m["longest_write_stall_s"] >= min(m["downtime_s"] - 0.2, 1.0), m
    # the NMS runs on edge2 now, and no longer on edge1 (the hosts' engines say so)
    assert t["detail"]["location"] == "edge2"
    assert "nms" in containers(lab, "edge2") and "nms" not in containers(lab, "edge1")
