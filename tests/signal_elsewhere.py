"""Run a Python entry point whose own thread, not the main one, sends the process SIGTERM once
its handlers are installed: the kernel may hand a process-directed signal to any thread, and
Python runs the handler only when the main thread wakes (seen in CI: an agent that never
stopped after `terminate()`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PRELUDE = """
import signal, sys, threading, time

def kill_from_here():
    while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        time.sleep(0.05)
    time.sleep(0.5)  # the main thread is waiting by now
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

threading.Thread(target=kill_from_here, daemon=True).start()
"""


def run_signalled_from_another_thread(main: str, args: Sequence[str], what: str,
                                      timeout: float = 20) -> tuple[int, str]:
    """(exit code, stderr) of ``python -c <prelude + main> args``; an AssertionError naming
    ``what`` when the process is still running ``timeout`` seconds later (it is killed)."""
    proc = subprocess.Popen([sys.executable, "-c", _PRELUDE + main, *args],
                            stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{what} was still running {timeout:g} s after SIGTERM") from None
    return proc.returncode, stderr
