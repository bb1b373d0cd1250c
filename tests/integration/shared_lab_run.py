"""`edgeferry run` of an experiment file on the shared deployed lab (tests/integration/conftest.py),
as a user runs it: the installed command in a subprocess, `--skip-deploy --skip-verify` because
the fixture deployed the lab and test_deploy verifies it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run_experiment(path: Path, reports: Path, timeout: float) -> Path:
    """Run the experiment at `path` into `reports` (exit 0 asserted); its run directory."""
    proc = subprocess.run(
        [str(BIN / "edgeferry"), "run", str(path), "--new", "--skip-deploy", "--skip-verify",
         "--reports-dir", str(reports)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200",
             "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    name = str(yaml.safe_load(path.read_text())["name"])
    return next((reports / name).iterdir())


def read_trials(run_dir: Path) -> list[dict[str, Any]]:
    """The run's trials as recorded (trials.jsonl, one JSON object per line)."""
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def the_one_trial(run_dir: Path) -> dict[str, Any]:
    """The run's only trial, asserted to have succeeded (its error shown when it did not)."""
    trials = read_trials(run_dir)
    assert len(trials) == 1, [t.get("trial_id") for t in trials]
    assert trials[0]["outcome"] == "ok", trials[0].get("error")
    return trials[0]
