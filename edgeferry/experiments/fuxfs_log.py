"""Append numbered lines to a file and fsync each (the nms-client-moves scenario's writer).

    python -m edgeferry.experiments.fuxfs_log PATH PERIOD_S

Prints ``<n> <seconds the write and fsync took>`` for every line whose fsync returned, then
sleeps ``PERIOD_S``; stops at SIGTERM or SIGINT (after the line in flight), closes the file and
exits 0. A failed write or fsync is printed as ``error <line>: <reason>`` (exit 1). It runs in a
process of its own so that the open file (on a fuxfs mount) is never inherited by a process
that the caller starts (see `edgeferry.experiments.scenarios.nms_client_moves.LogWriter`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m edgeferry.experiments.fuxfs_log PATH PERIOD_S", file=sys.stderr)
        return 2
    path, period = Path(args[0]), float(args[1])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    n = 0
    with path.open("ab") as f:
        while not stop.is_set():
            n += 1
            t0 = time.monotonic()
            try:
                f.write(f"{n:08d}\n".encode())
                f.flush()
                os.fsync(f.fileno())
            except OSError as err:
                print(f"error line {n}: {err}", flush=True)
                return 1
            print(f"{n} {time.monotonic() - t0:.4f}", flush=True)
            stop.wait(period)
    return 0


if __name__ == "__main__":
    sys.exit(main())
