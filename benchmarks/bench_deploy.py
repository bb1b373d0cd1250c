#!/usr/bin/env python3
"""Benchmark the deploy: first deploy on a fresh lab, then a second one with nothing changed.

Run as root with a Docker engine (the lab image is built if missing):
    .venv/bin/python benchmarks/bench_deploy.py [--edges 2] [--keep]

It brings up its own lab (`benchdeploy`, 10.248.0.0/24), so it never touches the default lab,
deploys it three times through `deploy_site`, the path `edgeferry deploy` and `edgeferry run`
take (edgeferry/deploy/stamp.py), and prints:
- the first deploy (fresh hosts, full playbook, leaves the deploy stamps),
- the second deploy with nothing changed as a user gets it (the hosts' stamps are read and the
  playbook is skipped when every one proves it unnecessary),
- a forced second full playbook run (--force: what every deploy cost before the stamps),
- the same forced run with the baseline strategy (--baseline-strategy, default ansible's own
  `linear`) right after it on the same hosts, and the ratio of the two (the default strategy is
  Mitogen's `mitogen_linear`, edgeferry/deploy/runner.py),
each with wall time, host-tasks and changed count per host and the per-play breakdown (wall
seconds, host-tasks, changed; from ansible-runner's job events, edgeferry/deploy/timings.py), and
the slowest tasks of the forced run (host-seconds). The goals of issue 18 are printed beside the
figures as ratios: first deploy <= 120 s, second deploy (nothing changed) <= 30 s.
The lab is removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from edgeferry.deploy.runner import DEFAULT_STRATEGY, PlaybookResult
from edgeferry.deploy.stamp import deploy_site
from edgeferry.deploy.timings import load_events, play_timings, slow_tasks
from edgeferry.lab.config import load_spec
from edgeferry.lab.image import ImageRecipe, build_image
from edgeferry.lab.provider import EmulatedLab

GOAL_FIRST_S = 120.0
GOAL_SECOND_S = 30.0


def quiet(_: str) -> None:
    pass


def deploy(inventory: Path, *, force: bool,
           strategy: str | None = None) -> tuple[PlaybookResult | None, float]:
    done = deploy_site(inventory, progress=quiet, force=force, strategy=strategy)
    if not done.ok:
        failures = done.result.failures[:3] if done.result else []
        raise SystemExit(f"deploy failed: {failures}")
    return done.result, done.seconds


def show(label: str, result: PlaybookResult, seconds: float, goal: float) -> None:
    tasks = sum(h.ok + h.changed + h.failed + h.skipped for h in result.hosts.values())
    print(f"\n{label}: {seconds:.1f} s (goal <= {goal:.0f} s, ratio {seconds / goal:.2f}); "
          f"{tasks} host-tasks, changed={result.changed_total}")
    for host, recap in sorted(result.hosts.items()):
        print(f"  {host:<10} ok={recap.ok:<4} changed={recap.changed:<3} "
              f"skipped={recap.skipped}")
    events = load_events(result.run_dir)
    print(f"  {'play':<52} {'s':>7} {'host-tasks':>10} {'changed':>8}")
    for row in play_timings(events):
        print(f"  {row.play[:52]:<52} {row.seconds:>7.1f} {row.host_tasks:>10} "
              f"{row.changed:>8}")


def slowest(label: str, result: PlaybookResult) -> None:
    print(f"\n  slowest tasks of the {label} (host-seconds summed over hosts):")
    for task in slow_tasks(load_events(result.run_dir), top=12):
        print(f"  {task.seconds:>7.2f} s  {task.hosts} hosts  changed={task.changed}  "
              f"{task.play[:30]} / {task.task[:60]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=None,
                        help="edge hosts (default: the default lab's)")
    parser.add_argument("--keep", action="store_true", help="keep the lab afterwards")
    parser.add_argument("--host-image", choices=("prebaked", "minimal"), default="prebaked",
                        help="lab host image: prebaked (default; Debian packages the roles "
                             "install are in the image) or minimal (as fresh hardware)")
    parser.add_argument("--strategy", default=None,
                        help="Ansible strategy of the deploys (default: edgeferry's, "
                             f"{DEFAULT_STRATEGY})")
    parser.add_argument("--baseline-strategy", default="linear",
                        help="strategy of one more forced run to compare with ('none': skip)")
    args = parser.parse_args()
    t_img = time.monotonic()
    _, built = build_image(ImageRecipe.for_variant(args.host_image), log=quiet)
    if built:
        print(f"host image ({args.host_image}) built: {time.monotonic() - t_img:.1f} s")
    spec = load_spec(name="benchdeploy", subnet="10.248.0.0/24", edges=args.edges)
    spec = spec.model_copy(update={"host_image": args.host_image})
    lab = EmulatedLab(spec, log=quiet)
    lab.down()
    try:
        t0 = time.monotonic()
        up = lab.up(check_bandwidth=False)
        print(f"lab up ({len(spec.hosts)} hosts, {args.host_image} image cached): "
              f"{time.monotonic() - t0:.1f} s")
        inventory = Path(up.state.inventory)
        first, first_s = deploy(inventory, force=False, strategy=args.strategy)
        assert first is not None, "fresh hosts hold no stamp: the first deploy must run"
        show("first deploy (fresh hosts)", first, first_s, GOAL_FIRST_S)
        slowest("first deploy", first)
        second, second_s = deploy(inventory, force=False, strategy=args.strategy)
        print(f"\nsecond deploy, nothing changed (stamps read, playbook "
              f"{'skipped' if second is None else 'RUN'}): {second_s:.1f} s "
              f"(goal <= {GOAL_SECOND_S:.0f} s, ratio {second_s / GOAL_SECOND_S:.2f})")
        forced, forced_s = deploy(inventory, force=True, strategy=args.strategy)
        assert forced is not None
        show(f"second full playbook run, nothing changed (--force, strategy {forced.strategy})",
             forced, forced_s, GOAL_SECOND_S)
        slowest("forced run", forced)
        print(f"\nfirst {first_s:.1f} s {'meets' if first_s <= GOAL_FIRST_S else 'misses'} "
              f"its goal; second (skip path) {second_s:.1f} s "
              f"{'meets' if second_s <= GOAL_SECOND_S else 'misses'} its goal; forced full "
              f"run {forced_s:.1f} s")
        # the forced run forgets and re-records each host's stamp: 2 changes per host at most
        extra = {h: r.changed for h, r in forced.hosts.items() if r.changed > 1}
        if args.baseline_strategy != "none":
            base, base_s = deploy(inventory, force=True, strategy=args.baseline_strategy)
            assert base is not None
            print(f"\nforced full run with {base.strategy}: {base_s:.1f} s, "
                  f"changed={base.changed_total}; {forced.strategy} / {base.strategy} = "
                  f"{forced_s / base_s:.2f} (same hosts, one after the other)")
            extra.update({h: r.changed for h, r in base.hosts.items() if r.changed > 1})
        return 0 if second is None and not extra else 1
    finally:
        if not args.keep:
            lab.down()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
