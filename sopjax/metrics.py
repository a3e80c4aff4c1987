"""Streaming statistics for Monte Carlo: mergeable moments, histogram quantiles, intervals.

Everything here is host-side numpy and exact under merging:

* :class:`Moments` holds count, mean, M2 (sum of squared deviations), min and
  max. Two partial results merge with the pairwise formula of Chan, Golub &
  LeVeque (1979): ``delta = mean_b - mean_a``, ``mean = mean_a + delta n_b / n``,
  ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``. Merging chunks in any size gives
  the same mean and variance up to floating-point rounding.
* Quantiles use the inverse empirical CDF: the q-quantile of n values is the
  order statistic ``x_(ceil(q n))`` (numpy ``method="inverted_cdf"``). They are
  *exact* from stored per-sample values when those fit in memory, otherwise
  read from a fixed-bin histogram (:class:`~sopjax.kernels.scoring.HistSpec`):
  counts add exactly, the bin holding rank ``ceil(q n)`` is known exactly and
  the value is interpolated linearly inside it, so a quantile inside
  ``(lo, hi)`` is within one bin width of the exact one. Atoms at ``lo`` / ``hi``
  are exact; in the under/overflow bins the value is interpolated between the
  exact min/max and the range edge, with no bound.
* Intervals: normal-approximation confidence interval of a mean
  (``mean +- z * std / sqrt(n)``), Wilson score interval of a probability, and
  the distribution-free order-statistic interval of a quantile (ranks from the
  binomial distribution).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import stats as _stats

__all__ = [
    "Moments",
    "hist_quantile",
    "hist_quantile_ci",
    "exact_quantile",
    "exact_quantile_ci",
    "wilson_interval",
    "normal_interval",
    "z_value",
]


@dataclasses.dataclass
class Moments:
    """Mergeable count / mean / M2 / min / max over a leading-free array shape.

    All fields share one shape (e.g. (strategy, bus)). ``count`` is per element
    so that masked quantities (a bus voltage only when the bus is energized)
    merge correctly.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def empty(cls, shape: Sequence[int]) -> "Moments":
        z = np.zeros(shape)
        return cls(z.copy(), z.copy(), z.copy(), np.full(shape, np.inf), np.full(shape, -np.inf))

    @classmethod
    def of(cls, x: np.ndarray, axis: int = 0) -> "Moments":
        """Moments of ``x`` along ``axis`` (unmasked), for tests and small data."""
        x = np.asarray(x, float)
        n = np.full(np.delete(x.shape, axis), x.shape[axis], float)
        mean = x.mean(axis=axis)
        m2 = ((x - np.expand_dims(mean, axis)) ** 2).sum(axis=axis)
        return cls(n, mean, m2, x.min(axis=axis), x.max(axis=axis))

    def merge(self, other: "Moments") -> "Moments":
        """Pairwise merge (Chan et al.); exact up to rounding, order-independent in exact arithmetic."""
        na, nb = self.count, np.asarray(other.count, float)
        n = na + nb
        safe = np.where(n > 0, n, 1.0)
        delta = np.asarray(other.mean, float) - self.mean
        mean = np.where(n > 0, self.mean + delta * nb / safe, 0.0)
        m2 = self.m2 + np.asarray(other.m2, float) + delta**2 * na * nb / safe
        return Moments(
            count=n,
            mean=mean,
            m2=np.where(n > 0, m2, 0.0),
            min=np.minimum(self.min, other.min),
            max=np.maximum(self.max, other.max),
        )

    @property
    def var(self) -> np.ndarray:
        """Unbiased sample variance (0 where count < 2)."""
        return np.where(self.count > 1, self.m2 / np.maximum(self.count - 1, 1), 0.0)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.var, 0.0))

    @property
    def sem(self) -> np.ndarray:
        """Monte Carlo standard error of the mean, ``std / sqrt(n)`` (0 where n < 2)."""
        return np.where(self.count > 1, self.std / np.sqrt(np.maximum(self.count, 1)), 0.0)

    def as_dict(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{f.name}": getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict, prefix: str) -> "Moments":
        return cls(**{f.name: np.asarray(d[f"{prefix}.{f.name}"], float) for f in dataclasses.fields(cls)})


def z_value(level: float) -> float:
    """Two-sided standard-normal quantile for a confidence ``level`` in (0, 1)."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")
    return float(_stats.norm.ppf(0.5 + level / 2))


def normal_interval(mean: np.ndarray, sem: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """``mean -+ z * sem``: the CLT confidence interval of a Monte Carlo mean."""
    z = z_value(level)
    return mean - z * sem, mean + z * sem


def wilson_interval(p: np.ndarray, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a probability ``p`` estimated from ``n`` samples.

    Unlike ``p -+ z sqrt(p(1-p)/n)`` it stays inside [0, 1] and is not empty at
    ``p`` = 0 or 1 (a violation never observed in 500 samples is not impossible).
    """
    z = z_value(level)
    n = np.asarray(n, float)
    p = np.asarray(p, float)
    safe = np.maximum(n, 1)
    denom = 1 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denom
    half = z * np.sqrt(np.maximum(p * (1 - p) / safe + z * z / (4 * safe * safe), 0)) / denom
    lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    return np.where(n > 0, lo, 0.0), np.where(n > 0, hi, 1.0)


# ---------------------------------------------------------------------------
# quantiles
# ---------------------------------------------------------------------------


def exact_quantile(values: np.ndarray, valid: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Quantiles ``q`` of ``values`` (strategy, sample) over valid samples (inverse empirical CDF).

    Returns:
        (strategy, len(q)); NaN for a strategy without valid samples.
    """
    out = np.full((values.shape[0], len(q)), np.nan)
    for s in range(values.shape[0]):
        v = values[s][valid[s]]
        if v.size:
            out[s] = np.quantile(v, q, method="inverted_cdf")
    return out


def _rank_bounds(n: int, q: float, level: float) -> tuple[int, int]:
    """0-based order-statistic ranks (lo, hi) bracketing the q-quantile with prob. >= level."""
    a = (1 - level) / 2
    lo = int(_stats.binom.ppf(a, n, q)) - 1
    hi = int(_stats.binom.ppf(1 - a, n, q))
    return max(lo, 0), min(hi, n - 1)


def exact_quantile_ci(
    values: np.ndarray, valid: np.ndarray, q: Sequence[float], level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Distribution-free confidence interval of each quantile from order statistics."""
    lo = np.full((values.shape[0], len(q)), np.nan)
    hi = lo.copy()
    for s in range(values.shape[0]):
        v = np.sort(values[s][valid[s]])
        if not v.size:
            continue
        for j, qq in enumerate(q):
            a, b = _rank_bounds(v.size, qq, level)
            lo[s, j], hi[s, j] = v[a], v[b]
    return lo, hi


def _hist_value_at_rank(counts: np.ndarray, lo: float, hi: float, bins: int, vmin: float, vmax: float, r: float):
    """Value whose empirical CDF (count scale) reaches ``r`` in a histogram with atoms.

    ``counts`` = [below, ==lo, bins..., ==hi, above]; ``r`` in (0, total].
    """
    w = (hi - lo) / bins
    cum = np.cumsum(counts)
    k = int(np.searchsorted(cum, r, side="left"))
    k = min(k, counts.size - 1)
    before = cum[k - 1] if k > 0 else 0.0
    frac = (r - before) / counts[k] if counts[k] > 0 else 1.0
    frac = min(max(frac, 0.0), 1.0)
    if k == 0:  # below lo: between the exact min and lo
        left, right = vmin, min(lo, vmax)
    elif k == 1:
        return lo
    elif k == counts.size - 2:
        return hi
    elif k == counts.size - 1:  # above hi
        left, right = max(hi, vmin), vmax
    else:
        left = lo + (k - 2) * w
        right = left + w
        left, right = max(left, vmin), min(right, vmax)
    return left + frac * (right - left)


def hist_quantile(
    counts: np.ndarray, lo: float, hi: float, vmin: np.ndarray, vmax: np.ndarray, q: Sequence[float]
) -> np.ndarray:
    """Quantiles from histograms ``counts`` (..., bins + 4) laid out as in ``HistSpec``.

    Args:
        counts: histogram counts, any leading shape.
        lo, hi: histogram range; bins = counts.shape[-1] - 4.
        vmin, vmax: exact min / max per leading element (clip the interpolation).
        q: probability levels in [0, 1].

    Returns:
        (..., len(q)); NaN where a histogram is empty.
    """
    counts = np.asarray(counts, float)
    bins = counts.shape[-1] - 4
    lead = counts.shape[:-1]
    flat = counts.reshape(-1, counts.shape[-1])
    mn, mx = np.broadcast_to(vmin, lead).reshape(-1), np.broadcast_to(vmax, lead).reshape(-1)
    out = np.full((flat.shape[0], len(q)), np.nan)
    for i, c in enumerate(flat):
        total = c.sum()
        if total <= 0:
            continue
        for j, qq in enumerate(q):
            if qq <= 0:
                out[i, j] = mn[i]
            elif qq >= 1:
                out[i, j] = mx[i]
            else:
                out[i, j] = _hist_value_at_rank(c, lo, hi, bins, mn[i], mx[i], qq * total)
    return out.reshape(*lead, len(q))


def hist_quantile_ci(
    counts: np.ndarray, lo: float, hi: float, vmin: np.ndarray, vmax: np.ndarray, q: Sequence[float], level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Order-statistic confidence interval of each quantile, read from the histogram."""
    counts = np.asarray(counts, float)
    bins = counts.shape[-1] - 4
    lead = counts.shape[:-1]
    flat = counts.reshape(-1, counts.shape[-1])
    mn, mx = np.broadcast_to(vmin, lead).reshape(-1), np.broadcast_to(vmax, lead).reshape(-1)
    lo_out = np.full((flat.shape[0], len(q)), np.nan)
    hi_out = lo_out.copy()
    for i, c in enumerate(flat):
        n = int(round(c.sum()))
        if n <= 0:
            continue
        for j, qq in enumerate(q):
            a, b = _rank_bounds(n, qq, level)
            lo_out[i, j] = _hist_value_at_rank(c, lo, hi, bins, mn[i], mx[i], a + 1)
            hi_out[i, j] = _hist_value_at_rank(c, lo, hi, bins, mn[i], mx[i], b + 1)
    return lo_out.reshape(*lead, len(q)), hi_out.reshape(*lead, len(q))
