"""The installed `edgeferry` command, run as a user runs it: the console script of the
interpreter running the tests (the venv's bin), in a subprocess, so exit codes are the real ones
(a click test runner would not show what `main()` returns to the shell)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "edgeferry"


def edgeferry(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`edgeferry ARGS` from the checkout (this checkout's code first on the path)."""
    if not SCRIPT.exists():
        raise AssertionError(f"{SCRIPT} is missing: install edgeferry into this venv "
                             "(./edgeferry.sh setup)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout, check=False)
