"""The one statistics module of the controller and the benchmarks: percentiles, the median, and
a bootstrap confidence interval for the median.

**Percentile definition** (the only one in edgeferry; every report, results frame, plot and
benchmark uses it): for n sorted values x[0] <= ... <= x[n-1] and q in [0, 100], let
h = (n - 1) * q / 100; the q-th percentile is

    x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])

i.e. linear interpolation between the two closest order statistics (Hyndman & Fan's type 7).
Why this one: it is numpy's, pandas' and R's default, so a figure here equals
`numpy.percentile` / `DataFrame.quantile` / `Series.median` of the same values (the results
frame and every check against numpy agree with the report by construction); it is defined for
any n >= 1, continuous and monotone in q, its 50th percentile is the textbook median (the mean of
the two middle values for even n), and p0 / p100 are the minimum / maximum. Note for small n:
p99 of fewer than 101 values interpolates between the two largest, it is not a value that was
observed (a nearest-rank p99 would be the maximum).

**Median confidence interval**: percentile bootstrap. Draw `resamples` samples of size n with
replacement from the values, take each one's median, and report the (1 - level) / 2 and
(1 + level) / 2 percentiles (definition above) of those medians. The random generator is seeded
(`seed`, default `DEFAULT_SEED`), so the same values always give the same interval and a report
rendered twice from one run directory is identical. Fewer than `MIN_CI_N` (3) values give no
interval: with one value it would be a point, with two only three medians can occur.

Only the standard library: the deployed side never imports edgeferry, and no agent computes
percentiles today; the benchmarks import this module.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: fewest values a median confidence interval is computed for
MIN_CI_N = 3
#: bootstrap defaults: resamples drawn, confidence level, generator seed
DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0


def _sorted_values(values: Iterable[float]) -> list[float]:
    s = sorted(float(v) for v in values)
    if not s:
        raise ValueError("percentile of no values")
    return s


def _from_sorted(s: list[float], q: float) -> float:
    h = (len(s) - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (q in [0, 100]) of a non-empty collection of numbers, by linear
    interpolation between the closest order statistics (the module docstring's definition,
    numpy's default). Raises ValueError for no values or q outside [0, 100]."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], not {q}")
    return _from_sorted(_sorted_values(values), q)


def median(values: Iterable[float]) -> float:
    """The median: the 50th percentile (the mean of the two middle values for an even count)."""
    return percentile(values, 50)


def p50(values: Iterable[float]) -> float:
    """The 50th percentile (the median)."""
    return percentile(values, 50)


def p90(values: Iterable[float]) -> float:
    """The 90th percentile."""
    return percentile(values, 90)


def p95(values: Iterable[float]) -> float:
    """The 95th percentile."""
    return percentile(values, 95)


def p99(values: Iterable[float]) -> float:
    """The 99th percentile."""
    return percentile(values, 99)


@dataclass(frozen=True)
class Interval:
    """A confidence interval [lo, hi] at `level`, from `resamples` bootstrap resamples."""

    lo: float
    hi: float
    level: float
    resamples: int

    def __contains__(self, x: float) -> bool:
        return self.lo <= x <= self.hi


def median_ci(values: Iterable[float], level: float = DEFAULT_LEVEL,
              resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Interval | None:
    """Percentile-bootstrap confidence interval for the median of `values` (module docstring):
    `resamples` resamples with replacement from a generator seeded with `seed`; None for fewer
    than MIN_CI_N values. Raises ValueError for a level outside (0, 1) or resamples < 1."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), not {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    data = [float(v) for v in values]
    if len(data) < MIN_CI_N:
        return None
    rng = random.Random(seed)
    n = len(data)
    medians = sorted(_from_sorted(sorted(rng.choices(data, k=n)), 50)
                     for _ in range(resamples))
    tail = (1.0 - level) / 2.0 * 100.0
    return Interval(_from_sorted(medians, tail), _from_sorted(medians, 100.0 - tail), level,
                    resamples)


def time_calls_ns(fn: Callable[[], object], runs: int, warmup: int = 3) -> list[int]:
    """Nanoseconds (time.perf_counter_ns) of each of `runs` calls of `fn`, after `warmup`
    untimed calls: the samples the in-process benchmarks summarise."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return out


__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "MIN_CI_N",
    "Interval",
    "median",
    "median_ci",
    "p50",
    "p90",
    "p95",
    "p99",
    "percentile",
    "time_calls_ns",
]
