"""The NMS migrates x86 -> jetson -> x86 on the shared deployed lab with every block intact
(issue 19): `edgeferry run` of the nms-secure-migration scenario with ``round_trip``, as a user
runs it. The shared lab has the default lab's layout: edge1 x86 class, edge3 jetson class with
its workloads as linux/arm64 under qemu-user.

Checked against what the scenario does not compute itself: the platforms and the re-based image
from the lab hosts' Docker engines (edge3's engine holds the NMS re-based onto arm64, whose
Python reports the machine aarch64; the NMS runs on edge1 afterwards and not on edge3), the
image index from the lab registry's record in run.json beside the scenario's platform list.
The blocks are the scenario's own check: each block's SHA-256 kept at write time, read back
through the SMF-located NMS after each hop.

Needs root and a Docker engine (CI is root with Docker).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.shared_lab_run import run_experiment, the_one_trial

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]


def experiment(path: Path, lab_file: Path) -> Path:
    doc = {
        "name": "itest-nms-crossarch",
        "description": "integration test: the NMS x86 -> jetson -> x86, no block lost",
        "target": {"lab": {"lab_file": str(lab_file)}},
        "seed": 19,
        "scenario": "nms-secure-migration",
        "workload": {"source": "edge1", "destination": "edge3", "client": "control",
                     "round_trip": True},
        "parameters": {"volume_mb": 2, "order": "diff"},
        "repetitions": 1,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def engine(lab: str, host: str, *args: str) -> str:
    return subprocess.run(["docker", "exec", f"ef-{lab}-{host}", "docker", *args],
                          capture_output=True, text=True, check=True).stdout


def test_the_nms_goes_to_the_arm64_jetson_and_back_with_every_block(
        tmp_path: Path, deployed_lab: Path, deployed_lab_file: Path) -> None:
    lab = str(yaml.safe_load(deployed_lab_file.read_text())["name"])
    run_dir = run_experiment(experiment(tmp_path / "itest-nms-crossarch.yaml", deployed_lab_file),
                             tmp_path / "reports", timeout=1700)
    t = the_one_trial(run_dir)
    m, detail = t["metrics"], t["detail"]
    block = next(p["detail"]["block_size"] for p in t["phases"] if p["phase"] == "write-blocks")
    assert m["blocks_written"] == 2_000_000 // block  # 2 MB (10^6 bytes) in whole blocks
    assert m["blocks_lost"] == 0 and m["return_blocks_lost"] == 0, m
    names = [p["phase"] for p in t["phases"]]
    for phase in ("verify-blocks", "return-pull", "return-start", "return-verify-blocks"):
        assert phase in names, names
    assert names.index("verify-blocks") < names.index("return-stop")
    assert (detail["location"], detail["returned"]["location"]) == ("edge3", "edge1")
    assert detail["platforms"]["destination"] == {"host": "edge3", "platform": "linux/arm64",
                                                  "emulation": "qemu-user"}
    assert detail["platforms"]["source"]["platform"] == "linux/amd64"

    # both pulls re-based the committed diff onto the other platform, the diff's content
    # digest the same before and after (the node agents' record, checked at the destination)
    pulls = {p["phase"]: p["detail"] for p in t["phases"] if p["phase"] in ("pull",
                                                                            "return-pull")}
    assert "re-based onto linux/arm64" in json.dumps(pulls["pull"]), pulls["pull"]
    assert "re-based onto linux/amd64" in json.dumps(pulls["return-pull"]), pulls["return-pull"]
    # each hop fetched the diff alone: the blocks (2 MB, a little more with the NMS's own
    # files), not the other platform's ~50 MB Python base
    for name in ("pull", "return-pull"):
        assert "diff only" in json.dumps(pulls[name]), pulls[name]
        moved = next(p["bytes"] for p in t["phases"] if p["phase"] == name)
        assert 0 < moved < 8_000_000, (name, moved)

    # the lab hosts' engines: edge3 holds the NMS re-based onto arm64, which runs as aarch64
    images = engine(lab, "edge3", "images", "--format", "{{.Repository}}:{{.Tag}}").split()
    rebased = [i for i in images if i.endswith("-arm64") and "nms" in i]
    assert rebased, images
    arch = engine(lab, "edge3", "image", "inspect", "-f", "{{.Architecture}}", rebased[0])
    assert arch.strip() == "arm64"
    machine = engine(lab, "edge3", "run", "--rm", "--platform", "linux/arm64", "--entrypoint",
                     "python3", rebased[0], "-c", "import os; print(os.uname().machine)")
    assert machine.strip() == "aarch64"
    # the NMS is back on edge1 and gone from edge3
    assert "nms" in engine(lab, "edge1", "ps", "--format", "{{.Names}}").split()
    assert "nms" not in engine(lab, "edge3", "ps", "--format", "{{.Names}}").split()

    # the run recorded the index it published: one digest per platform
    info = json.loads((run_dir / "run.json").read_text())
    published = next(iter(info["provenance"]["images"].values()))
    assert sorted(published["platforms"]) == ["linux/amd64", "linux/arm64"]
    assert published["index_digest"].startswith("sha256:")
