"""Figure of a time-series Monte Carlo dataset: the recovery band over time, one panel per plan.

:func:`plot_recovery_over_time` draws, per strategy, the band of the recovery ratio between
two quantiles over the samples in each period, its mean and its value at the forecast;
strategies that share a plan (the same strategy under several control policies) share a
panel, so fixed and optimal control appear side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sopjax.montecarlo.plots import _nearest, _pyplot

__all__ = ["plot_recovery_over_time", "summary_table_timeseries"]


def plot_recovery_over_time(ds, path: str | Path, *, band=(0.05, 0.95)) -> Path:
    """Recovery ratio over time (quantile band, mean, forecast) per strategy, one panel per plan."""
    plt = _pyplot()
    plans = list(dict.fromkeys(str(p) for p in ds["plan"].values))
    n = len(plans)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    hour = np.asarray(ds["hour"].values, float)
    lo_i, hi_i = _nearest(ds["quantile"].values, band[0]), _nearest(ds["quantile"].values, band[1])
    colors = {"fixed": "tab:gray", "local": "tab:orange", "optimal": "tab:blue"}
    for ax, plan in zip(axes.ravel(), plans):
        for s in ds["strategy"].values:
            sub = ds.sel(strategy=s)
            if str(sub["plan"].values) != plan:
                continue
            c = str(sub["control"].values)
            col = colors.get(c, None)
            q = 100 * np.asarray(sub["recovery_ratio_quantile"].values)
            ax.fill_between(hour, q[:, lo_i], q[:, hi_i], step="post", alpha=0.25, color=col,
                            label=f"{c}: {band[0]:.0%}-{band[1]:.0%} band")
            ax.step(hour, 100 * np.asarray(sub["recovery_ratio_mean"].values), where="post", color=col, lw=1.6,
                    label=f"{c}: mean")
            ax.step(hour, 100 * np.asarray(sub["recovery_ratio_nominal"].values), where="post", color=col, lw=0.9,
                    ls="--", label=f"{c}: at the forecast")
        ax.set_title(plan, fontsize=10)
        ax.set_xlabel("hour")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("recovery ratio (%)")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{ds.attrs.get('network', '')}: load recovery over time, "
                 f"{int(ds.attrs['n_samples'])} samples per period", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary_table_timeseries(ds) -> str:
    """Horizon table per strategy, then the value of corrective control per plan (controlled - fixed)."""
    conf = float(ds.attrs["confidence"])
    lvl = float(ds.attrs["ci_level"])
    head = (f"{'strategy':<34} {'nominal':>8} {'mean':>8} {f'{lvl:.0%} CI':>15} {f'@{conf:.2%}':>9} "
            f"{'ENS kWh':>9} {'loss kWh':>9} {'P(viol)':>8} {'ctl fail':>8} {'failed':>6}")
    lines = [
        f"{ds.attrs.get('network', '')}: {int(ds.attrs['n_samples'])} samples x {int(ds.attrs['n_periods'])} periods "
        f"of {float(ds.attrs['period_h']):g} h, fault opens {ds.attrs.get('fault_open')}; energy recovery over the "
        "horizon in %",
        head, "-" * len(head),
    ]
    for s in ds["strategy"].values:
        sub = ds.sel(strategy=s)
        ci = f"[{100 * float(sub.energy_recovery_ci_low):.1f}, {100 * float(sub.energy_recovery_ci_high):.1f}]"
        failed = int(np.max(sub["n_failed"].values))
        lines.append(
            f"{str(s)[:34]:<34} {100 * float(sub.energy_recovery_nominal):>8.2f} {100 * float(sub.energy_recovery_mean):>8.2f} "
            f"{ci:>15} {100 * float(sub.energy_recovery_guaranteed):>9.2f} {float(sub.ens_kwh_mean):>9.0f} "
            f"{float(sub.loss_kwh_mean):>9.0f} {100 * float(sub.p_any_violation_horizon):>7.1f}% "
            f"{int(np.sum(sub.control_failed.values)):>8d} {failed:>6d}")
    lines.append(f"nominal: at the forecast; @{conf:.2%}: energy recovery reached with that probability; ENS: energy "
                 "not supplied; P(viol): a violation in some period; ctl fail: sample-periods whose controller failed "
                 "(fixed set-points kept); failed: largest count of non-converged samples in a period.")
    if "pair" in ds.dims:
        lines += ["", "value of corrective control (paired, same samples; controlled - fixed):",
                  f"{'strategy':<34} {'d recovery pp':>14} {f'{lvl:.0%} CI':>17} {'d loss kWh':>11} {f'{lvl:.0%} CI':>17} "
                  f"{'d ENS kWh':>10}"]
        for p in ds["pair"].values:
            sub = ds.sel(pair=p)
            rci = f"[{100 * float(sub.gain_energy_recovery_ci_low):.2f}, {100 * float(sub.gain_energy_recovery_ci_high):.2f}]"
            lci = f"[{float(sub.gain_loss_kwh_ci_low):.1f}, {float(sub.gain_loss_kwh_ci_high):.1f}]"
            lines.append(f"{str(p)[:34]:<34} {100 * float(sub.gain_energy_recovery_mean):>14.2f} {rci:>17} "
                         f"{float(sub.gain_loss_kwh_mean):>11.1f} {lci:>17} {float(sub.gain_ens_kwh_mean):>10.1f}")
    return "\n".join(lines)
