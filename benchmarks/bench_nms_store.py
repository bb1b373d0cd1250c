"""Local cost of the NMS block store's on-disk layout (issue 17: per-file costs in the diff).

Run: PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_nms_store.py [--mb 64] [--runs 3]

For each run, in a fresh folder: allocate and write `--mb` MB of random 8 KiB blocks through
`agents.workloads.nms.server.BlockStore` in-process (no network, ``--sync`` off as in the lab),
then count the files under the data folder and time ``tar -cf`` (no compression: the per-file
part alone) and ``tar -czf`` of it (GNU tar + gzip, what a
layer push does in spirit: one tar stream, gzip level 6) and ``tar -xzf`` of the archive into an
empty folder (the destination's extraction). Timing: time.perf_counter around each step; the
medians over the runs come from edgeferry.stats. Random data: fuxfs blocks written by the lab's
clients are random too (the experiments write os.urandom), so gzip gains nothing on either
layout; what differs is the per-file work.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from agents.workloads.nms.server import BlockStore
from edgeferry.stats import median

BLOCK = 8192


def one_run(mb: int, where: Path) -> dict[str, float]:
    """Write `mb` MB of blocks into a new store under `where`; time tar+gzip and extraction."""
    data = where / "data"
    store = BlockStore(data, BLOCK, max_blocks=1 << 20)
    n = mb * 1024 * 1024 // BLOCK
    payload = [os.urandom(BLOCK) for _ in range(n)]
    t0 = time.perf_counter()
    for block in payload:
        store.write(store.allocate(os.urandom(16)), block)
    t_write = time.perf_counter() - t0
    close = getattr(store, "close", None)
    if close is not None:
        close()
    files = sum(1 for p in data.rglob("*") if p.is_file())
    archive = where / "data.tar.gz"
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    subprocess.run(["tar", "-cf", str(where / "data.tar"), "-C", str(data), "."], check=True)
    t_tar_only = time.perf_counter() - t0
    (where / "data.tar").unlink()
    t0 = time.perf_counter()
    subprocess.run(["tar", "-czf", str(archive), "-C", str(data), "."], check=True)
    t_tar = time.perf_counter() - t0
    out = where / "extracted"
    out.mkdir()
    t0 = time.perf_counter()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
    t_untar = time.perf_counter() - t0
    return {"write_s": t_write, "files": float(files), "tar_s": t_tar_only, "tar_gz_s": t_tar,
            "untar_s": t_untar, "archive_mb": archive.stat().st_size / 1e6}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    rows = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="nms-bench-") as tmp:
            rows.append(one_run(args.mb, Path(tmp)))
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"NMS block store, {args.mb} MB of {BLOCK}-byte blocks, {args.runs} runs (medians):")
    for key in rows[0]:
        print(f"  {key:11s} {median(r[key] for r in rows):10.3f}   "
              f"(runs: {', '.join(f'{r[key]:.3f}' for r in rows)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
