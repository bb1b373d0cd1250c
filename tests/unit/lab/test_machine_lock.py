"""`machine_step`: one holder at a time across processes, released when the holder's process
dies. The other holder is a separate Python process that takes the lock with plain `fcntl`
(not the code under test) and says so on a pipe."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from edgeferry.lab.machine import machine_step

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


def hold(lock: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def enter_in_thread(lock: Path, log: list[str]) -> tuple[threading.Thread, threading.Event]:
    inside = threading.Event()

    def run() -> None:
        with machine_step(log.append, lock_file=lock):
            inside.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, inside


def test_waits_while_another_process_holds_it_and_says_so(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    holder = hold(lock)
    log: list[str] = []
    thread, inside = enter_in_thread(lock, log)
    assert not inside.wait(1.0), "entered while another process held the lock"
    assert len(log) == 1 and "waiting for another `lab up`" in log[0] and str(lock) in log[0]
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.wait(10) == 0
    assert inside.wait(10), "never entered after the holder let go"
    thread.join(10)


def test_a_killed_holder_leaves_nothing_to_clean_up(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    holder = hold(lock)
    log: list[str] = []
    thread, inside = enter_in_thread(lock, log)
    assert not inside.wait(0.5)
    holder.kill()
    holder.wait(10)
    assert inside.wait(10), "the lock stayed held after its process was killed"
    thread.join(10)


def test_free_lock_is_taken_at_once_and_released_after(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    log: list[str] = []
    with machine_step(log.append, lock_file=lock) as waited:
        assert waited < 5
    assert log == []
    holder = hold(lock)  # would block forever (and fail the readline) if still held
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.wait(10) == 0
    assert oct(lock.stat().st_mode & 0o777) == "0o600"
