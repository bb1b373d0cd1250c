"""`edgeferry run` stopped by SIGTERM (a service manager, `kill`) behaves as Ctrl-C: the part's
teardown runs, the command says how to resume and exits non-zero."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.entry import REPO, SCRIPT


def test_sigterm_tears_the_part_down_and_leaves_a_resumable_run(tmp_path: Path) -> None:
    definition = tmp_path / "long.yaml"
    definition.write_text(yaml.safe_dump({
        "name": "sigterm", "description": "long enough to be stopped", "seed": 1,
        "target": {"lab": {}},
        "parts": [{"scenario": "ledger-decision", "repetitions": 4000,
                   "workload": {"peer_hosts": 1}, "parameters": {"nodes": 3}}]}))
    reports = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([str(SCRIPT), "run", str(definition), "--reports-dir", str(reports)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=REPO)
    runs = reports / "sigterm"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until trials are being recorded
        files = list(runs.glob("*/trials.jsonl")) if runs.exists() else []
        if files and files[0].stat().st_size > 0:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError("the run recorded no trial within 60 s")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode not in (0, None), out
    assert "teardown" in out and "interrupted" in out and "to resume" in out, out[-2000:]
    done = [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]
    assert 0 < len(done) < 4000
