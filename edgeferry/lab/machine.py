"""One `lab up` at a time on the machine-wide steps.

Several labs can be up on one machine (the test suite runs three at once, a user may run the demo
beside a lab of their own), but some of what `lab up` does belongs to the machine, not to one
lab: the subnet check and the creation of the lab's network (two labs must not both find a
subnet free and both take it), the qemu-aarch64 binfmt_misc registration (two writers of
`register` race with "File exists") and the host image (built once, not once per lab).
`machine_step()` holds an exclusive `flock` on a lock file in /run/lock while those run; the
lock is released when the step ends or its process dies, so a killed `lab up` leaves nothing to
clean up. The slow part of `lab up` (booting the hosts, SSH, shaping) runs outside it, in
parallel with other labs.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = Path("/run/lock/edgeferry-lab-up.lock")


@contextmanager
def machine_step(
    log: Callable[[str], None] = print, lock_file: Path = LOCK_FILE
) -> Iterator[float]:
    """Hold the machine-wide lock for the body; yields the seconds spent waiting for it (a line
    is logged when another `lab up` holds it)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        started = time.monotonic()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another `lab up` on this machine (lock {lock_file})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
