"""The dataset of a time-series Monte Carlo run: the one-period dataset with a ``time`` dimension.

Every variable of :func:`~sopjax.montecarlo.dataset.build_dataset` with a ``strategy``
dimension gets a ``time`` dimension after it (each (strategy, period) pair is reduced like a
strategy of the one-period engine). Added:

* coordinates ``time`` (period index), ``hour`` (clock time of the period's start),
  ``control`` and ``plan`` per strategy;
* horizon statistics per strategy (``strategy`` only): ``energy_recovery_*`` (restored /
  outage-area energy over the horizon), ``ens_kwh_*`` (energy not supplied),
  ``restored_kwh_*``, ``outage_energy_kwh_*``, ``loss_kwh_*`` (line + converter), with the same
  mean / std / sem / CI / min / max as the one-period statistics, ``energy_recovery_quantile``
  (+ CI) and ``energy_recovery_guaranteed`` from a 1e-4-bin histogram, ``p_any_violation_horizon``
  (Wilson CI), ``n_valid_horizon`` (samples converged in every period), ``*_nominal``;
* ``control_failed`` (strategy, time): samples whose controller failed (dispatch not
  converged; the fixed set-points were scored), and its fraction;
* the value of corrective control per controlled strategy with a ``fixed`` twin (dimension
  ``pair``): paired differences ``gain_energy_recovery_*``, ``gain_loss_kwh_*``,
  ``gain_ens_kwh_*`` (controlled - fixed, same samples), with mean, CI and min / max.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from sopjax.metrics import hist_quantile, hist_quantile_ci, normal_interval, wilson_interval
from sopjax.montecarlo.dataset import build_dataset

__all__ = ["build_timeseries_dataset"]


def _reshape(ds: xr.Dataset, names, n_t: int, hours) -> xr.Dataset:
    """(strategy x time rows) -> (strategy, time) on every variable with a ``strategy`` dimension."""
    n_s = len(names)
    data = {}
    for k, v in ds.data_vars.items():
        if v.dims and v.dims[0] == "strategy":
            vals = np.asarray(v.values).reshape((n_s, n_t) + v.shape[1:])
            data[k] = (("strategy", "time") + v.dims[1:], vals, v.attrs)
        else:
            data[k] = v
    coords = {k: c for k, c in ds.coords.items() if "strategy" not in c.dims}
    coords["strategy"] = ("strategy", np.asarray(names, dtype=object))
    coords["time"] = ("time", np.arange(n_t))
    coords["hour"] = ("time", np.asarray(hours, float), {"units": "h", "long_name": "start of the period"})
    return xr.Dataset(data, coords=coords, attrs=ds.attrs)


def build_timeseries_dataset(
    net,
    batch,
    ctx,
    state,
    nominal,
    nominal_hz,
    settings,
    ts,
    source,
    info,
    attrs,
    *,
    names,
    policies,
    bases,
    pairs,
    n_t,
):
    """The dataset of :func:`~sopjax.montecarlo.timeseries.run_timeseries` (see the module doc)."""
    flat = build_dataset(net, batch, ctx, state, nominal, settings, source, info, attrs)
    hours = ts.start_hour + ts.period_h * np.arange(n_t)
    ds = _reshape(flat, names, n_t, hours)
    kw = net.base_mva * 1e3
    lvl = settings.ci_level
    new = {}

    def put(name, dims, values, units, long_name, **a):
        new[name] = (dims, np.asarray(values), {"units": units, "long_name": long_name, **a})

    def stats(prefix, m, scale, units, long_name, dim="strategy"):
        put(
            f"{prefix}_mean",
            (dim,),
            np.where(m.count > 0, m.mean * scale, np.nan),
            units,
            f"mean {long_name}",
        )
        put(
            f"{prefix}_std",
            (dim,),
            np.where(m.count > 0, m.std * scale, np.nan),
            units,
            f"std of {long_name}",
        )
        put(
            f"{prefix}_sem",
            (dim,),
            m.sem * scale,
            units,
            f"Monte Carlo standard error of the mean {long_name}",
        )
        lo, hi = normal_interval(m.mean, m.sem, lvl)
        put(
            f"{prefix}_ci_low", (dim,), lo * scale, units, f"{lvl:.0%} confidence interval of the mean, lower"
        )
        put(
            f"{prefix}_ci_high",
            (dim,),
            hi * scale,
            units,
            f"{lvl:.0%} confidence interval of the mean, upper",
        )
        put(
            f"{prefix}_min",
            (dim,),
            np.where(m.count > 0, m.min * scale, np.nan),
            units,
            f"minimum {long_name}",
        )
        put(
            f"{prefix}_max",
            (dim,),
            np.where(m.count > 0, m.max * scale, np.nan),
            units,
            f"maximum {long_name}",
        )

    mo = state.moments
    kwh = "kWh"
    stats(
        "energy_recovery", mo["hz_energy_ratio"], 1.0, "1", "restored / outage-area energy over the horizon"
    )
    stats("ens_kwh", mo["hz_ens_pu_h"], kw, kwh, "energy not supplied in the outage area over the horizon")
    stats("restored_kwh", mo["hz_restored_pu_h"], kw, kwh, "restored outage-area energy over the horizon")
    stats("outage_energy_kwh", mo["hz_outage_pu_h"], kw, kwh, "outage-area energy demand over the horizon")
    stats("loss_kwh", mo["hz_loss_pu_h"], kw, kwh, "line + converter energy losses over the horizon")
    mv = mo["hz_any_violation"]
    put("p_any_violation_horizon", ("strategy",), mv.mean, "1", "probability: any violation in some period")
    lo, hi = wilson_interval(mv.mean, mv.count, lvl)
    put("p_any_violation_horizon_ci_low", ("strategy",), lo, "1", f"{lvl:.0%} Wilson interval, lower")
    put("p_any_violation_horizon_ci_high", ("strategy",), hi, "1", f"{lvl:.0%} Wilson interval, upper")
    put(
        "n_valid_horizon",
        ("strategy",),
        mo["hz_energy_ratio"].count.astype(np.int64),
        "1",
        "samples whose power flow converged in every period",
    )
    spec = settings.options.ratio_hist
    h, m = state.hist["hz_energy_ratio"], mo["hz_energy_ratio"]
    qlv = np.asarray(settings.quantiles, float)
    qa = {"method": "histogram", "error_bound": spec.width}
    put(
        "energy_recovery_quantile",
        ("strategy", "quantile"),
        hist_quantile(h, spec.lo, spec.hi, m.min, m.max, qlv),
        "1",
        "quantiles of the horizon energy recovery",
        **qa,
    )
    qlo, qhi = hist_quantile_ci(h, spec.lo, spec.hi, m.min, m.max, qlv, lvl)
    put("energy_recovery_quantile_ci_low", ("strategy", "quantile"), qlo, "1", "order-statistic CI, lower")
    put("energy_recovery_quantile_ci_high", ("strategy", "quantile"), qhi, "1", "order-statistic CI, upper")
    cq = [1.0 - settings.confidence]
    put(
        "energy_recovery_guaranteed",
        ("strategy",),
        hist_quantile(h, spec.lo, spec.hi, m.min, m.max, cq)[:, 0],
        "1",
        f"horizon energy recovery reached with probability {settings.confidence}",
        **qa,
    )
    glo, ghi = (a[:, 0] for a in hist_quantile_ci(h, spec.lo, spec.hi, m.min, m.max, cq, lvl))
    put("energy_recovery_guaranteed_ci_low", ("strategy",), glo, "1", "order-statistic CI, lower")
    put("energy_recovery_guaranteed_ci_high", ("strategy",), ghi, "1", "order-statistic CI, upper")
    for key, name, scale, units in (
        ("hz_energy_ratio", "energy_recovery", 1.0, "1"),
        ("hz_ens_pu_h", "ens_kwh", kw, kwh),
        ("hz_loss_pu_h", "loss_kwh", kw, kwh),
    ):
        put(
            f"{name}_nominal",
            ("strategy",),
            np.asarray(nominal_hz[key]) * scale,
            units,
            f"{name} at the forecast",
        )
    cf = mo["control_failed"]
    put(
        "control_failed",
        ("strategy", "time"),
        np.rint(cf.mean * cf.count).reshape(len(names), n_t).astype(np.int64),
        "1",
        "samples whose corrective controller failed (dispatch not converged; fixed set-points scored)",
    )
    put(
        "control_failed_fraction",
        ("strategy", "time"),
        (cf.mean).reshape(len(names), n_t),
        "1",
        "fraction of converged samples whose corrective controller failed",
    )
    coords = {
        "control": ("strategy", np.asarray(policies, dtype=object)),
        "plan": ("strategy", np.asarray(bases, dtype=object)),
    }
    if pairs:
        coords["pair"] = ("pair", np.asarray([names[a] for a, _ in pairs], dtype=object))
        coords["pair_fixed"] = ("pair", np.asarray([names[b] for _, b in pairs], dtype=object))
        stats(
            "gain_energy_recovery",
            mo["gain_energy_ratio"],
            1.0,
            "1",
            "paired gain of energy recovery over fixed set-points",
            dim="pair",
        )
        stats(
            "gain_loss_kwh",
            mo["gain_loss_pu_h"],
            kw,
            kwh,
            "paired change of energy losses vs fixed",
            dim="pair",
        )
        stats(
            "gain_ens_kwh",
            mo["gain_ens_pu_h"],
            kw,
            kwh,
            "paired change of energy not supplied vs fixed",
            dim="pair",
        )
    ds = ds.assign_coords(coords).assign(new)
    ds.attrs.update(
        period_h=float(ts.period_h),
        n_periods=int(n_t),
        start_hour=float(ts.start_hour),
        controls=" ".join(policies),
        title="sopjax Monte Carlo over time of restoration strategies",
    )
    return ds
