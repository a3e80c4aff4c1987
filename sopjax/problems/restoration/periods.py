"""The periods of the restoration model: the forecast, chance-constraint quantiles or sampled scenarios.

``RestorationSettings.uncertainty``: ``"forecast"`` plans for the PV forecast;
``"quantile"`` adds the chance-constrained quantiles as extra periods that share
every decision: PV at its ``1 - confidence`` quantile -- the quantile of the bounded
distribution the Monte Carlo scorer samples (:func:`pv_model`; ``mu - z sigma`` for
``truncation="clip"``, higher for ``"inverse_cdf"``, which moves the cut mass inward) -- with the loads at their aggregate upper
quantile ``1 + z s sqrt(sum p_i^2) / sum p_i`` (``z = Phi^-1(confidence)``, ``s``
the load error; the exact quantile of the total demand of independent loads, e.g.
of an SOP island), and, with ``quantile_sides="both"``, PV at its ``confidence`` quantile with
the loads at the lower quantile (over-voltage); ``"scenarios"`` adds ``K`` sampled
PV (and load) scenarios, drawn by the Monte Carlo engine's sampler
(:mod:`sopjax.sampling`), sharing switches, pickup, SOP modes and set-points.
Period 0 is always the forecast.
"""

from __future__ import annotations

import jax
import numpy as np
from scipy.stats import norm

from sopjax.network import Network
from sopjax.problems.restoration.settings import RestorationSettings
from sopjax.sampling import LoadNormal, PVForecastError, UncertaintyModel, pv_quantile

__all__ = ["forecast_pu", "plan_periods", "pv_model"]


def pv_model(settings: RestorationSettings):
    """The PV output model the plan assumes: ``settings.pv_model``, else the default normal error."""
    return settings.pv_model if settings.pv_model is not None else PVForecastError(sigma_frac=settings.pv_sigma_frac)


def forecast_pu(net: Network, settings: RestorationSettings) -> np.ndarray:
    """PV forecast per unit (p.u.), (pv,): the settings' forecast, else each unit's rating."""
    if settings.pv_forecast_pu is not None:
        return np.asarray(settings.pv_forecast_pu, float)
    return np.asarray(net.pv.s_rated_pu, float).copy()


def plan_periods(net: Network, settings: RestorationSettings) -> dict[str, np.ndarray | list[str]]:
    """Per-period loads and PV of the model: period 0 is the forecast.

    Returns:
        dict with ``p_load_pu``, ``q_load_pu`` (T, bus), ``pv_p_pu`` (T, pv) and ``labels`` (T,).
    """
    mu = forecast_pu(net, settings)
    rated = np.asarray(net.pv.s_rated_pu, float)
    p0 = np.asarray(net.p_load_pu, float)
    q0 = np.asarray(net.q_load_pu, float)
    pv = [mu]
    labels = ["forecast"]
    loads_p, loads_q = [p0], [q0]
    if settings.uncertainty == "quantile":
        z = float(norm.ppf(settings.confidence))
        pf = np.asarray(net.pv.pf, float)
        model = pv_model(settings)
        # aggregate load quantile: sum_i p_i (1 + s xi_i) <= sum_i p_i + z s sqrt(sum_i p_i^2), i.e. a
        # uniform factor 1 + delta on the loads (exact for the total, e.g. an SOP island's demand)
        pos = np.clip(p0, 0, None)
        delta = z * settings.load_sigma_frac * float(np.sqrt(np.sum(pos**2)) / max(np.sum(pos), 1e-12))
        pv.append(pv_quantile(model, 1 - settings.confidence, mu, rated, pf) if net.pv.count else mu)
        labels.append(f"low_pv_high_load_q{1 - settings.confidence:.4g}")
        loads_p.append(p0 * (1 + delta))
        loads_q.append(q0 * (1 + delta))
        if settings.quantile_sides == "both":
            pv.append(pv_quantile(model, settings.confidence, mu, rated, pf) if net.pv.count else mu)
            labels.append(f"high_pv_low_load_q{settings.confidence:.4g}")
            loads_p.append(p0 * max(1 - delta, 0.0))
            loads_q.append(q0 * max(1 - delta, 0.0))
    elif settings.uncertainty == "scenarios":
        model = UncertaintyModel(
            pv=pv_model(settings) if net.pv.count else None,
            load=LoadNormal(sigma_frac=settings.load_sigma_frac) if settings.load_sigma_frac > 0 else None,
            scheme="mc",
        )
        s = model.sample(net, mu, key=jax.random.key(int(settings.seed)), n=int(settings.scenarios))
        for k in range(int(settings.scenarios)):
            pv.append(np.asarray(s.p_pv_pu[k], float))
            loads_p.append(np.asarray(s.p_load_pu[k], float))
            loads_q.append(np.asarray(s.q_load_pu[k], float))
            labels.append(f"scenario_{k}")
    return {
        "p_load_pu": np.stack(loads_p),
        "q_load_pu": np.stack(loads_q),
        "pv_p_pu": np.stack(pv) if net.pv.count else np.zeros((len(labels), 0)),
        "labels": labels,
    }
