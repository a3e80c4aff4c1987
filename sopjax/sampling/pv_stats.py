"""The effective distribution of a PV model's output: mean, std and quantiles, analytically.

A PV model's parent distribution (e.g. N(500, 50^2) kW) is bounded to
``[0, p_max]`` by the model's ``truncation``; what the Monte Carlo engine samples
(and what the restoration planner must plan for) is the *bounded* distribution.
:func:`pv_distribution` reports it so that a study can print what it assumes:

* ``truncation="clip"`` (curtailment): ``P = min(max(X, 0), p_max)``; mass above the
  rating becomes an atom at ``p_max`` (the inverter curtails the available power),
  every quantile below the rating equals the parent's.
* ``truncation="inverse_cdf"``: ``X`` conditioned on ``[0, p_max]``; the mass outside is
  redistributed over the interval, so the mean and every quantile move inward.
* :class:`~sopjax.sampling.pv.PVBeta`: ``p_max * Beta`` (no bound effect).

Quantiles come from the model's own inverse CDF (the sampler maps uniforms through it),
so they are the sampler's exact quantiles.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from sopjax.sampling.pv import PVBeta, PVForecastError, p_max_pu

__all__ = ["PVDistribution", "describe_pv", "pv_distribution", "pv_quantile"]


@dataclasses.dataclass(frozen=True)
class PVDistribution:
    """Moments and quantiles of the bounded PV output, per unit (arrays of shape (pv,), p.u.).

    Attributes:
        mean, std: mean and standard deviation of the sampled (bounded) output.
        parent_mean, parent_std: those of the parent distribution (before the bounds).
        mass_outside: probability of the parent outside ``[0, p_max]`` (cut or curtailed).
        quantiles: level -> quantile of the sampled output.
        truncation: the model's bound handling (``"clip"``, ``"inverse_cdf"``, ``"beta"``).
    """

    mean: np.ndarray
    std: np.ndarray
    parent_mean: np.ndarray
    parent_std: np.ndarray
    mass_outside: np.ndarray
    quantiles: dict[float, np.ndarray]
    truncation: str

    def describe(self, scale: float = 1.0, unit: str = "p.u.") -> list[str]:
        """One line per unit, values multiplied by ``scale`` (e.g. ``base_mva * 1e3`` for kW)."""
        return describe_pv(self.to_dict(scale), unit)

    def to_dict(self, scale: float = 1.0) -> dict:
        """JSON-friendly values multiplied by ``scale``."""
        s = lambda a: [float(x) * scale for x in np.asarray(a)]  # noqa: E731
        return {
            "truncation": self.truncation, "mean": s(self.mean), "std": s(self.std),
            "parent_mean": s(self.parent_mean), "parent_std": s(self.parent_std),
            "mass_outside": [float(x) for x in self.mass_outside],
            "quantiles": {f"{lv:.6g}": s(v) for lv, v in sorted(self.quantiles.items())},
        }


def describe_pv(d: dict, unit: str = "kW") -> list[str]:
    """One line per unit from :meth:`PVDistribution.to_dict` (optionally with the model's ``to_dict`` as ``model``)."""
    m = d.get("model")
    head = f"{m['kind']}, truncation {m.get('truncation', '-')}, limit {m['limit']}" if m else d["truncation"]
    lines = []
    for k, mean in enumerate(d["mean"]):
        qs = ", ".join(f"q{lv} {v[k]:.1f}" for lv, v in d["quantiles"].items())
        lines.append(f"{head}: parent mean {d['parent_mean'][k]:.1f} std {d['parent_std'][k]:.1f} {unit}, "
                     f"{100 * d['mass_outside'][k]:.1f} % outside [0, p_max]; sampled mean {mean:.1f} "
                     f"std {d['std'][k]:.1f} {unit}; {qs} {unit}")
    return lines


def pv_quantile(model, level: float, forecast_pu, s_rated_pu, pf) -> np.ndarray:
    """Quantile at ``level`` of the output the sampler draws (the model's inverse CDF), p.u., (pv,)."""
    f64 = lambda x: jnp.asarray(x, jnp.float64)  # noqa: E731  (sopjax enables x64)
    u = jnp.full(np.shape(forecast_pu), float(level), jnp.float64)
    return np.asarray(model.ppf(u, f64(forecast_pu), f64(s_rated_pu), f64(pf)), float)


def _clipped_normal(mu, sigma, hi):
    """Mean and std of ``min(max(N(mu, sigma^2), 0), hi)``."""
    a, b = (0.0 - mu) / sigma, (hi - mu) / sigma
    Pa, Pb, pa, pb = norm.cdf(a), norm.cdf(b), norm.pdf(a), norm.pdf(b)
    inside = Pb - Pa
    m1 = hi * (1 - Pb) + mu * inside + sigma * (pa - pb)
    m2 = hi**2 * (1 - Pb) + (mu**2 + sigma**2) * inside + 2 * mu * sigma * (pa - pb) + sigma**2 * (a * pa - b * pb)
    return m1, np.sqrt(np.maximum(m2 - m1**2, 0.0))


def _truncated_normal(mu, sigma, hi):
    """Mean and std of N(mu, sigma^2) conditioned on [0, hi]."""
    a, b = (0.0 - mu) / sigma, (hi - mu) / sigma
    Z = norm.cdf(b) - norm.cdf(a)
    pa, pb = norm.pdf(a), norm.pdf(b)
    mean = mu + sigma * (pa - pb) / Z
    var = sigma**2 * (1 + (a * pa - b * pb) / Z - ((pa - pb) / Z) ** 2)
    return mean, np.sqrt(np.maximum(var, 0.0))


def pv_distribution(model, forecast_pu, s_rated_pu, pf, levels=(0.0079, 0.5, 0.9921)) -> PVDistribution:
    """The distribution a PV model samples, for one forecast per unit.

    Args:
        model: :class:`~sopjax.sampling.pv.PVForecastError` or :class:`~sopjax.sampling.pv.PVBeta`.
        forecast_pu, s_rated_pu, pf: forecast, rating (p.u.) and power factor per unit, (pv,).
        levels: quantile levels to report, each in (0, 1).

    Returns:
        :class:`PVDistribution` (analytic moments; quantiles from the model's inverse CDF).
    """
    mu, s_rated, pf = (np.atleast_1d(np.asarray(x, float)) for x in (forecast_pu, s_rated_pu, pf))
    hi = np.asarray(p_max_pu(model.limit, s_rated, pf), float)
    quantiles = {float(lv): pv_quantile(model, lv, mu, s_rated, pf) for lv in levels}
    if isinstance(model, PVBeta):
        if model.shape_mode:
            a, b = model.alpha, model.beta
            m = np.full_like(mu, a / (a + b))
            s = np.full_like(mu, np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))))
        else:
            m, s = (np.asarray(v, float) for v in model.moments(mu, s_rated, pf))
        return PVDistribution(hi * m, hi * s, hi * m, hi * s, np.zeros_like(mu), quantiles, "beta")
    if not isinstance(model, PVForecastError):
        raise TypeError(f"pv_distribution needs PVForecastError or PVBeta, got {model!r}")
    sigma = np.asarray(model.std_pu(mu, s_rated, pf), float)
    pos = sigma > 0
    sg = np.where(pos, sigma, 1.0)
    fn = _clipped_normal if model.truncation == "clip" else _truncated_normal
    mean, std = fn(mu, sg, hi)
    outside = norm.cdf(-mu / sg) + norm.sf((hi - mu) / sg)
    return PVDistribution(
        mean=np.where(pos, mean, np.clip(mu, 0, hi)), std=np.where(pos, std, 0.0),
        parent_mean=mu, parent_std=sigma, mass_outside=np.where(pos, outside, 0.0),
        quantiles=quantiles, truncation=model.truncation,
    )
