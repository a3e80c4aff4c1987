"""Human- and machine-readable summaries of a Monte Carlo dataset."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["summary_table", "summary_dict"]


def value_or_none(x) -> float | None:
    """A statistic as a float, or None where it is undefined (NaN: e.g. every sample failed)."""
    x = float(x)
    return None if math.isnan(x) else x


def summary_dict(ds) -> dict:
    """The aggregates as JSON-able data: run attributes and, per strategy, every scalar statistic.

    Per strategy: all variables with only the ``strategy`` dimension, quantiles
    by level, and per-bus violation / voltage statistics keyed by bus id.
    """
    scalar = [v for v in ds.data_vars if ds[v].dims == ("strategy",)]
    quant = [v for v in ds.data_vars if ds[v].dims == ("strategy", "quantile")]
    levels = [float(q) for q in ds["quantile"].values]
    out = {
        "network": ds.attrs.get("network"),
        "n_samples": int(ds.attrs["n_samples"]),
        "confidence": float(ds.attrs["confidence"]),
        "ci_level": float(ds.attrs["ci_level"]),
        "quantile_method": ds.attrs.get("quantile_method"),
        "sampling": ds.attrs.get("sampling"),
        "strategies": {},
    }
    buses = [int(b) for b in ds["bus"].values]
    for s in ds["strategy"].values:
        sub = ds.sel(strategy=s)
        d = {}
        for v in scalar:
            val = sub[v].values
            d[v] = int(val) if np.issubdtype(val.dtype, np.integer) or val.dtype == bool else value_or_none(val)
        for v in quant:
            d[v] = {f"{q:g}": value_or_none(x) for q, x in zip(levels, sub[v].values)}
        d["p_bus_violation"] = {str(b): value_or_none(x) for b, x in zip(buses, sub["p_bus_violation"].values)}
        d["vm_mean"] = {str(b): value_or_none(x) for b, x in zip(buses, sub["vm_mean"].values)}
        out["strategies"][str(s)] = d
    return out


def summary_table(ds) -> str:
    """A fixed-width table, one row per strategy (percentages for ratios and probabilities)."""
    conf = float(ds.attrs["confidence"])
    lvl = float(ds.attrs["ci_level"])
    head = (
        f"{'strategy':<22} {'nominal':>8} {'mean':>8} {f'{lvl:.0%} CI':>15} {f'@{conf:.2%}':>9} "
        f"{'P(viol)':>8} {'Vmin q01':>8} {'loss kW':>8} {'SOP max':>8} {'failed':>6}"
    )
    lines = [
        f"{ds.attrs.get('network', '')}: {int(ds.attrs['n_samples'])} samples, fault opens "
        f"{ds.attrs.get('fault_open')}, outage load {float(ds['outage_load_kw_nominal'].values[0]):.1f} kW "
        f"at the forecast; recovery ratio in %",
        head,
        "-" * len(head),
    ]
    qi = int(np.argmin(np.abs(ds["quantile"].values - 0.01)))
    for s in ds["strategy"].values:
        sub = ds.sel(strategy=s)
        ci = f"[{100 * float(sub.recovery_ratio_ci_low):.1f}, {100 * float(sub.recovery_ratio_ci_high):.1f}]"
        sop = float(np.max(sub["sop_loading_max"].values)) if sub["sop_loading_max"].size else 0.0
        loss = float(sub.line_loss_kw_mean) + float(sub.sop_loss_kw_mean)
        lines.append(
            f"{str(s)[:22]:<22} {100 * float(sub.recovery_ratio_nominal):>8.2f} "
            f"{100 * float(sub.recovery_ratio_mean):>8.2f} {ci:>15} "
            f"{100 * float(sub.recovery_ratio_guaranteed):>9.2f} {100 * float(sub.p_any_violation):>7.1f}% "
            f"{float(sub.vmin_pu_quantile.values[qi]):>8.4f} {loss:>8.1f} {sop:>8.2f} {int(sub.n_failed):>6d}"
        )
    lines.append(
        f"nominal: at the forecast; @{conf:.2%}: recovery reached with that probability; P(viol): any voltage, "
        "branch or SOP limit violated; SOP max: largest VSC loading seen."
    )
    return "\n".join(lines)
