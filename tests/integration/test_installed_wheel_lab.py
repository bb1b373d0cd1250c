"""edgeferry as a user installs it: the wheel built from this checkout, installed into a new
virtualenv outside the checkout, run from a folder that is not the checkout. It validates the
shipped quick.yaml, brings up a small emulated lab, deploys it (the hosts get the installed
distribution, repacked), runs a reduced copy of quick.yaml with a part that talks to the deployed
agents, and takes the lab down. One test: a full first deploy (minutes on 2 cores); it prints
the wall time of each step.

Expectations come from outside the code under test: the wheel pip built (its bytes), the
checkout's own `run --check` of the same definition, and the files the run wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.lab, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
LAB, SUBNET = "pkgtest", "10.251.0.0/24"
LAB_FILE = {"name": LAB, "subnet": SUBNET, "bandwidth": "40mbit",
            "hosts": [{"name": "control", "role": "control", "profile": "x86"},
                      {"name": "edge1", "role": "edge", "profile": "x86"},
                      {"name": "edge2", "role": "edge", "profile": "x86"}]}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_installed_wheel_deploys_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    times: dict[str, float] = {}
    start = time.monotonic()

    def step(name: str, cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        began = time.monotonic()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        times[name] = round(time.monotonic() - began, 1)
        print(f"[wheel test] {name}: {times[name]} s (rc {proc.returncode})", flush=True)
        assert proc.returncode == 0, f"{name}: {(proc.stdout + proc.stderr)[-4000:]}"
        return proc

    # 1. the wheel, and a new virtualenv outside the checkout with it and its dependencies
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    assert REPO not in tmp_path.parents
    # nothing of the checkout's environment: no PYTHONPATH (pip would take the checkout's
    # egg-info for an installed edgeferry), no workspace, no Ansible settings
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "EDGEFERRY_HOME", "VIRTUAL_ENV") and
           not k.startswith("ANSIBLE_")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", COLUMNS="200")
    step("build wheel", [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps",
                         "--no-build-isolation", "-q", "-w", str(dist)], tmp_path)
    (wheel,) = sorted(dist.glob("edgeferry-*.whl"))
    step("create venv", [sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    step("pip install wheel", [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                               str(wheel)], tmp_path, env)
    edgeferry = str(venv / "bin" / "edgeferry")
    where = step("locate", [str(venv / "bin" / "python"), "-c",
                            "import edgeferry, agents; print(edgeferry.__file__); "
                            "print(agents.__file__)"], work, env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    # 2. the installed command, from a folder that is not the checkout
    helped = step("edgeferry --help", [edgeferry, "--help"], work, env)
    assert "deploy" in helped.stdout and "run" in helped.stdout
    checked = json.loads(step("run quick.yaml --check", [edgeferry, "run",
                              "experiments/quick.yaml", "--check", "--json"], work, env).stdout)
    mine = subprocess.run([sys.executable, "-m", "edgeferry.cli.main", "run",
                           str(REPO / "experiments" / "quick.yaml"), "--check", "--json"],
                          cwd=REPO, capture_output=True, text=True, check=True, timeout=120)
    assert checked["valid"] is True
    assert checked["trials"] == json.loads(mine.stdout)["trials"] > 0

    # 3. a lab, a deploy, a real run, from the installed package
    (work / "pkgtest-lab.yaml").write_text(yaml.safe_dump(LAB_FILE))
    # a killed earlier run of this test leaves its lab behind, owned by that run's workspace;
    # the name is this test's, so remove it by name first
    step("lab down (leftover)", [edgeferry, "lab", "down", "--name", LAB], work, env)
    try:
        step("lab up", [edgeferry, "lab", "up", "--lab-file", "pkgtest-lab.yaml",
                        "--no-bandwidth-check"], work, env)
        inventory = work / "inventory" / LAB
        assert (inventory / "hosts.yml").is_file()
        deployed = json.loads(step("deploy", [edgeferry, "deploy", "-i", f"inventory/{LAB}",
                                              "--json"], work, env).stdout)
        assert deployed["ok"] is True and deployed["skipped"] is False
        assert {h for h, r in deployed["hosts"].items() if r["failed"] or r["unreachable"]} \
            == set()
        state = work / ".edgeferry" / "state" / LAB
        manifest: dict[str, Any] = json.loads((state / "manifests" / "control.json").read_text())
        assert manifest["source"].startswith("installed edgeferry ")
        assert "intact" in manifest["source"] and manifest["build"]["dirty"] is False
        assert f"installed from an archive with sha256 {_sha256(wheel)}" in manifest["source"]
        shipped = state / "build" / "wheel" / manifest["wheel"]
        assert _sha256(shipped) == manifest["wheel_sha256"]
        with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(shipped) as b:
            assert {n: a.read(n) for n in a.namelist() if not n.endswith("/RECORD")} == \
                   {n: b.read(n) for n in b.namelist() if not n.endswith("/RECORD")}

        quick = yaml.safe_load((REPO / "experiments" / "quick.yaml").read_text())
        audit = next(p for p in quick["parts"] if p["name"] == "audit")
        audit.update(repetitions=2, warmups=0)
        reduced = {
            "name": "pkgtest-quick", "description": "quick.yaml, reduced: from the installed wheel",
            "target": {"lab": {"lab_file": "pkgtest-lab.yaml"}}, "seed": 1,
            "parts": [audit, {
                "name": "request-migration", "scenario": "request-migration",
                "workload": {"source": "edge1", "neighbour": "edge2", "headroom_mib": 256,
                             "local_mib": 16},
                "parameters": {"app": "driver-profiling", "request_mib": 512},
                "repetitions": 2, "warmups": 0}],
        }
        (work / "pkgtest-quick.yaml").write_text(yaml.safe_dump(reduced, sort_keys=False))
        planned = json.loads(step("run --check", [edgeferry, "run", "pkgtest-quick.yaml",
                                                  "--check", "--json"], work, env).stdout)
        ran = json.loads(step("run", [edgeferry, "run", "pkgtest-quick.yaml", "--json"], work,
                              env).stdout)
        run_dir = Path(ran["run_dir"])
        assert run_dir.is_relative_to(work / "reports")
        trials = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()
                  if line.strip()]
        assert len(trials) == planned["trials"] == 2 * 4 + 2
        assert ran["trials_failed"] == 0 and ran["trials_run"] == len(trials)
        assert Path(ran["report_md"]).is_file() and Path(ran["report_html"]).is_file()
        run_json = json.loads((run_dir / "run.json").read_text())
        assert Path(run_json["provenance"]["git"]["installed"]).is_relative_to(venv)
    finally:
        subprocess.run([edgeferry, "lab", "down", "--name", LAB], cwd=work, env=env,
                       capture_output=True, timeout=600, check=False)
    assert not [p for p in venv.rglob(".edgeferry")]  # no state inside the installed package
    times["total"] = round(time.monotonic() - start, 1)
    print(f"[wheel test] wall times (s): {json.dumps(times)}", flush=True)
