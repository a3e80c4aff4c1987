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

__all__ = ["plot_recovery_over_time"]


def plot_recovery_over_time(ds, path: str | Path, *, band=(0.05, 0.95)) -> Path:
    """Recovery ratio over time (quantile band, mean, forecast) per strategy, one panel per plan."""
    plt = _pyplot()
    plans = list(dict.fromkeys(str(p) for p in ds["plan"].values))
    n = len(plans)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    hour = np.asarray(ds["hour"].values, float)
    edges = np.append(hour, hour[-1] + float(ds.attrs.get("period_h", 1.0)))  # periods + 1 step edges

    def ext(v):
        return np.append(v, v[-1])

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
            ax.fill_between(
                edges,
                ext(q[:, lo_i]),
                ext(q[:, hi_i]),
                step="post",
                alpha=0.25,
                color=col,
                label=f"{c}: {band[0]:.0%}-{band[1]:.0%} band",
            )
            ax.step(
                edges,
                ext(100 * np.asarray(sub["recovery_ratio_mean"].values)),
                where="post",
                color=col,
                lw=1.6,
                label=f"{c}: mean",
            )
            ax.step(
                edges,
                ext(100 * np.asarray(sub["recovery_ratio_nominal"].values)),
                where="post",
                color=col,
                lw=0.9,
                ls="--",
                label=f"{c}: at the forecast",
            )
        ax.set_title(plan, fontsize=10)
        ax.set_xlabel("hour")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("recovery ratio (%)")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"{ds.attrs.get('network', '')}: load recovery over time, "
        f"{int(ds.attrs['n_samples'])} samples per period",
        fontsize=11,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
