"""`edgeferry run` of an experiment file on the shared deployed lab (tests/integration/conftest.py),
as a user runs it: the installed command in a subprocess, `--skip-deploy --skip-verify` because
the fixture deployed the lab and test_deploy verifies it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
