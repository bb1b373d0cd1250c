#!/usr/bin/env python3
"""Benchmark the emulated lab: cold image build, cold and warm bring-up, and shaping accuracy.

Run as root with a Docker engine:
    .venv/bin/python benchmarks/bench_lab.py [--rates 10mbit,40mbit] [--cold-image] [--repeat 3]

It uses its own lab name (`bench`) and subnet, so it never touches the default lab, and prints:
- image build time (only with --cold-image: the cached image is removed first),
- bring-up time from nothing (containers, boot, SSH, shaping, inventory; image cached) and a second
  `lab up` (warm: nothing to change), as medians over --repeat runs,
- for each rate: configured vs measured iperf3 mean per direction and the ratio measured/configured,
  against the ±15 % acceptance bound (and TCP/IP header overhead explains ~4 % below 1.0).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from edgeferry.lab.config import load_spec, parse_rate
from edgeferry.lab.image import ImageRecipe, build_image
from edgeferry.lab.provider import EmulatedLab
from edgeferry.stats import median


def quiet(_: str) -> None:
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10mbit,40mbit,100mbit")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--edges", type=int, default=3)
    parser.add_argument("--cold-image", action="store_true", help="remove and rebuild the image")
    args = parser.parse_args()
    os.environ.setdefault("EDGEFERRY_HOME", tempfile.mkdtemp(prefix="edgeferry-bench-"))
    recipe = ImageRecipe.for_variant("prebaked")
    if args.cold_image:
        subprocess.run(
            ["docker", "image", "rm", "-f", recipe.tag], capture_output=True, check=False
        )
        _, build_s = build_image(recipe, log=quiet)
        print(f"image build (debootstrap + import), cold: {build_s:.1f} s")
    else:
        build_image(recipe, log=quiet)
    spec = load_spec(name="bench", subnet="10.253.0.0/24", edges=args.edges)
    lab = EmulatedLab(spec, log=quiet)
    lab.down()
    cold, warm = [], []
    for _ in range(args.repeat):
        t0 = time.monotonic()
        lab.up(check_bandwidth=False)
        cold.append(time.monotonic() - t0)
        t0 = time.monotonic()
        result = lab.up(check_bandwidth=False)
        warm.append(time.monotonic() - t0)
        assert not result.changed, result.changes
        lab.down()
    n = len(spec.hosts)
    runs = ", ".join(f"{x:.1f}" for x in cold)
    print(
        f"bring-up from nothing ({n} hosts, image cached): "
        f"median {median(cold):.1f} s (runs: {runs})"
    )
    print(f"second `lab up` (nothing to change): median {median(warm):.2f} s")
    print("\nshaping accuracy (iperf3, receiver-side 0.5 s samples, tolerance ±15 %):")
    print(f"{'rate':>10} {'host':>6} {'dir':>5} {'measured Mbit/s':>16} {'sd':>6} {'ratio':>6}")
    ratios = []
    try:
        for rate in args.rates.split(","):
            rspec = load_spec(
                name="bench", subnet="10.253.0.0/24", edges=args.edges, bandwidth=rate
            )
            rlab = EmulatedLab(rspec, log=quiet)
            state = rlab.up(check_bandwidth=True).state
            for host, entry in sorted(state.bandwidth.items()):
                for direction in ("up", "down"):
                    m = entry[direction]
                    ratio = m["mean_bps"] / parse_rate(rate)
                    ratios.append(ratio)
                    mean, sd = m["mean_bps"] / 1e6, m["stdev_bps"] / 1e6
                    row = f"{rate:>10} {host:>6} {direction:>5} {mean:>16.2f} {sd:>6.2f}"
                    print(f"{row} {ratio:>6.3f}")
    finally:
        lab.down()
    print(
        f"\nmeasured/configured: median {median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}; bound 0.85..1.15"
    )
    return 0 if all(0.85 <= r <= 1.15 for r in ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
