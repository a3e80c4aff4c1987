"""Calibration of a surrogate's voltage-violation predictions against the exact kernel (numpy, pure).

A power-flow surrogate predicts a voltage ``v_hat``; the exact value is ``v = v_hat + e``
with an error ``e`` the surrogate does not know. The probability that a bus violates the
compliance band ``[v_min, v_max]`` (the Monte Carlo engine's defaults 0.95 / 1.05 p.u.,
:class:`sopjax.montecarlo.MonteCarloSettings`) is estimated from the **empirical error
distribution on a held-out calibration set** (the validation split: ``e = exact -
predicted`` at its energized non-slack buses)::

    p(violation) = P(v_hat + e < v_min) + P(v_hat + e > v_max)
                 = F(v_min - v_hat) + 1 - F(v_max - v_hat)        (F: empirical CDF of e)

(split conformal style: no distributional assumption; it assumes the error does not
depend on the voltage level or the bus and that the evaluated samples' errors are
exchangeable with the calibration set's, which the out-of-distribution splits test).

:func:`calibration_report` compares these probabilities with the exact outcomes per
(sample, bus) event: a reliability table (bins of predicted probability vs observed
frequency), the Brier score, the expected calibration error (ECE: bin-count weighted
mean of ``|observed - mean predicted|``), and confusion counts at a decision threshold,
per bus and per sample (a sample is flagged when any bus's probability reaches the
threshold, and violates when any bus does). False negatives, violations the surrogate
misses, are the count that matters for a screening use.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "V_MAX_PU",
    "V_MIN_PU",
    "brier_score",
    "calibration_report",
    "confusion_counts",
    "expected_calibration_error",
    "reliability_table",
    "violation_probability",
]

#: the compliance band of the Monte Carlo engine's scoring (MonteCarloSettings defaults), p.u.
V_MIN_PU, V_MAX_PU = 0.95, 1.05


def violation_probability(v_pred, errors, v_min: float = V_MIN_PU, v_max: float = V_MAX_PU) -> np.ndarray:
    """Probability that ``v_pred + e`` leaves ``[v_min, v_max]``, ``e`` drawn from ``errors``.

    Args:
        v_pred: predicted voltage magnitudes (p.u.), any shape.
        errors: calibration errors ``exact - predicted`` (p.u.), 1-D, at least one, finite.
        v_min, v_max: the band (p.u.), ``v_min < v_max``.

    Returns:
        Probabilities in [0, 1], the shape of ``v_pred``. A strict ``<`` / ``>`` on both
        sides (a voltage equal to a limit complies).

    Raises:
        ValueError: empty or non-finite errors, or ``v_min >= v_max``.
    """
    e = np.sort(np.asarray(errors, float).ravel())
    if e.size == 0 or not np.all(np.isfinite(e)):
        raise ValueError("errors must hold at least one finite calibration error")
    if not v_min < v_max:
        raise ValueError(f"v_min = {v_min} must be below v_max = {v_max}")
    v = np.asarray(v_pred, float)
    low = np.searchsorted(e, v_min - v, side="left") / e.size  # #{e < v_min - v}
    high = 1.0 - np.searchsorted(e, v_max - v, side="right") / e.size  # #{e > v_max - v}
    return low + high


def _check(prob, outcome):
    p, o = np.asarray(prob, float).ravel(), np.asarray(outcome, bool).ravel()
    if p.shape != o.shape:
        raise ValueError(f"prob and outcome differ in size: {p.size} and {o.size}")
    if p.size and (np.any(p < 0) or np.any(p > 1) or not np.all(np.isfinite(p))):
        raise ValueError("probabilities must lie in [0, 1]")
    return p, o


def reliability_table(prob, outcome, bins: int = 10) -> dict[str, np.ndarray]:
    """Events per bin of predicted probability and how often they happened.

    Bins are ``[k/bins, (k+1)/bins)``, the last one closed at 1.

    Returns:
        ``lo, hi`` (bin edges), ``count``, ``mean_prob`` (mean predicted probability),
        ``observed`` (share of events that happened); NaN in empty bins. (bins,) each.
    """
    p, o = _check(prob, outcome)
    edges = np.linspace(0.0, 1.0, bins + 1)
    k = np.clip(np.floor(p * bins).astype(int), 0, bins - 1)
    count = np.bincount(k, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(k, weights=p, minlength=bins) / count
        observed = np.bincount(k, weights=o.astype(float), minlength=bins) / count
    return {"lo": edges[:-1], "hi": edges[1:], "count": count, "mean_prob": mean_prob, "observed": observed}


def brier_score(prob, outcome) -> float:
    """Mean of ``(p - outcome)^2`` (0 is perfect; always predicting the base rate ``r`` gives ``r (1 - r)``)."""
    p, o = _check(prob, outcome)
    return float(np.mean((p - o) ** 2))


def expected_calibration_error(prob, outcome, bins: int = 10) -> float:
    """Bin-count weighted mean of ``|observed - mean predicted|`` over the bins of :func:`reliability_table`."""
    t = reliability_table(prob, outcome, bins)
    m = t["count"] > 0
    return float(np.sum(t["count"][m] * np.abs(t["observed"][m] - t["mean_prob"][m])) / np.sum(t["count"]))


def confusion_counts(prob, outcome, threshold: float = 0.5) -> dict[str, int]:
    """``tp, fp, fn, tn`` of the decision ``p >= threshold`` against the outcomes."""
    p, o = _check(prob, outcome)
    flag = p >= threshold
    return {
        "tp": int(np.sum(flag & o)),
        "fp": int(np.sum(flag & ~o)),
        "fn": int(np.sum(~flag & o)),
        "tn": int(np.sum(~flag & ~o)),
    }


def calibration_report(
    v_pred,
    v_exact,
    mask,
    errors,
    *,
    v_min: float = V_MIN_PU,
    v_max: float = V_MAX_PU,
    bins: int = 10,
    threshold: float = 0.5,
) -> dict:
    """Violation calibration of predicted voltages against exact ones.

    Args:
        v_pred, v_exact: voltage magnitudes (p.u.), (sample, bus).
        mask: the buses that count (energized, non-slack), (sample, bus), bool.
        errors: calibration errors ``exact - predicted`` from another set (p.u.), 1-D.
        v_min, v_max: compliance band (p.u.); bins, threshold: as in the functions above.

    Returns:
        ``events`` (counted (sample, bus) pairs), ``violations`` (exact), ``base_rate``,
        ``brier``, ``ece``, ``table`` (:func:`reliability_table`), ``bus`` (confusion per
        event), ``sample`` (confusion per sample: flagged if any bus is flagged, violating
        if any bus violates), and the deterministic ``point`` confusion (``v_pred``
        outside the band, no error model) per event, for comparison.
    """
    vp, vx = np.asarray(v_pred, float), np.asarray(v_exact, float)
    m = np.asarray(mask, bool)
    if not vp.shape == vx.shape == m.shape or vp.ndim != 2:
        raise ValueError(f"v_pred, v_exact and mask must be (sample, bus) alike, got {vp.shape}, {vx.shape}, {m.shape}")
    prob = np.where(m, violation_probability(vp, errors, v_min, v_max), 0.0)
    viol = m & ((vx < v_min) | (vx > v_max))
    point = m & ((vp < v_min) | (vp > v_max))
    p, o = prob[m], viol[m]
    return {
        "events": int(m.sum()),
        "violations": int(o.sum()),
        "base_rate": float(o.mean()) if o.size else float("nan"),
        "brier": brier_score(p, o),
        "ece": expected_calibration_error(p, o, bins),
        "table": reliability_table(p, o, bins),
        "bus": confusion_counts(p, o, threshold),
        "sample": confusion_counts(np.max(prob, axis=1), np.any(viol, axis=1), threshold),
        "point": confusion_counts(point[m].astype(float), o, 0.5),
        "v_min": v_min,
        "v_max": v_max,
        "threshold": threshold,
    }
