"""Assemble the Monte Carlo results into an :class:`xarray.Dataset`.

Dimensions: ``strategy`` (names), ``bus`` (case bus ids), ``branch`` (1-based
case branch numbers, with ``branch_from`` / ``branch_to`` bus ids), ``sop``
(with ``sop_bus_i`` / ``sop_bus_j``), ``vsc`` (``i``, ``j``), ``quantile``
(probability levels), histogram bins, and ``sample`` only when per-sample
arrays were requested. Powers are in kW, voltages in p.u.; every variable
carries ``units`` and ``long_name``. Statistics exclude failed (non-converged)
samples, counted in ``n_failed``; a statistic is NaN only where it has no
observation at all (e.g. the voltage of a bus that is never energized; see
the ``*_count`` variables).
"""

from __future__ import annotations

import datetime as _dt
import json
from importlib import metadata

import numpy as np
import xarray as xr

from sopjax.kernels.scoring import EXACT_FIELDS, MOMENT_FIELDS
from sopjax.metrics import (
    Moments,
    exact_quantile,
    exact_quantile_ci,
    hist_quantile,
    hist_quantile_ci,
    normal_interval,
    wilson_interval,
)
from sopjax.strategies.strategy import MODE_NAMES

__all__ = ["build_dataset", "FIELD_META"]

# kernel field -> (dataset name, scale kind, units, long name, kind)
#   scale kind: "kw" multiplies per-unit power by base_mva * 1e3; kind: value | prob
FIELD_META = {
    "recovery_ratio": ("recovery_ratio", None, "1", "restored / outage-area active load", "value"),
    "restored_pu": ("restored_kw", "kw", "kW", "restored outage-area active load", "value"),
    "outage_pu": ("outage_load_kw", "kw", "kW", "active load of the outage area (sampled)", "value"),
    "served_pu": ("served_kw", "kw", "kW", "active load served network-wide", "value"),
    "line_loss_pu": ("line_loss_kw", "kw", "kW", "branch active losses", "value"),
    "sop_loss_pu": ("sop_loss_kw", "kw", "kW", "SOP converter losses", "value"),
    "vmin_pu": ("vmin_pu", None, "pu", "lowest energized bus voltage", "value"),
    "vmax_pu": ("vmax_pu", None, "pu", "highest energized bus voltage", "value"),
    "vcpi_max": ("vcpi_max", None, "1", "largest line VCPI (Moghavvemi-Faruque)", "value"),
    "voltage_violation": ("voltage_violation", None, "1", "any energized bus outside the voltage limits", "prob"),
    "branch_violation": ("branch_violation", None, "1", "any branch above its rating", "prob"),
    "sop_violation": ("sop_violation", None, "1", "any SOP VSC above its capacity", "prob"),
    "island_lost": ("island_lost", None, "1", "a Vf island shed for SOP overload", "prob"),
    "any_violation": ("any_violation", None, "1", "any voltage, branch or SOP violation", "prob"),
    "iterations": ("iterations", None, "1", "power-flow sweeps", "value"),
    "vm_pu": ("vm", None, "pu", "bus voltage magnitude (when energized)", "value"),
    "served": ("bus_restored", None, "1", "fraction of the bus load restored", "prob"),
    "v_violation": ("bus_violation", None, "1", "bus energized and outside the voltage limits", "prob"),
    "branch_loading": ("branch_loading", None, "1", "branch apparent power / rating (when energized)", "value"),
    "branch_overload": ("branch_overload", None, "1", "branch above its rating", "prob"),
    "vcpi": ("vcpi", None, "1", "line VCPI (when energized)", "value"),
    "sop_loading": ("sop_loading", None, "1", "VSC apparent power / capacity", "value"),
    "sop_overload": ("sop_overload", None, "1", "VSC above its capacity", "prob"),
    "sop_utilization": ("sop_utilization", None, "1", "(|S_i| + |S_j|) / (S_i,rated + S_j,rated)", "value"),
}

def _dims_of(field: str) -> tuple[str, ...]:
    if field in ("vm_pu", "served", "v_violation"):
        return ("bus",)
    if field in ("branch_loading", "branch_overload", "vcpi"):
        return ("branch",)
    if field in ("sop_loading", "sop_overload"):
        return ("sop", "vsc")
    if field == "sop_utilization":
        return ("sop",)
    return ()


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"


def _attr(v):
    """netCDF-safe attribute value."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, str, np.integer, np.floating)):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float, np.integer, np.floating)) for x in v) and v:
        return np.asarray(v)
    return json.dumps(v, default=str, sort_keys=True)


def _nan_where_empty(x, count):
    return np.where(count > 0, x, np.nan)


def build_dataset(net, batch, ctx, state, nominal, settings, source, info: dict, extra_attrs: dict) -> xr.Dataset:
    """The dataset of one run (called by :func:`~sopjax.montecarlo.runner.run_montecarlo`)."""
    kw = net.base_mva * 1e3
    strategies = list(batch.names)
    q_levels = np.asarray(settings.quantiles, float)
    lvl = settings.ci_level
    coords = {
        "strategy": ("strategy", np.asarray(strategies, dtype=object)),
        "bus": ("bus", np.asarray(net.bus_ids)),
        "branch": ("branch", np.asarray(net.branch_numbers)),
        "branch_from": ("branch", np.asarray([net.bus_ids[int(b)] for b in np.asarray(net.f_bus)])),
        "branch_to": ("branch", np.asarray([net.bus_ids[int(b)] for b in np.asarray(net.t_bus)])),
        "sop": ("sop", np.arange(net.sop.count)),
        "sop_bus_i": ("sop", np.asarray([net.bus_ids[int(b)] for b in np.asarray(net.sop.bus_i)], dtype=int)),
        "sop_bus_j": ("sop", np.asarray([net.bus_ids[int(b)] for b in np.asarray(net.sop.bus_j)], dtype=int)),
        "vsc": ("vsc", np.asarray(["i", "j"], dtype=object)),
        "quantile": ("quantile", q_levels),
    }
    data: dict[str, tuple] = {}

    def put(name, dims, values, units, long_name, **attrs):
        data[name] = (("strategy", *dims), np.asarray(values), {"units": units, "long_name": long_name, **attrs})

    n_valid = state.n_valid
    put("n_valid", (), n_valid, "1", "samples scored (converged)")
    put("n_failed", (), state.n_failed, "1", "samples whose power flow did not converge (excluded)")

    for field, (name, scale, units, long_name, kind) in FIELD_META.items():
        m: Moments = state.moments[field]
        dims = _dims_of(field)
        f = kw if scale == "kw" else 1.0
        cnt = m.count
        if kind == "prob":
            put(f"p_{name}", dims, m.mean, "1", f"probability: {long_name}")
            if not dims:
                lo, hi = wilson_interval(m.mean, cnt, lvl)
                put(f"p_{name}_ci_low", dims, lo, "1", f"{lvl:.0%} Wilson interval, lower: {long_name}")
                put(f"p_{name}_ci_high", dims, hi, "1", f"{lvl:.0%} Wilson interval, upper: {long_name}")
            continue
        put(f"{name}_mean", dims, _nan_where_empty(m.mean * f, cnt), units, f"mean {long_name}")
        put(f"{name}_std", dims, _nan_where_empty(m.std * f, cnt), units, f"standard deviation of {long_name}")
        put(f"{name}_min", dims, _nan_where_empty(m.min * f, cnt), units, f"minimum {long_name}")
        put(f"{name}_max", dims, _nan_where_empty(m.max * f, cnt), units, f"maximum {long_name}")
        if MOMENT_FIELDS[field] is not None:
            put(f"{name}_count", dims, cnt, "1", f"samples in which the statistic of {long_name} is defined")
        if not dims:
            put(f"{name}_sem", dims, m.sem * f, units, f"Monte Carlo standard error of the mean {long_name}")
            lo, hi = normal_interval(m.mean, m.sem, lvl)
            put(f"{name}_ci_low", dims, lo * f, units, f"{lvl:.0%} confidence interval of the mean, lower")
            put(f"{name}_ci_high", dims, hi * f, units, f"{lvl:.0%} confidence interval of the mean, upper")

    cnt_v = state.moments["vm_pu"].count
    put("p_bus_energized", ("bus",), cnt_v / np.maximum(n_valid[:, None], 1), "1", "probability: bus energized")

    # quantiles: exact from stored samples, else from histograms
    specs = {"ratio_hist": settings.options.ratio_hist, "voltage_hist": settings.options.voltage_hist}
    conf_q = [1.0 - settings.confidence]
    for field, spec_name in EXACT_FIELDS.items():
        name, _, units, long_name, _ = FIELD_META[field]
        spec = specs[spec_name]
        m = state.moments[field]
        if state.exact is not None:
            vals, valid = state.exact[field], state.exact_valid
            qv = exact_quantile(vals, valid, q_levels)
            lo, hi = exact_quantile_ci(vals, valid, q_levels, lvl)
            gq = exact_quantile(vals, valid, conf_q)[:, 0]
            glo, ghi = (a[:, 0] for a in exact_quantile_ci(vals, valid, conf_q, lvl))
            method, bound = "exact (inverse empirical CDF)", 0.0
        else:
            h = state.hist[field]
            qv = hist_quantile(h, spec.lo, spec.hi, m.min, m.max, q_levels)
            lo, hi = hist_quantile_ci(h, spec.lo, spec.hi, m.min, m.max, q_levels, lvl)
            gq = hist_quantile(h, spec.lo, spec.hi, m.min, m.max, conf_q)[:, 0]
            glo, ghi = (a[:, 0] for a in hist_quantile_ci(h, spec.lo, spec.hi, m.min, m.max, conf_q, lvl))
            method, bound = "histogram", spec.width
        qa = {"method": method, "error_bound": bound}
        put(f"{name}_quantile", ("quantile",), qv, units, f"quantiles of {long_name}", **qa)
        put(f"{name}_quantile_ci_low", ("quantile",), lo, units, f"{lvl:.0%} order-statistic CI of the quantile, lower")
        put(f"{name}_quantile_ci_high", ("quantile",), hi, units, f"{lvl:.0%} order-statistic CI of the quantile, upper")
        if field == "recovery_ratio":
            put("recovery_ratio_guaranteed", (), gq, "1",
                f"recovery ratio reached with probability {settings.confidence} (the {conf_q[0]:.4g}-quantile)", **qa)
            put("recovery_ratio_guaranteed_ci_low", (), glo, "1", "order-statistic CI of the guaranteed ratio, lower")
            put("recovery_ratio_guaranteed_ci_high", (), ghi, "1", "order-statistic CI of the guaranteed ratio, upper")

    vspec = settings.options.voltage_hist
    mv = state.moments["vm_pu"]
    put("vm_quantile", ("bus", "quantile"),
        hist_quantile(state.hist["vm_pu"], vspec.lo, vspec.hi, mv.min, mv.max, q_levels), "pu",
        "quantiles of the bus voltage (when energized)", method="histogram", error_bound=vspec.width)
    rspec = settings.options.ratio_hist
    put("recovery_ratio_hist", ("ratio_bin",), state.hist["recovery_ratio"], "1",
        "recovery-ratio histogram: [below lo, == lo, bins, == hi, above hi]", lo=rspec.lo, hi=rspec.hi, bins=rspec.bins)
    put("vm_hist", ("bus", "voltage_bin"), state.hist["vm_pu"], "1",
        "bus-voltage histogram: [below lo, == lo, bins, == hi, above hi]", lo=vspec.lo, hi=vspec.hi, bins=vspec.bins)

    # at the nominal forecast (no noise)
    put("nominal_converged", (), nominal.converged, "1", "power flow converged at the forecast")
    for field in ("recovery_ratio", "restored_pu", "outage_pu", "line_loss_pu", "sop_loss_pu", "vmin_pu", "vmax_pu",
                  "vcpi_max"):
        name, scale, units, long_name, _ = FIELD_META[field]
        f = kw if scale == "kw" else 1.0
        put(f"{name}_nominal", (), getattr(nominal, field) * f, units, f"{long_name} at the forecast")
    for field in ("voltage_violation", "any_violation", "sop_violation", "branch_violation"):
        put(f"{field}_nominal", (), getattr(nominal, field), "1", f"{FIELD_META[field][3]} at the forecast")
    put("vm_nominal", ("bus",), nominal.vm_pu, "pu", "bus voltage at the forecast (0 = de-energized)")
    put("bus_violation_nominal", ("bus",), nominal.v_violation, "1", "bus outside limits at the forecast")
    put("bus_restored_nominal", ("bus",), nominal.served, "1", "fraction of the bus load restored at the forecast")
    put("vcpi_nominal", ("branch",), nominal.vcpi, "1", "line VCPI at the forecast")
    put("sop_loading_nominal", ("sop", "vsc"), nominal.sop_loading, "1", "VSC loading at the forecast")

    # the strategies themselves
    put("pickup", ("bus",), np.stack([s.pickup for s in batch.strategies]), "1", "picked-up fraction of the bus load")
    put("branch_closed", ("branch",), np.stack([s.status for s in batch.strategies]).astype(np.int8), "1",
        "branch status (1 = closed)")
    put("bus_energized_topology", ("bus",), np.stack([t.energized for t in batch.topologies]).astype(np.int8), "1",
        "bus reached by a source through closed branches")
    put("sop_mode", ("sop",), np.stack([s.sop_mode for s in batch.strategies]).astype(np.int8), "1",
        "SOP mode code", flag_values=np.arange(5, dtype=np.int8),
        flag_meanings=" ".join(MODE_NAMES[k] for k in range(5)))
    put("sop_u_set", ("sop",), np.stack([s.u_set_pu for s in batch.strategies]), "pu", "Vf voltage set-point")
    put("sop_p_set_kw", ("sop",), np.stack([s.p_set_pu for s in batch.strategies]) * kw, "kW",
        "active power set-point of the PQ-mode VSC (injection)")

    if state.samples is not None:
        for k, arr in state.samples.items():
            name = FIELD_META.get(k, (k, None, "1", k, ""))[0] if k != "converged" else "converged"
            f = kw if (k in FIELD_META and FIELD_META[k][1] == "kw") else 1.0
            dims = ("sample",) + (("bus",) if arr.ndim == 3 else ())
            data[f"{name}_sample"] = (("strategy", *dims), arr * f if f != 1.0 else arr,
                                      {"units": FIELD_META.get(k, ("", None, "1"))[2], "long_name": f"per-sample {k}"})
        coords["sample"] = ("sample", np.arange(state.n_samples))

    outage_ids = [net.bus_ids[b] for b in np.flatnonzero(np.asarray(ctx.outage))]
    attrs = {
        "title": "sopjax Monte Carlo scoring of restoration strategies",
        "network": net.name,
        "base_mva": net.base_mva,
        "n_samples": int(state.done),
        "fault_open": list(settings.fault_open) or "none",
        "outage_buses": outage_ids or "none",
        "v_min_pu": settings.v_min_pu,
        "v_max_pu": settings.v_max_pu,
        "confidence": settings.confidence,
        "ci_level": settings.ci_level,
        "power_flow": settings.options.method,
        "tol": settings.options.tol,
        "max_iter": settings.options.max_iter,
        "island_overload": settings.island_overload,
        "dtype": settings.dtype,
        "ratio_hist_bin_width": rspec.width,
        "voltage_hist_bin_width": vspec.width,
        "sampling": source.describe(),
        "strategies": [s.describe(net) | {"info": dict(s.info)} for s in batch.strategies],
        "sopjax_version": _version("sopjax"),
        "jax_version": _version("jax"),
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **info,
        **extra_attrs,
    }
    ds = xr.Dataset({k: v for k, v in data.items()}, coords=coords,
                    attrs={k: _attr(v) for k, v in attrs.items()})
    return ds
