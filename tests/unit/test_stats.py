"""edgeferry.stats: the one percentile definition and the bootstrap CI of the median.

Expectations are independent of the code: hand-computed order statistics, numpy.percentile
(method "linear", numpy's default) as the reference for the interpolation, the exact bootstrap
distribution of the median of three values, and the coverage of the interval on a distribution
whose median is known (exponential, median ln 2) with fixed seeds.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import numpy as np
import pytest

from edgeferry.stats import MIN_CI_N, median, median_ci, p50, p90, p95, p99, percentile


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([1, 2, 3, 4], 50, 2.5),          # h = 1.5: halfway between 2 and 3
    ([1, 2, 3, 4], 25, 1.75),         # h = 0.75
    ([1, 2, 3, 4], 0, 1.0),
    ([1, 2, 3, 4], 100, 4.0),
    ([4, 1, 3, 2], 75, 3.25),         # unsorted input; h = 2.25
    ([10, 20, 30], 50, 20.0),         # odd count: the middle value
    ([7], 99, 7.0),                   # one value: every percentile is it
    ([0, 100], 99, 99.0),             # h = 0.99
    ([1, 1, 1, 10], 95, 8.65),        # h = 2.85: 1 + 0.85 * 9
])
def test_percentile_hand_computed(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_matches_numpy_linear_interpolation() -> None:
    rng = np.random.default_rng(12)
    for n in (1, 2, 3, 5, 10, 37, 100, 1001):
        values = rng.lognormal(0.0, 1.5, size=n).tolist()
        for q in (0, 1, 5, 10, 25, 33.3, 50, 66.6, 75, 90, 95, 99, 99.9, 100):
            assert percentile(values, q) == pytest.approx(
                float(np.percentile(values, q, method="linear")), rel=1e-12, abs=1e-12), (n, q)


def test_helpers_are_the_named_percentiles_and_median_is_numpys() -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    assert median(values) == p50(values) == pytest.approx(float(np.median(values)))  # 4.0
    assert median(values) == pytest.approx(4.0)
    assert p90(values) == pytest.approx(float(np.percentile(values, 90)))
    assert p95(values) == pytest.approx(float(np.percentile(values, 95)))
    assert p99(values) == pytest.approx(float(np.percentile(values, 99)))
    assert p99(values) < max(values)  # interpolated, not nearest-rank


def test_percentile_refuses_no_values_and_q_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    for q in (-1, 100.5):
        with pytest.raises(ValueError, match=r"\[0, 100\]"):
            percentile([1.0], q)


def test_median_ci_of_three_values_is_the_exact_bootstrap_distribution() -> None:
    # The median of 3 draws with replacement from {1, 2, 3} is 1 with probability 7/27
    # (at least two 1s), 3 with 7/27 and 2 with 13/27. Its 2.5 % / 97.5 % points are 1 and 3;
    # its 30 % / 70 % points (level 0.4) are both 2, since 7/27 < 0.3.
    ci = median_ci([3, 1, 2], level=0.95, resamples=4000, seed=1)
    assert ci is not None and (ci.lo, ci.hi) == (1.0, 3.0)
    narrow = median_ci([3, 1, 2], level=0.4, resamples=4000, seed=1)
    assert narrow is not None and (narrow.lo, narrow.hi) == (2.0, 2.0)
    assert (ci.level, ci.resamples) == (0.95, 4000)


def _exact_bootstrap_quantile(values: list[float], p: float) -> float:
    """The p-quantile (inverse CDF) of the median of n draws with replacement from `values`,
    by enumerating every multiset of indices with its multinomial probability."""
    n = len(values)
    dist: Counter[float] = Counter()
    for combo in itertools.combinations_with_replacement(range(n), n):
        ways = math.factorial(n)
        for k in Counter(combo).values():
            ways //= math.factorial(k)
        dist[float(np.median([values[i] for i in combo]))] += ways / n**n
    cumulative = 0.0
    for m in sorted(dist):
        cumulative += dist[m]
        if cumulative >= p:
            return m
    raise AssertionError("probabilities do not sum to 1")


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_median_ci_ends_are_the_exact_bootstrap_quantiles(n: int) -> None:
    # The Monte Carlo ends (2000 resamples) must lie between the exact bootstrap distribution's
    # 1.5 % and 3.5 % (97.5 +- 1 %) quantiles: about 3 sd of a 2.5 % quantile estimated from 2000.
    rng = random.Random(n)
    values = [round(rng.uniform(0, 10), 3) for _ in range(n)]
    ci = median_ci(values)
    assert ci is not None
    assert _exact_bootstrap_quantile(values, 0.015) <= ci.lo <= _exact_bootstrap_quantile(
        values, 0.035)
    assert _exact_bootstrap_quantile(values, 0.965) <= ci.hi <= _exact_bootstrap_quantile(
        values, 0.985)


def test_median_ci_is_seeded_and_reproducible() -> None:
    rng = random.Random(3)
    values = [rng.expovariate(1.0) for _ in range(25)]
    a, b = median_ci(values, seed=7), median_ci(values, seed=7)
    assert a == b
    # the seed drives the resampling: with few resamples, different seeds give different ends
    assert len({median_ci(values, resamples=20, seed=s) for s in range(10)}) > 1
    assert a is not None and a.lo <= median(values) <= a.hi
    assert min(values) <= a.lo < a.hi <= max(values)


def test_median_ci_none_below_three_values_and_bad_arguments_refused() -> None:
    assert MIN_CI_N == 3
    assert median_ci([1.0]) is None
    assert median_ci([1.0, 2.0]) is None
    assert median_ci([1.0, 2.0, 3.0]) is not None
    with pytest.raises(ValueError, match="level"):
        median_ci([1.0, 2.0, 3.0], level=1.0)
    with pytest.raises(ValueError, match="resamples"):
        median_ci([1.0, 2.0, 3.0], resamples=0)


def _coverage(level: float, experiments: int = 200, n: int = 30) -> float:
    rng = random.Random(2024)
    true_median = math.log(2)  # exponential(1)
    hits = 0
    for i in range(experiments):
        sample = [rng.expovariate(1.0) for _ in range(n)]
        ci = median_ci(sample, level=level, resamples=500, seed=i)
        assert ci is not None
        hits += true_median in ci
    return hits / experiments


def test_median_ci_covers_the_true_median_at_about_its_level() -> None:
    # 200 samples of 30 exponential(1) values, each with its own 95 % and 50 % interval: the
    # share containing ln 2 is near the level (binomial sd about 0.015 at 95 %, 0.035 at 50 %).
    # The 50 % case shows the check can fail: an interval that were merely wide would cover
    # far more than half the time.
    assert 0.88 <= _coverage(0.95) <= 0.99
    assert 0.38 <= _coverage(0.50) <= 0.64


def test_time_calls_ns_warms_up_then_times_each_call() -> None:
    import time

    from edgeferry.stats import time_calls_ns

    calls: list[int] = []
    samples = time_calls_ns(lambda: (calls.append(1), time.sleep(0.002)), runs=4, warmup=2)
    assert len(calls) == 6 and len(samples) == 4
    assert all(s >= 2_000_000 for s in samples)   # each timed call slept 2 ms
