"""Streaming statistics: exact merging, histogram quantiles with their bound, intervals."""

import numpy as np
import pytest
from scipy import stats

from sopjax.metrics import (
    Moments,
    exact_quantile,
    exact_quantile_ci,
    hist_quantile,
    hist_quantile_ci,
    normal_interval,
    wilson_interval,
    z_value,
)


def _hist(x, lo, hi, bins):
    """Reference histogram with the HistSpec layout [below, ==lo, bins, ==hi, above]."""
    c = np.zeros(bins + 4)
    for v in x:
        if v < lo:
            c[0] += 1
        elif v == lo:
            c[1] += 1
        elif v == hi:
            c[-2] += 1
        elif v > hi:
            c[-1] += 1
        else:
            c[2 + min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    return c


@pytest.mark.parametrize("splits", [[1000], [1, 999], [333, 333, 334], [7] * 142 + [6]])
def test_moments_merge_equals_one_pass(splits):
    rng = np.random.default_rng(1)
    x = rng.lognormal(size=(1000, 3)) * 1e3 + 5.0  # offset + scale: a cancellation-prone case
    parts = np.split(x, np.cumsum(splits)[:-1])
    acc = Moments.empty((3,))
    for part in parts:
        acc = acc.merge(Moments.of(part))
    np.testing.assert_allclose(acc.count, 1000)
    np.testing.assert_allclose(acc.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(acc.var, x.var(0, ddof=1), rtol=1e-11)
    np.testing.assert_array_equal(acc.min, x.min(0))
    np.testing.assert_array_equal(acc.max, x.max(0))
    np.testing.assert_allclose(acc.sem, x.std(0, ddof=1) / np.sqrt(1000), rtol=1e-11)


def test_moments_masked_counts_merge():
    # element-wise counts: a quantity observed in only some samples (e.g. energized buses)
    a = Moments(np.array([0.0, 2.0]), np.array([0.0, 1.0]), np.array([0.0, 2.0]), np.array([np.inf, 0.0]),
                np.array([-np.inf, 2.0]))
    b = Moments.of(np.array([[4.0, 3.0]]))
    m = a.merge(b)
    np.testing.assert_allclose(m.count, [1, 3])
    np.testing.assert_allclose(m.mean, [4.0, 5.0 / 3.0])
    np.testing.assert_allclose(m.m2, [0.0, ((np.array([0, 2, 3]) - 5 / 3) ** 2).sum()])
    assert m.var[0] == 0.0  # a single observation has no spread (not NaN)


def test_hist_quantile_within_one_bin_of_exact():
    rng = np.random.default_rng(2)
    lo, hi, bins = 0.0, 1.0, 200
    x = np.concatenate([rng.beta(2, 5, 3000), np.zeros(40), np.ones(160)])  # atoms at 0 and 1
    c = _hist(x, lo, hi, bins)
    q = [0.005, 0.01, 0.1, 0.25, 0.5, 0.9, 0.95, 0.999]
    est = hist_quantile(c, lo, hi, x.min(), x.max(), q)
    exact = np.quantile(x, q, method="inverted_cdf")
    assert np.all(np.abs(est - exact) <= (hi - lo) / bins + 1e-12)
    # the atoms are exact: 40/3200 = 1.25 % of the values are exactly 0, 5 % exactly 1
    np.testing.assert_array_equal(hist_quantile(c, lo, hi, x.min(), x.max(), [0.01, 0.999]), [[0.0, 1.0]][0])


def test_hist_quantile_outside_range_uses_min_max():
    x = np.array([-0.5, 0.2, 0.4, 1.5])
    c = _hist(x, 0.0, 1.0, 10)
    est = hist_quantile(c, 0.0, 1.0, x.min(), x.max(), [0.0, 0.25, 1.0])
    assert est[0] == -0.5 and est[2] == 1.5
    assert -0.5 <= est[1] <= 0.0  # inside the underflow bin, between the exact min and lo
    assert np.all(np.isnan(hist_quantile(np.zeros(14), 0.0, 1.0, np.inf, -np.inf, [0.5])))


def test_exact_quantile_per_strategy_and_validity():
    v = np.array([[3.0, 1.0, 2.0, 100.0], [5.0, 6.0, 7.0, 8.0]])
    valid = np.array([[True, True, True, False], [False, False, False, False]])
    out = exact_quantile(v, valid, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(out[0], [1.0, 2.0, 3.0])
    assert np.all(np.isnan(out[1]))  # no valid sample: no statistic


def test_quantile_ci_covers_the_true_quantile():
    # order-statistic interval: coverage >= level (distribution-free); check on uniforms
    rng = np.random.default_rng(3)
    q, level, hits, trials = [0.1, 0.5, 0.9], 0.9, np.zeros(3), 300
    for _ in range(trials):
        v = rng.uniform(size=(1, 200))
        lo, hi = exact_quantile_ci(v, np.ones_like(v, bool), q, level)
        hits += (lo[0] <= np.asarray(q)) & (np.asarray(q) <= hi[0])
    assert np.all(hits / trials >= level - 0.05)
    # the histogram version brackets the same ranks
    x = rng.uniform(size=5000)
    c = _hist(x, 0.0, 1.0, 1000)
    lo_h, hi_h = hist_quantile_ci(c, 0.0, 1.0, x.min(), x.max(), q, 0.95)
    lo_e, hi_e = exact_quantile_ci(x[None], np.ones((1, x.size), bool), q, 0.95)
    assert np.all(np.abs(lo_h - lo_e[0]) <= 1e-3 + 1e-12) and np.all(np.abs(hi_h - hi_e[0]) <= 1e-3 + 1e-12)


def test_wilson_interval_values():
    lo, hi = wilson_interval(np.array([0.0, 0.5, 1.0]), np.array([500, 100, 500]), 0.95)
    z = stats.norm.ppf(0.975)
    assert lo[0] == pytest.approx(0.0, abs=1e-15) and hi[0] == pytest.approx(z * z / (500 + z * z), rel=1e-12)  # zero observed
    assert hi[2] == pytest.approx(1.0, abs=1e-15) and lo[2] == pytest.approx(500 / (500 + z * z), rel=1e-12)
    assert lo[1] == pytest.approx(0.4038, abs=1e-4) and hi[1] == pytest.approx(0.5962, abs=1e-4)


def test_normal_interval_and_bad_level():
    lo, hi = normal_interval(np.array([1.0]), np.array([0.1]), 0.95)
    assert lo[0] == pytest.approx(1 - 0.195996, abs=1e-6) and hi[0] == pytest.approx(1 + 0.195996, abs=1e-6)
    with pytest.raises(ValueError, match="confidence level"):
        z_value(1.0)
